"""`live --report FILE`: keep the session's findings and write them when it ends, in any format
of the output registry (HTML or Markdown incident report, Parquet, ...). Ladders re-read the
packets from the --write file(s), whose frame numbers are the session's.

An HTML or Markdown report is digested as the findings come (report/digest.py, the full CSV
spooled beside it, as `read -o r.html` does), not kept as a table: 72,000 findings used to hold
~600 MiB, over the systemd unit's MemoryMax (issue #20 item 16). Other formats keep the findings
(only the columns they write; Parquet every one)."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..report.formats import by_suffix, choose
from ..report.runinfo import InputFile, RunInfo

MAX_FINDINGS = 1_000_000        # kept for the report; beyond it only the count grows (memory bound)
EMPTY = ["file", "frame", "time", "src", "sport", "dst", "dport", "sender", "cause", "confidence",
         "alternatives", "summary", "errno", "evidence", "remediation", "title", "rule"]


class LiveReport:
    def __init__(self, path: Path, force: bool, title: str | None = None) -> None:
        self.path, self.force, self.title = path, force, title
        self.parts: list[pd.DataFrame] = []
        self.kept = 0
        self.dropped = 0
        self.columns: set[str] | None = None    # kept per finding; None: every column
        self.sink = None                        # an incident report's digest (report/incident.ReportSink)
        self.info = RunInfo(source="live")

    def check(self, evidence: Path | None = None) -> None:
        """Before the capture starts: the report and what goes beside it (the CSV, a Markdown
        report's NAME_files/) can be written, and none of them is the --write file (exit 2
        otherwise: a report refused at the end loses the whole session's findings)."""
        from ..errors import OutputError
        from ..report.output import check_output
        self.format = choose(by_suffix(self.path) or "html", self.path, False)
        if self.format.name != "parquet":       # as `read` streams them: the contract, extras and frame range
            from ..report.records import CONTRACT_FIELDS, EXTRA_FIELDS
            self.columns = {*CONTRACT_FIELDS, *EXTRA_FIELDS, "conn_first_frame", "conn_last_frame"}
        check_output(self.path, self.force)
        if self.format.name in ("html", "md"):
            from ..report.beside import check_beside
            check_beside(self.path, self.force, markdown=self.format.name == "md")
        if evidence is not None:
            mine = {self.path, self.path.with_name(f"{self.path.stem}.findings.csv")}
            if any(os.path.abspath(evidence) == os.path.abspath(p) for p in mine):
                raise OutputError(str(evidence), "is both the --write file and the --report output")
        from ..report.formats import tell_if_name_disagrees
        tell_if_name_disagrees(None, self.path, self.format)      # `--report x.pdf`: HTML, and said so
        if self.format.name in ("html", "md"):
            self.info.output, self.info.force = self.path, self.force
            self.sink = self.format.batch_writer(None, self.info)    # its stream is given at the end
            self.sink.start("live")

    def add(self, df: pd.DataFrame) -> None:
        if not len(df):
            return
        if self.columns is not None:        # the ~60 feature columns: only Parquet keeps them (#20 item 16)
            df = df[[c for c in df.columns if c in self.columns]]
        room = MAX_FINDINGS - self.kept
        if room < len(df):
            self.dropped += len(df) - max(room, 0)
            df = df.head(max(room, 0))
        if len(df):
            if self.sink is not None:
                self.sink.write(df)
            else:
                self.parts.append(df)
            self.kept += len(df)

    def write(self, label: str, packets: int, rules: list, rule_dirs: list, dropped: int | None,
              received: int | None, captured: list[Path]) -> None:
        from ..report.emit import write_findings
        info = self.info
        info.packets, info.files, info.rules, info.rule_dirs = packets, 1, rules, [str(d) for d in rule_dirs]
        info.title = self.title or f"TCP resets seen live on {label.removeprefix('live:')}"
        info.dropped, info.received, info.inputs = dropped, received, [InputFile(str(p)) for p in captured]
        if len(captured) == 1:
            info.packets_for[label] = captured[0]
        elif not captured:
            info.warnings.append("the session kept no packets (run with --write FILE for packet ladders)")
        else:
            info.warnings.append("ring files: ladders are drawn only from a single --write file")
        if self.dropped:
            info.warnings.append(f"{self.dropped:,} findings beyond the first {MAX_FINDINGS:,} are counted in "
                                 f"the summary line only")
        if self.sink is None:
            findings = pd.concat(self.parts, ignore_index=True) if self.parts else pd.DataFrame(columns=EMPTY)
            write_findings(self.format, findings, self.path, self.force, info)
            return
        from ..report.output import open_output
        try:
            with open_output(self.path, self.force) as out:
                self.sink.out = out
                self.sink.finish(None)
        except BaseException:
            self.abort()
            raise
        self.sink = None

    def abort(self) -> None:
        """The session ended without a report: the CSV spooled beside it is removed."""
        if self.sink is not None:
            self.sink.abort()
            self.sink = None
