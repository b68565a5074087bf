"""`rstwatch read --host NAME=PATH ... | --hosts DIR`: the hosts' findings joined, in any read format."""
from __future__ import annotations

from pathlib import Path

import typer

from ..exitcodes import ExitStatus
from ..report.plaintext import visible


def run_hosts(paths: list[Path], hosts: tuple, fmt, output, force: bool, rule_dirs: list[Path], jobs: int,
              debug: bool, storm_min, filters: tuple, extract, title: str | None = None,
              default: str | None = None) -> int:
    from ..engine.loader import load_rules
    from ..errors import RstwatchError
    from ..run_report import finish, plan
    from ..sources.capture import expand_inputs
    from ..sources.readfilter import make_filter
    from . import parse_hosts, read_hosts
    if paths:
        raise RstwatchError("--host", "give captures either as PATHS or per host (--host/--hosts), not both")
    chosen = plan(fmt, output, extract, default)     # `report`: html unless the name or -T says otherwise
    keep = make_filter(*filters) if any(f is not None for f in filters) else None
    specs, folder = hosts
    parsed = parse_hosts(list(specs), folder)
    from ..run_report import check_all_outputs   # the output (never an input), beside a report, --extract
    named = [p for h in parsed for p in h.paths]
    check_all_outputs(chosen, output, force, extract, named)
    check_all_outputs(chosen, output, force, extract, expand_inputs(named, []))    # and the files in folders
    from ..report.formats import tell_if_name_disagrees
    tell_if_name_disagrees(fmt, output, chosen)
    rules = load_rules(rule_dirs)
    run = read_hosts(parsed, rules, jobs, debug, storm_min, keep)
    for err in run.errors:
        typer.echo(f"rstwatch: error: {visible(err)}", err=True)
    if not run.results:
        return ExitStatus.USAGE
    for note in run.notes:
        typer.echo(f"rstwatch: vantage: {note}", err=True)
    info = None
    if chosen.name in ("html", "md") and len(run.findings):
        from ..report.runinfo import RunInfo
        from .section import WithVantage, section_html, vantage_facts
        facts = vantage_facts(run.groups, run.findings, run.offsets, run.notes)
        if chosen.name == "html":
            chosen = WithVantage(chosen, section_html(facts))
        else:                                   # the Markdown template writes the section itself
            info = RunInfo(vantage=facts)
    finish(chosen, run.findings, run.results, rules, rule_dirs, output, force, extract, title, info=info)
    return ExitStatus.PARTIAL if run.errors else ExitStatus.OK
