"""`live --report FILE`: keep the session's findings and write them when it ends, in any format
of the output registry (HTML or Markdown incident report, Parquet, ...). Ladders re-read the
packets from the --write file(s), whose frame numbers are the session's."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..report.formats import by_suffix, choose
from ..report.runinfo import InputFile, RunInfo

MAX_FINDINGS = 1_000_000        # kept for the report; beyond it only the count grows (memory bound)


class LiveReport:
    def __init__(self, path: Path, force: bool, title: str | None = None) -> None:
        self.path, self.force, self.title = path, force, title
        self.parts: list[pd.DataFrame] = []
        self.kept = 0
        self.dropped = 0

    def check(self, evidence: Path | None = None) -> None:
        """Before the capture starts: the report and what goes beside it (the CSV, a Markdown
        report's NAME_files/) can be written, and none of them is the --write file (exit 2
        otherwise: a report refused at the end loses the whole session's findings)."""
        from ..errors import OutputError
        from ..report.output import check_output
        self.format = choose(by_suffix(self.path) or "html", self.path, False)
        check_output(self.path, self.force)
        if self.format.name in ("html", "md"):
            from ..report.beside import check_beside
            check_beside(self.path, self.force, markdown=self.format.name == "md")
        if evidence is not None:
            mine = {self.path, self.path.with_name(f"{self.path.stem}.findings.csv")}
            if any(os.path.abspath(evidence) == os.path.abspath(p) for p in mine):
                raise OutputError(str(evidence), "is both the --write file and the --report output")

    def add(self, df: pd.DataFrame) -> None:
        if not len(df):
            return
        room = MAX_FINDINGS - self.kept
        if room < len(df):
            self.dropped += len(df) - max(room, 0)
            df = df.head(max(room, 0))
        if len(df):
            self.parts.append(df)
            self.kept += len(df)

    def write(self, label: str, packets: int, rules: list, rule_dirs: list, dropped: int | None,
              received: int | None, captured: list[Path]) -> None:
        from ..report.emit import write_findings
        findings = pd.concat(self.parts, ignore_index=True) if self.parts else pd.DataFrame(
            columns=["file", "frame", "time", "src", "sport", "dst", "dport", "sender", "cause", "confidence",
                     "alternatives", "summary", "errno", "evidence", "remediation", "title", "rule"])
        info = RunInfo(packets=packets, files=1, rules=rules, rule_dirs=[str(d) for d in rule_dirs],
                       title=self.title or f"TCP resets seen live on {label.removeprefix('live:')}",
                       dropped=dropped, received=received, source="live",
                       inputs=[InputFile(str(p)) for p in captured])
        if len(captured) == 1:
            info.packets_for[label] = captured[0]
        elif not captured:
            info.warnings.append("the session kept no packets (run with --write FILE for packet ladders)")
        else:
            info.warnings.append("ring files: ladders are drawn only from a single --write file")
        if self.dropped:
            info.warnings.append(f"{self.dropped:,} findings beyond the first {MAX_FINDINGS:,} are counted in "
                                 f"the summary line only")
        write_findings(self.format, findings, self.path, self.force, info)
