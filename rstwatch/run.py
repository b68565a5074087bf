"""What each command does, separate from argument parsing."""
from __future__ import annotations

import sys
from pathlib import Path

import typer

# pandas, the rule engine and the writers of findings are imported where a table is first made:
# reading captures without a RST needs none of them (tests/test_startup.py)
from .analyze import FileResult, analyze_file, findings_in_order
from .engine.loader import builtin_rules_dir, load_rule_set, load_rules
from .engine.model import Rule
from .errors import CaptureError, RstwatchError
from .exitcodes import ExitStatus
from .gcpause import freeze_after_pauses, gc_paused, import_paused, settle_startup
from .report.output import open_output
from .report.records import CONTRACT_FIELDS, EXTRA_FIELDS
from .report.plaintext import visible
from .spill import spilling
from .sources.capture import Skipped, expand_inputs
from .sources.stdin import is_stdin
from .track.storms import STORM_MIN_FLOWS


def _warn(message: str) -> None:
    typer.echo(f"rstwatch: warning: {visible(message)}", err=True)      # names from the input: shown, not obeyed


def _analyze_one(args: tuple, progress=None) -> FileResult | str:
    path, rules, debug, storm_min, *more = args           # more: the read filter, the file's name (a Dask worker's)
    keep, label = (*more, None, None)[:2]
    try:
        return analyze_file(path, rules, label, storm_min=storm_min, progress=progress, keep=keep)
    except CaptureError as exc:
        if debug:
            raise
        return str(exc)


def _with_progress(work: list) -> list:
    """A progress bar on stderr for the whole run (bytes and packets so far, the file being read
    and its number): a folder of small files moves it file by file, where a bar per file showed
    each one's zeros before it was gone."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TextColumn("{task.fields[packets]:,} packets"),
               TimeRemainingColumn()]
    sizes = [_size(w[0]) for w in work]
    out = []
    # on stderr (rich's default is stdout: with the findings piped or redirected, no bar was shown)
    with Progress(*columns, console=Console(stderr=True), transient=True, disable=False) as bar:
        task = bar.add_task("", total=sum(sizes) or None, packets=0)
        bytes_before = packets_before = 0
        for n, (w, size) in enumerate(zip(work, sizes)):
            name = w[0].name if len(work) == 1 else f"{w[0].name} ({n + 1}/{len(work)})"
            bar.update(task, description=name, completed=bytes_before)
            out.append(_analyze_one(w, lambda done, packets, b=bytes_before, p=packets_before:
                                    bar.update(task, completed=b + done, packets=p + packets)))
            bytes_before += size
            packets_before += getattr(getattr(out[-1], "diag", None), "packets", 0)
            bar.update(task, completed=bytes_before, packets=packets_before)
    return out


def analyze_paths(paths: list[Path], rules: list[Rule], jobs: int = 1, debug: bool = False,
                  storm_min: int = STORM_MIN_FLOWS, keep=None) -> tuple[list[FileResult], list[str]]:
    """Results in input order (deterministic whatever --jobs), and one error line per unreadable file."""
    files = expand_inputs(paths)
    work = [(f, rules, debug, storm_min, keep) for f in files]
    # --scheduler: the same work, each file a Dask task (cluster.using imported the module; a
    # read without it does not import it: logging, shutil, threading, ~4 ms of start-up)
    cluster = sys.modules["rstwatch.cluster"].current() if "rstwatch.cluster" in sys.modules else None
    if cluster is not None:
        outcomes = cluster.map_files(files, rules, debug, storm_min, keep)
    elif jobs > 1 and sum(not is_stdin(f) for f in files) > 1:
        outcomes = _in_workers(work, jobs)
    elif sys.stderr.isatty():
        outcomes = _with_progress(work)
    else:
        outcomes = [_analyze_one(w) for w in work]
    results = [o for o in outcomes if isinstance(o, FileResult)]
    errors = [o for o in outcomes if isinstance(o, str)]
    return results, errors


def _in_workers(work: list, jobs: int) -> list:
    """--jobs: the files read by worker processes, a group of them each (_groups); `-` read by
    this process meanwhile, as a worker's sys.stdin is /dev/null (multiprocessing sets it so)."""
    from .workers import run_in_workers
    shared = work[0][1:]                    # (rules, debug, storm_min, read filter): the same for every file
    mine = [w for w in work if is_stdin(w[0])]
    theirs = [w for w in work if not is_stdin(w[0])]
    workers = min(jobs, len(theirs))
    groups = [[w[0] for w in group] for group in _groups(theirs, workers)]
    done, own = run_in_workers(_analyze_group, groups, workers, _worker_shares, shared,
                               meanwhile=lambda: [_analyze_one(w) for w in mine])
    outcomes = [o for group in done for o in group]
    for o in outcomes:
        if isinstance(o, FileResult):
            o.adopt(shared[0])
    own, outcomes = iter(own), iter(outcomes)
    return [next(own) if is_stdin(w[0]) else next(outcomes) for w in work]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# Files given to a worker together are classified together (one analyze.VerdictBatch), as
# `--jobs 1` classifies a folder: a task per small file cost a classification each, and 1,223
# small captures took 2.7 s on 2 workers against 1.7 s on one. A group holds files that follow
# one another, about 1/GROUP_SHARE of a worker's share of the bytes (within GROUP_BYTES); a
# file larger than that is a group alone.
GROUP_SHARE = 8
GROUP_BYTES = (1 << 20, 64 << 20)


def _groups(work: list, workers: int) -> list[list]:
    sizes = [_size(w[0]) for w in work]
    target = min(max(sum(sizes) // (workers * GROUP_SHARE), GROUP_BYTES[0]), GROUP_BYTES[1])
    groups: list[list] = []
    held = 0
    for w, size in zip(work, sizes):
        if not groups or held + size > target:
            groups.append([])
            held = 0
        groups[-1].append(w)
        held += size
    return groups


_shared_work: tuple = ()          # a worker's (rules, debug, storm_min, read filter)


def _worker_shares(*shared) -> None:
    global _shared_work
    _shared_work = shared


def _analyze_group(paths: list[Path]) -> list:
    """In a worker, _analyze_one of each file; the results go back in one pickle, which writes a
    batch table the files share once (analyze.FileResult.__getstate__)."""
    return [_analyze_one((path, *_shared_work)) for path in paths]


def tune_gc() -> None:
    """The collector set for a command that reads and exits (gcpause.py): what is loaded by now
    is frozen, and so is what each batch makes when it is done."""
    settle_startup()
    freeze_after_pauses()


def run_read(paths: list[Path], fmt: str | None, output: Path | None, force: bool,
             rule_dirs: list[Path], jobs: int, debug: bool = False, storm_min: int = STORM_MIN_FLOWS,
             filters: tuple = (), extract: Path | None = None, hosts: tuple = ((), None),
             title: str | None = None, default: str | None = None) -> int:
    """`read`, and `report` of captures (its `title`, and html as its `default` format)."""
    from .run_report import finish, plan
    if hosts[0] or hosts[1] is not None:        # --host / --hosts: several vantage points joined
        from .vantage.run import run_hosts
        tune_gc()
        return run_hosts(paths, hosts, fmt, output, force, rule_dirs, jobs, debug, storm_min, filters, extract)
    from .sources.readfilter import make_filter
    chosen = plan(fmt, output, extract, default)    # md to stdout, an --extract folder that cannot be made: exit 2 now
    keep = make_filter(*filters) if filters else None     # bad --bpf/--since/--until: exit 2 before any work
    skipped: list[Skipped] = []
    from .run_report import check_all_outputs     # the output (never an input), beside a report, --extract
    check_all_outputs(chosen, output, force, extract, paths)     # before any input is opened
    paths = expand_inputs(paths, skipped)       # folders -> files, once, before any work
    check_all_outputs(chosen, output, force, extract, paths)     # again with the files found in folders
    from .report.formats import tell_if_name_disagrees
    tell_if_name_disagrees(fmt, output, chosen)
    rules = load_rules(rule_dirs)
    tune_gc()
    if chosen.name in STREAMED:
        columns = None if chosen.name in ALL_COLUMNS else CONTRACT_FIELDS + EXTRA_FIELDS + ["conn_first_frame"]
        if columns is not None and (extract is not None or chosen.name in REPORTS):
            columns.append("conn_last_frame")       # each finding's packets: its connection's frame range
        # a report imports matplotlib and jinja2, --extract holds a pass's packets: fewer findings held meanwhile
        with spilling(columns, lean=chosen.name in REPORTS or extract is not None) as spill_plan:
            results, errors = analyze_paths(paths, rules, jobs, debug, storm_min, keep)
            errors = _tell_problems(skipped, errors, results)
            if not results:
                return ExitStatus.USAGE
            from .run_report import run_info
            info = run_info(results, rules, rule_dirs, title)
            info.output, info.force = output, force
            with open_output(output, force, binary=chosen.binary) as out:
                tables = findings_in_order(results, release=True, light=chosen.name in LIGHT and extract is None)
                if extract is None:
                    _stream(chosen, tables, out, info)
                else:                   # evidence files written as the findings go by
                    _stream_with_evidence(chosen, tables, out, info, extract, force)
            if spill_plan.failed:
                _warn(f"{spill_plan.failed}: findings were kept in memory instead (a temporary file could not be written)")
        return ExitStatus.PARTIAL if errors else ExitStatus.OK
    results, errors = analyze_paths(paths, rules, jobs, debug, storm_min, keep)
    errors = _tell_problems(skipped, errors, results)
    if not results:
        return ExitStatus.USAGE
    from .analyze import all_findings       # batch tables joined once: no DataFrame per small file
    pd = import_paused("pandas")
    findings = all_findings(results) if results else pd.DataFrame()
    finish(chosen, findings, results, rules, rule_dirs, output, force, extract, title)   # formats: report/formats.py
    return ExitStatus.PARTIAL if errors else ExitStatus.OK


# Formats written a table of findings at a time as they are taken from memory or disk, byte for
# byte what writing them all at once gives (tests/test_hostile.py); the others need every row.
STREAMED = ("jsonl", "csv", "eve", "zeek", "zeek-json", "parquet", "html", "md", "table")
ALL_COLUMNS = ("parquet",)              # every feature column too, so a report can be made from it later
REPORTS = ("html", "md")                # from a digest of the findings (report/digest.py), evidence linked
# Formats written from each batch's columns.Table as the verdicts made it: no pandas for their resets
LIGHT = ("jsonl", "table", "csv", "eve", "zeek", "zeek-json")


def _stream(chosen, tables, out, info=None) -> None:
    if chosen.name == "jsonl":          # independent lines: the batch writer, a table at a time
        for table in tables:
            from .report.jsonl import write_jsonl
            write_jsonl(table, out)
        return
    with gc_paused():                       # a writer may load pandas (or matplotlib): its objects live on
        sink = chosen.batch_writer(out, info)   # a header once, then rows (as `live` writes them)
    sink.start("read")
    try:
        for table in tables:
            sink.write(table)
        sink.finish(None)
    except BaseException:
        if hasattr(sink, "abort"):          # a report's side file: its temporary file removed
            sink.abort()
        raise


def _stream_with_evidence(chosen, tables, out, info, folder: Path, force: bool) -> None:
    from .report.extract import EvidenceStream
    evidence = EvidenceStream(info.packets_for, folder, force, keep_paths=chosen.name in REPORTS)

    def extracting():
        for table in tables:
            evidence.add(table)
            yield table
        evidence.finish()                   # before a report is rendered: it links each file
        info.evidence.update(evidence.written)
        for line in evidence.problems:
            _warn(line)
        typer.echo(f"rstwatch: {evidence.count} evidence file(s) in {visible(folder)}", err=True)

    _stream(chosen, extracting(), out, info)


def _tell_problems(skipped: list[Skipped], errors: list[str], results: list[FileResult]) -> list[str]:
    """Error lines for what could not be read, warnings for what was read; the error lines."""
    errors = _skipped_lines(skipped) + errors
    for err in errors:
        typer.echo(f"rstwatch: error: {visible(err)}", err=True)
    for res in results:
        for w in res.diag.warnings:
            _warn(f"{res.path}: {w}")
        for reason, count in res.diag.skipped.items():
            if reason.startswith("packets in "):            # tunnels not decoded (sources/tunnels.py)
                _warn(f"{res.path}: {count:,} {reason if count != 1 else reason.replace('packets', 'packet', 1)}")
            elif reason.startswith("ethertype") or "malformed" in reason or "cut short" in reason:
                _warn(f"{res.path}: {count} frame(s) skipped: {reason}")
    return errors


def _skipped_lines(skipped: list[Skipped]) -> list[str]:
    """Error lines for what a folder held but could not be read; one warning per folder for the
    files that are not captures (they do not change the exit status)."""
    notes: dict[Path, list[str]] = {}
    for s in skipped:
        if not s.error:
            notes.setdefault(s.folder, []).append(f"{s.path.relative_to(s.folder)} ({s.reason})"
                                                  if s.reason != "not a capture" else str(s.path.relative_to(s.folder)))
    for folder, names in notes.items():
        more = f" (+{len(names) - 10} more)" if len(names) > 10 else ""
        _warn(f"{folder}: skipped {len(names)} file(s) that are not captures: {', '.join(names[:10])}{more}")
    return [f"{s.path}: {s.reason}" for s in skipped if s.error]


def run_rules_list(rule_dirs: list[Path]) -> int:
    for r in load_rules(rule_dirs):
        typer.echo(f"{r.id}  {r.name:22} {r.band:11} conf {r.confidence:.2f}  {r.title}")
    return ExitStatus.OK


def run_rules_explain(name: str, rule_dirs: list[Path]) -> int:
    rules = load_rules(rule_dirs)
    match = [r for r in rules if name in (r.name, r.id)]
    if not match:
        raise RstwatchError(name, f"no such rule (known: {', '.join(r.name for r in rules)})")
    r = match[0]
    from .floodinfo import explain_flood
    if (flood := explain_flood(r)) is not None:         # a flood rule: its detector and thresholds
        typer.echo("\n".join(flood))
        return ExitStatus.OK
    lines = [f"{r.name} ({r.id}): {r.title}", f"  file: {r.source}", f"  band {r.band}, confidence {r.confidence:.2f}"]
    order = [f"before {', '.join(r.before)}" if r.before else "", f"after {', '.join(r.after)}" if r.after else ""]
    if any(order):
        lines.append("  tried " + "; ".join(x for x in order if x))
    if r.confidence_notes:
        lines.append(f"  why this confidence: {r.confidence_notes}")
    lines.append(f"  matches when: {_render(r.when)}")
    if r.unless:
        lines.append(f"  unless: {_render(r.unless)}")
    if r.alternatives:
        lines.append(f"  could also be: {', '.join(r.alternatives)}")
    lines.append(f"  the RST's receiver sees: {', '.join(r.errno.get('receiver') or ['nothing'])}")
    lines.append(f"  the RST's sender sees: {', '.join(r.errno.get('sender') or ['nothing'])}")
    lines.append("  what to change:")
    lines += [f"    - {x}" for x in r.remediation]
    lines.append(f"  references: {'; '.join(r.references)}")
    typer.echo("\n".join(lines))
    return ExitStatus.OK


def _render(cond) -> str:
    if not cond:
        return "always"
    if isinstance(cond, list):
        return " OR ".join(f"({_render(c)})" for c in cond)
    parts = []
    for k, v in cond.items():
        if isinstance(v, dict):
            parts += [f"{k} {op} {val}" for op, val in v.items()]
        elif isinstance(v, list):
            parts.append(f"{k} in {v}")
        else:
            parts.append(f"{k} = {str(v).lower() if isinstance(v, bool) else v}")
    return " AND ".join(parts)


def run_rules_validate(folders: list[Path]) -> int:
    # The loader `read --rules` uses, built-ins included: one loader, one verdict.
    rs = load_rule_set(folders)
    for warning in rs.warnings:          # a rule that matches every reset (engine/loader.py)
        _warn(warning)
    if folders:
        typer.echo(f"{len(rs.from_folders)} rule(s) valid in {', '.join(map(str, folders))} "
                   f"({len(rs.rules)} with the built-in rules)")
    else:
        typer.echo(f"{len(rs.rules)} rule(s) valid in {builtin_rules_dir()}")
    return ExitStatus.OK


def run_rules_test(folders: list[Path]) -> int:
    """Every rule's examples against the whole rule set `read --rules` would use. With folders, their
    rules are the ones under test; a built-in example a folder's rule now wins is a warning."""
    from .engine.evaluate import run_rule_tests
    from .features.extract import feature_table
    rs = load_rule_set(folders)
    tested = rs.from_folders if folders else rs.rules
    empty = feature_table("", {}, []).head(0)
    failures = run_rule_tests(rs.rules, empty.reindex(range(1)))
    own = {r.source for r in tested}
    n = sum(len(r.tests) for r in tested)
    mine = [f for f in failures if f.split(": test ", 1)[0] in own]
    for f in failures:
        if f in mine:
            typer.echo(f"FAIL {f}", err=True)
        else:
            _warn(f"with {', '.join(map(str, folders))}: {f}")
    typer.echo(f"{n - len(mine)}/{n} rule tests passed")
    return ExitStatus.USAGE if mine else ExitStatus.OK
