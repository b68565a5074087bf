"""`rstwatch report` and the output end of `read`: findings -> evidence files -> any format."""
from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from .engine.loader import load_rules
from .engine.model import Rule
from .errors import CaptureError
from .report.formats import Format, choose, tell_if_name_disagrees
from .report.plaintext import visible
from .report.runinfo import InputFile, RunInfo

if TYPE_CHECKING:       # `read` imports this module for its output checks: pandas only in run_report
    import pandas as pd


def plan(fmt: str | None, output: Path | None, extract: Path | None, default: str | None = None) -> Format:
    """Refuse impossible outputs before any work (Markdown to stdout, an --extract folder that
    cannot be made)."""
    chosen = choose(fmt, output, sys.stdout.isatty(), default)
    if extract is not None:
        from .report.extract import check_folder
        check_folder(extract)
    return chosen


def check_all_outputs(chosen: Format, output: Path | None, force: bool, extract: Path | None,
                      inputs: list[Path]) -> None:
    """Every path this run writes, refused before any input is opened (issue #20 item 8): the
    output (never one of the inputs), the CSV and NAME_files/ beside a report, and evidence
    files of these inputs already in the --extract folder."""
    from .report.output import check_output
    check_output(output, force, inputs=inputs)
    if chosen.name in ("html", "md"):
        from .report.beside import check_beside
        check_beside(output, force, markdown=chosen.name == "md")
    if extract is not None:
        from .report.extract import check_folder
        check_folder(extract, force, inputs)


def finish(chosen: Format, findings: pd.DataFrame, results: list, rules: list[Rule], rule_dirs: list[Path],
           output: Path | None, force: bool, extract: Path | None = None, title: str | None = None,
           info: RunInfo | None = None) -> None:
    """Write `findings` (from `results`, the FileResults read) as `chosen`, after --extract."""
    from .report.emit import extract_evidence, write_findings
    info = run_info(results, rules, rule_dirs, title, info)
    if extract is not None:
        for line in extract_evidence(findings, extract, info, force):
            typer.echo(f"rstwatch: warning: {visible(line)}", err=True)
        typer.echo(f"rstwatch: {len(info.evidence)} evidence file(s) in {visible(extract)}", err=True)
    write_findings(chosen, findings, output, force, info)


def run_info(results: list, rules: list[Rule], rule_dirs: list[Path], title: str | None = None,
             info: RunInfo | None = None) -> RunInfo:
    """What the outputs say about the run: inputs, packets, rules (provenance, links to evidence)."""
    info = info or RunInfo()
    info.packets += sum(r.diag.packets for r in results)
    info.files += len(results)
    info.inputs += [InputFile(r.path, packets=r.diag.packets) for r in results]
    info.packets_for.update({r.path: Path(r.path) for r in results})
    info.rules, info.rule_dirs, info.title = rules, [str(d) for d in rule_dirs], title
    return info


def packet_sources(labels, roots: list[Path]) -> dict[str, Path | None]:
    """The capture each saved finding's `file` may be re-read from (ladders, --extract): a
    regular file that is one of `roots` (the inputs named on the command line and --packets) or
    under one of them, found at the recorded path or by its name directly in a root folder; else
    None, and it is never opened (issue #20 item 13: a path inside a Parquet file is the data's,
    not the user's: /etc/shadow, a FIFO, /dev/zero)."""
    import os
    import stat
    real = []
    for r in roots:
        try:
            real.append((os.path.realpath(r), r.is_dir()))
        except OSError:
            continue
    out: dict[str, Path | None] = {}
    for label in labels:
        label = str(label)
        found = None
        for cand in [Path(label)] + [Path(r) / Path(label).name for r, is_dir in real if is_dir]:
            try:
                if not stat.S_ISREG(os.stat(cand).st_mode):
                    continue
            except (OSError, ValueError):
                continue
            where = os.path.realpath(cand)
            if any(where == r or (is_dir and where.startswith(r.rstrip(os.sep) + os.sep)) for r, is_dir in real):
                found = Path(where)
                break
        out[label] = found
    return out


def run_report(paths: list[Path], output: Path | None, fmt: str | None, force: bool, rule_dirs: list[Path],
               title: str | None, extract: Path | None, jobs: int = 1, debug: bool = False,
               storm_min: int | None = None, packets: list[Path] = ()) -> int:
    """Captures and/or saved findings (Parquet) -> an incident report (HTML unless told otherwise)."""
    import pandas as pd
    from .report.parquet import is_parquet, parquet_batches, parquet_labels, read_parquet
    from .run import analyze_paths
    from .sources.capture import expand_inputs
    chosen = plan(fmt, output, extract, default="html")
    check_all_outputs(chosen, output, force, extract, paths)    # before any input is opened
    saved = [p for p in paths if p.is_file() and is_parquet(p)]
    if not saved:
        # Captures only: their findings streamed a table at a time, as `read -o` streams them.
        # Joined into one DataFrame first, 300,000 resets peaked at 839 MiB against read's 490.
        from .exitcodes import ExitStatus
        from .run import run_read
        status = run_read(paths, fmt, output, force, rule_dirs, jobs, debug, storm_min, extract=extract,
                          title=title, default="html")
        if output is not None and status != ExitStatus.USAGE:
            typer.echo(f"rstwatch: report written to {visible(output)}", err=True)
        return status
    captures = [p for p in paths if p not in saved]
    skipped: list = []                      # what folders hold but is not read: said as `read` says it
    files = expand_inputs(captures, skipped) if captures else []
    check_all_outputs(chosen, output, force, extract, [*files, *saved])    # again with the files found in folders
    tell_if_name_disagrees(fmt, output, chosen)
    rules = load_rules(rule_dirs)
    from .run import tune_gc
    tune_gc()
    info = RunInfo(source="parquet" if saved and not captures else "read")
    frames, errors, results = [], [], []
    from .run import REPORTS
    streamed = saved and not captures and extract is None and chosen.name in REPORTS
    batches = []                            # saved findings only, for a report: a batch at a time
    unread: list[str] = []                  # saved files that are not rstwatch's findings
    metas = []
    for p in list(saved):
        try:
            if streamed:
                meta, tables = parquet_batches(p)
                batches.append(tables)
            else:
                df, meta = read_parquet(p)
                frames.append(df)
        except CaptureError as exc:
            if len(paths) == 1 and not files:
                raise                       # the only input: its one line, exit 2
            unread.append(str(exc))         # among others: said as an unreadable capture is, exit 1
            saved.remove(p)
            continue
        metas.append(meta)
        info.inputs.append(InputFile(str(p)))
        info.packets += int(meta.get("packets") or 0)
        info.files += int(meta.get("files") or 0)
        info.inputs += [InputFile(f["path"], f["size"], f["sha256"], f["packets"], carried=True)
                        for f in meta.get("inputs", [])]       # as recorded: never opened or hashed
    info.carried = metas[0] if len(metas) == 1 else {}     # one saved file read: where its findings came from
    from .run import _tell_problems        # error lines as `read` says them
    if streamed:
        _tell_problems([], unread, [])
        if not saved:
            return 2                        # nothing could be read
        labels = pd.unique(pd.Series([label for p in saved for label in parquet_labels(p)], dtype=object))
        info.packets_for.update(packet_sources(labels, [*captures, *packets]))
        failed: list[str] = []
        tables = (_until_damaged(t, len(paths) == 1, failed) for t in batches)
        status = _report_saved(chosen, itertools.chain.from_iterable(tables), rules, rule_dirs, output, force,
                               title, info)
        return 1 if unread or failed else status
    if saved:
        labels = pd.unique(pd.concat([f["file"].astype(str) for f in frames])) if frames else []
        info.packets_for.update(packet_sources(labels, [*captures, *packets]))
    if files:
        results, errors = analyze_paths(files, rules, jobs, debug, storm_min)
        frames += [r.findings for r in results]
    errors = unread + errors
    if files or skipped or unread:
        # as `read` says them: files that are not captures, read errors, each file's warnings and
        # the frames it skipped (tunnels not decoded, other ethertypes, malformed ones)
        errors = _tell_problems(skipped, errors, results)
    if not frames:
        return 2                            # nothing could be read
    findings = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    finish(chosen, findings, results, rules, rule_dirs, output, force, extract, title, info)
    if output is not None:
        typer.echo(f"rstwatch: report written to {visible(output)}", err=True)
    return 1 if errors else 0              # 1: some inputs could not be read


def _until_damaged(tables, alone: bool, failed: list[str]):
    """A saved file's batches until one is damaged (a value out of range, a page that does not
    decode): alone, its one line and exit 2; among other inputs, the batches before the damage
    are reported, as a damaged capture's packets before it are, with an error line and exit 1."""
    try:
        yield from tables
    except CaptureError as exc:
        if alone:
            raise
        from .run import _tell_problems
        failed += _tell_problems([], [str(exc)], [])


def _report_saved(chosen: Format, tables, rules: list[Rule], rule_dirs: list[Path], output: Path | None,
                  force: bool, title: str | None, info: RunInfo) -> int:
    """A report of saved findings (Parquet) only, their batches streamed through the report's
    digest as `read` streams a capture's (run._stream): the same report, byte for byte, holding
    counters and a few hundred rows, not every finding."""
    from .report.output import open_output
    from .run import _stream
    info = run_info([], rules, rule_dirs, title, info)
    info.output, info.force = output, force
    with open_output(output, force, binary=chosen.binary) as out:
        _stream(chosen, tables, out, info)
    if output is not None:
        typer.echo(f"rstwatch: report written to {visible(output)}", err=True)
    return 0

