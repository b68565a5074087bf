"""Command line: typer commands only, the work happens in the modules they call."""
from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from . import __version__
from .entry import stdout_failed
from .errors import RstwatchError
from .exitcodes import ExitStatus

# Plain (click) help and usage errors: typer's rich rendering imports rich.markdown, markdown-it
# and rich.traceback, 0.16 s more on every `--help` and every mistyped option (measured).
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Tell why TCP connections were reset: who sent each RST, why, and what to change.")
rules_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                        rich_markup_mode=None, help="List, explain, validate and test the rule files.")
app.add_typer(rules_app, name="rules")



from .report.formats import FORMATS  # noqa: E402  (the one output registry: a format added there shows up here)

Format = Enum("Format", {name.replace("-", "_"): name for name in FORMATS}, type=str)


def _filter_not_format(value: Optional[str]) -> Optional[str]:
    """-f is a capture filter, as in tcpdump and tshark; say so to whoever meant a format."""
    if value and value.strip() in {"table", "jsonl", "csv", "eve", "zeek", "zeek-json", "parquet", "html", "md"}:
        raise typer.BadParameter(f"-f is the capture filter (as in tcpdump and tshark); "
                                 f"for the output format use --format {value.strip()}", param_hint="-f/--bpf")
    return value


def _path(value: str) -> Path:
    """A path option's value; an empty one is refused by name (Path('') is '.', which the errors
    after it would call a directory the user never named)."""
    if not value:
        raise typer.BadParameter("an empty name is no file or folder")
    return Path(value)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", "-V", is_eager=True, callback=_show_version,
                                       help="Print the version and exit.")) -> None:
    """Tell why TCP connections were reset: who sent each RST, why, and what to change."""


RulesOpt = typer.Option(None, "--rules", parser=_path, metavar="<path>", help="Extra rule folder (repeatable): adds rules, overrides or disables built-ins by id.")
DebugOpt = typer.Option(False, "--debug", help="Show tracebacks.")
SchedulerOpt = typer.Option(None, "--scheduler", metavar="ADDRESS", help="Read the files on Dask: a running dask.distributed scheduler (tcp://HOST:8786), or `local` for a local cluster of --jobs worker processes (default one per core). Files may be paths the workers see or fsspec URLs (file://, s3://...). Needs rstwatch[cluster]; docs/deploy.md.")


@app.command()
def read(
    paths: Optional[list[Path]] = typer.Argument(None, parser=_path, help="Capture files (pcap, pcapng, optionally .gz) or folders; - reads standard input (tcpdump -w - | rstwatch read -)."),
    fmt: Optional[Format] = typer.Option(None, "--format", "-T", help="table (default on a terminal), jsonl (default otherwise), csv, eve (Suricata EVE JSON), zeek (Zeek TSV log), zeek-json, parquet, html or md (the incident report, as `report` writes it; md needs -o); with -o FILE its suffix picks one."),
    bpf: Optional[str] = typer.Option(None, "--bpf", "-f", callback=_filter_not_format, help="Read only the packets this capture filter accepts (libpcap syntax, as in tcpdump), e.g. 'port 443'."),
    since: Optional[str] = typer.Option(None, "--since", help="Skip packets before this time: ISO 8601 (UTC unless a zone is given) or epoch seconds."),
    until: Optional[str] = typer.Option(None, "--until", help="Skip packets at or after this time."),
    count: Optional[int] = typer.Option(None, "--count", "-c", min=1, help="Stop reading each input after this many packets (those the filters keep), like tcpdump -c."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", parser=_path, metavar="<path>", help="Write here instead of stdout (atomically)."),
    force: bool = typer.Option(False, "--force", help="Overwrite --output if it exists."),
    rules: Optional[list[Path]] = RulesOpt,
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Files read in parallel processes."),
    storm_min: Optional[int] = typer.Option(None, "--storm-min", min=0, help="Report a port scan, RST storm or SYN flood of at least this many connections to one host as one finding (0: never; default: each flood rule's min_connections, 500)."),
    extract: Optional[Path] = typer.Option(None, "--extract", parser=_path, metavar="<path>", help="Write the packets of each finding's connection as a small pcapng into this folder (named after the finding)."),
    host: Optional[list[str]] = typer.Option(None, "--host", help="NAME=PATH (repeatable): the captures (file or folder) of one host; the hosts' views of each connection are joined (docs/multihost.md)."),
    hosts: Optional[Path] = typer.Option(None, "--hosts", parser=_path, metavar="<path>", help="A folder with one subfolder (or capture file) per host, named after the host; as --host for each."),
    scheduler: Optional[str] = SchedulerOpt,
    debug: bool = DebugOpt,
) -> None:
    """Classify every TCP RST in capture files."""
    from .run import run_read
    if not paths and not host and hosts is None:
        raise typer.BadParameter("give capture files or folders, or --host NAME=PATH / --hosts DIR", param_hint="PATHS")
    _guard(_on_dask(scheduler, jobs, lambda: run_read(
        paths or [], fmt.value if fmt else None, output, force, rules or [], jobs, debug, storm_min,
        filters=(bpf, since, until, count), extract=extract, hosts=(tuple(host or ()), hosts))), debug)


@app.command()
def report(
    paths: Optional[list[Path]] = typer.Argument(None, parser=_path, help="Capture files or folders, and/or findings saved by `rstwatch read -o x.parquet`."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", parser=_path, metavar="<path>", help="The report: NAME.html (one self-contained file) or NAME.md (images in NAME_files/); default: HTML on stdout."),
    fmt: Optional[Format] = typer.Option(None, "--format", "-T", help="Default html, or md; any `read` format works."),
    title: Optional[str] = typer.Option(None, "--title", help="The report's title, e.g. \"INC-2291 checkout 502s\"."),
    extract: Optional[Path] = typer.Option(None, "--extract", parser=_path, metavar="<path>", help="Also write each finding's packets as pcapng into this folder; the report links them."),
    force: bool = typer.Option(False, "--force", help="Overwrite the report and evidence files if they exist."),
    rules: Optional[list[Path]] = RulesOpt,
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Files read in parallel processes."),
    storm_min: Optional[int] = typer.Option(None, "--storm-min", min=0, help="Report a flood of at least this many connections to one host as one finding (0: never; default: each flood rule's min_connections, 500)."),
    packets: Optional[list[Path]] = typer.Option(None, "--packets", parser=_path, metavar="<path>", help="Saved findings (Parquet): captures, or folders of them, their packet ladders and --extract may re-read (a path inside the Parquet file is opened only if it is one of these or under one)."),
    scheduler: Optional[str] = SchedulerOpt,
    host: Optional[list[str]] = typer.Option(None, "--host", help="NAME=PATH (repeatable): one host's captures; the report shows where each RST was seen (docs/multihost.md)."),
    hosts: Optional[Path] = typer.Option(None, "--hosts", parser=_path, metavar="<path>", help="A folder with one subfolder (or capture file) per host."),
    debug: bool = DebugOpt,
) -> None:
    """An incident report to hand over: headline, timeline, causes with packet ladders, all findings."""
    from .run_report import run_report
    if host or hosts is not None:
        from .vantage.run import run_hosts
        _guard(_on_dask(scheduler, jobs, lambda: run_hosts(paths or [], (tuple(host or ()), hosts), fmt.value if fmt else None,
                                                           output, force, rules or [], jobs, debug, storm_min,
                                                           (None, None, None, None), extract, title,
                                                           default="html")), debug)   # r.md: Markdown
        return
    if not paths:
        raise typer.BadParameter("give capture files, folders or saved findings, or --host NAME=PATH / --hosts DIR",
                                 param_hint="PATHS")
    _guard(_on_dask(scheduler, jobs, lambda: run_report(paths, output, fmt.value if fmt else None, force, rules or [],
                                                         title, extract, jobs, debug, storm_min, packets or [])), debug)


def _on_dask(scheduler: Optional[str], jobs: int, action):
    """`action`, with each file read as a Dask task when --scheduler is given (rstwatch/cluster.py)."""
    if scheduler is None:
        return action

    def on_dask():
        from .cluster import using
        with using(scheduler.strip(), jobs if jobs > 1 else 0):
            return action()
    return on_dask


LiveFormat = Enum("LiveFormat", {n.replace("-", "_"): n for n, f in FORMATS.items() if f.stream}, type=str)
CaptureKind = Enum("CaptureKind", {n: n for n in ("auto", "ring", "dumpcap")}, type=str)


@app.command()
def live(
    interfaces: list[str] = typer.Argument(..., help="Interface(s) to watch (see `rstwatch interfaces`; `any` = all)."),
    fmt: Optional[LiveFormat] = typer.Option(None, "--format", "-T", help="table (default on a terminal) or jsonl (default otherwise), one line per reset."),
    bpf: Optional[str] = typer.Option(None, "--bpf", "-f", callback=_filter_not_format, help="Capture filter in libpcap syntax, e.g. 'port 443'."),
    duration: Optional[str] = typer.Option(None, "--duration", "-d", help="Stop after this long (30s, 10m, 1h)."),
    write: Optional[Path] = typer.Option(None, "--write", "-w", parser=_path, metavar="<path>", help="Keep the captured packets in this pcapng file (replay with `rstwatch read`)."),
    ring_files: int = typer.Option(0, "--ring-files", min=0, help="With --write: keep only the newest N files of --ring-size each (FILE_00001.pcapng, ...)."),
    ring_size: float = typer.Option(100.0, "--ring-size", min=0.01, help="With --ring-files: MiB per file."),
    force: bool = typer.Option(False, "--force", help="Overwrite --write file(s) that exist."),
    metrics_port: Optional[int] = typer.Option(None, "--metrics-port", min=1, max=65535, help="Serve Prometheus metrics on this TCP port."),
    metrics_address: Optional[str] = typer.Option(None, "--metrics-address", help="With --metrics-port: the address to serve on (default 0.0.0.0, every IPv4 address; 127.0.0.1 or ::1 for this host only; :: for every IPv6 and IPv4 address)."),
    rules: Optional[list[Path]] = RulesOpt,
    storm_min: Optional[int] = typer.Option(None, "--storm-min", min=0, help="Report a flood (scan, RST storm, SYN flood) of at least this many connections as one finding (0: never; default: each flood rule's min_connections, 500)."),
    snaplen: int = typer.Option(192, "--snaplen", min=64, max=262144, help="Bytes kept per packet (headers only by default)."),
    max_segments: int = typer.Option(1_000_000, "--max-segments", min=1000, help="Flow table cap in TCP segments (75 bytes each)."),
    flow_idle: float = typer.Option(600.0, "--flow-idle", min=1.0, help="Forget a flow after this many seconds without a packet."),
    no_kernel: bool = typer.Option(False, "--no-kernel", help="Wire only: do not join the kernel's tcp_send_reset reasons (joined by default when available)."),
    report_to: Optional[Path] = typer.Option(None, "--report", parser=_path, metavar="<path>", help="When the session ends, write an incident report here (.html, .md, or any `read` format such as .parquet); with --write its examples get packet ladders."),
    title: Optional[str] = typer.Option(None, "--title", help="With --report: the report's title."),
    capture: CaptureKind = typer.Option("auto", "--capture", help="How packets are taken: ring (an AF_PACKET ring read in rstwatch's own process; one Ethernet or loopback interface, root or CAP_NET_RAW), dumpcap (Wireshark's capture process through a pipe), or auto (the ring where it can)."),
    debug: bool = DebugOpt,
) -> None:
    """Watch an interface and classify each TCP reset as it happens."""
    from .live.flowtable import Limits
    from .live.session import LiveOptions, parse_duration, run_live
    if ring_files and not write:
        raise typer.BadParameter("--ring-files needs --write FILE", param_hint="--ring-files")
    opts = LiveOptions(interfaces=interfaces, fmt=(fmt.value if fmt else ("table" if sys.stdout.isatty() else "jsonl")),
                       bpf=bpf, duration_s=parse_duration(duration) if duration else None, write=write,
                       ring_files=ring_files, ring_mb=ring_size, force=force, metrics_port=metrics_port, metrics_address=metrics_address,
                       rule_dirs=rules or [], storm_min=storm_min, snaplen=snaplen,
                       limits=Limits(max_segments=max_segments, flow_idle_s=flow_idle), capture=capture.value)
    if report_to is not None:
        from .live.report import LiveReport
        opts.report = LiveReport(report_to, force, title)         # checked before the capture starts
    opts.kernel = not no_kernel
    _guard(lambda: run_live(opts), debug)


# the kernel's own events, not findings: a table line or a JSON object each (kernel/stream.py)
KernelFormat = Enum("KernelFormat", {"table": "table", "jsonl": "jsonl"}, type=str)


@app.command()
def kernel(
    fmt: Optional[KernelFormat] = typer.Option(None, "--format", "-T", "-f", help="table (default on a terminal) or jsonl (default otherwise), one line per reset; -T as in read and live (-f, this command's first spelling, still works)."),
    duration: Optional[str] = typer.Option(None, "--duration", "-d", help="Stop after this long (30s, 10m, 1h)."),
    debug: bool = DebugOpt,
) -> None:
    """Stream this host's TCP resets as its kernel reports them (reason, state, process); Linux >= 6.10, root."""
    from .gcpause import settle_startup
    from .kernel.stream import run_kernel
    from .live.session import parse_duration
    settle_startup()        # it runs until stopped: the collector back on (entry.py held it off)
    seconds = parse_duration(duration) if duration else None
    _guard(lambda: run_kernel(fmt.value if fmt else ("table" if sys.stdout.isatty() else "jsonl"), seconds), debug)


@app.command()
def interfaces(debug: bool = DebugOpt) -> None:
    """List the interfaces `rstwatch live` can capture on."""
    from .live.dumpcap import list_interfaces
    def show() -> int:
        for name, descr in list_interfaces():
            typer.echo(f"{name:20} {descr}".rstrip())
        return ExitStatus.OK
    _guard(show, debug)


@rules_app.command("list")
def rules_list(rules: Optional[list[Path]] = RulesOpt, debug: bool = DebugOpt) -> None:
    """One line per rule: id, cause, priority, confidence, title."""
    from .run import run_rules_list
    _guard(lambda: run_rules_list(rules or []), debug)


@rules_app.command("explain")
def rules_explain(name: str = typer.Argument(..., help="Cause name or rule id."),
                  rules: Optional[list[Path]] = RulesOpt, debug: bool = DebugOpt) -> None:
    """What a rule matches, why, what the applications see and what to change."""
    from .run import run_rules_explain
    _guard(lambda: run_rules_explain(name, rules or []), debug)


@rules_app.command("validate")
def rules_validate(folders: list[Path] = typer.Argument(None, parser=_path, help="Rule folders (default: the built-in rules)."),
                   debug: bool = DebugOpt) -> None:
    """Check rule files; every problem is listed as file:line."""
    from .run import run_rules_validate
    _guard(lambda: run_rules_validate(folders or []), debug)


@rules_app.command("test")
def rules_test(folders: list[Path] = typer.Argument(None, parser=_path, help="Rule folders (default: the built-in rules)."),
               debug: bool = DebugOpt) -> None:
    """Run each rule's own match / no_match examples."""
    from .run import run_rules_test
    _guard(lambda: run_rules_test(folders or []), debug)


@rules_app.command("features")
def rules_features() -> None:
    """The feature vocabulary rule conditions may use."""
    from .features.registry import FEATURES

    def show() -> int:
        for f in FEATURES.values():
            unit = f" [{f.unit}]" if f.unit else ""
            typer.echo(f"{f.name:36} {f.kind:6}{unit:9} {f.meaning}")
        return ExitStatus.OK
    _guard(show, False)


@app.command()
def completion(shell: str = typer.Argument(..., help="bash, zsh or fish")) -> None:
    """Print the shell completion script: `rstwatch completion bash > /etc/bash_completion.d/rstwatch`,
    `rstwatch completion fish > ~/.config/fish/completions/rstwatch.fish`, zsh: a file `_rstwatch` on $fpath."""
    from typer._completion_shared import get_completion_script    # typer's own scripts, not a copy
    if shell not in ("bash", "zsh", "fish"):
        raise typer.BadParameter(f"{shell!r}: choose bash, zsh or fish", param_hint="SHELL")
    typer.echo(get_completion_script(prog_name="rstwatch", complete_var="_RSTWATCH_COMPLETE", shell=shell))


@app.command()
def version() -> None:
    """Print the version."""
    _guard(lambda: typer.echo(__version__), False)


def _guard(action, debug: bool) -> None:
    """Turn expected failures into one line and an ExitStatus; tracebacks only with --debug."""
    from .report.output import guarded_stdout, settle_stdout
    real_stdout = sys.stdout
    sys.stdout = guarded_stdout()   # every write to stdout (echo, print, rich) fails as one line, not exit 70
    try:
        _run_guarded(action, debug)
    finally:
        sys.stdout = real_stdout
        settle_stdout()


def _run_guarded(action, debug: bool) -> None:
    from .errors import OutputClosed
    from .report.output import flush_stdout
    try:
        code = action()
        flush_stdout()          # a full disk or a closed pipe is reported here, not at Python's exit
    except typer.Exit:
        raise
    except RstwatchError as exc:
        if debug:
            raise
        # One line per problem (a rule error lists several); a newline inside one (a file name's) is escaped.
        for line in getattr(exc, "problems", None) or [str(exc)]:
            _tell(f"rstwatch: error: {line}")
        raise typer.Exit(ExitStatus.USAGE)
    except KeyboardInterrupt:
        _tell("rstwatch: interrupted")
        raise typer.Exit(ExitStatus.INTERRUPTED)
    except (BrokenPipeError, OutputClosed):
        _quiet_broken_pipe()
    except Exception as exc:  # an internal bug: say so in one line
        if debug:
            raise
        _tell(f"rstwatch: internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)")
        raise typer.Exit(ExitStatus.INTERNAL)
    raise typer.Exit(int(code or ExitStatus.OK))


def _tell(line: str) -> None:
    """One line on stderr; if stderr itself is gone (a hung-up terminal) there is no one to tell.
    Control characters (a file name's ESC or newline) are shown as escapes (report/plaintext.py)."""
    from .report.plaintext import visible
    try:
        typer.echo(visible(line), err=True)
    except OSError:
        pass


def _quiet_broken_pipe() -> None:
    # The reader of our stdout went away (`| head`): stop quietly, like cat does.
    import os
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    raise typer.Exit(ExitStatus.OK)


def main() -> None:
    if "_RSTWATCH_COMPLETE" in os.environ:    # a shell asking for completions (`rstwatch completion`)
        from typer._completion_classes import completion_init
        completion_init()
    errors = _click_errors()
    try:
        code = app(standalone_mode=False)       # the errors below are ours to show, not click's
    except errors.NoArgsIsHelpError as exc:     # `rstwatch`, `rstwatch rules`: the help
        exc.show()
        sys.exit(exc.exit_code)
    except errors.UsageError as exc:
        sys.exit(_usage_error(exc))
    except errors.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except typer.Abort:
        _tell("rstwatch: interrupted")
        sys.exit(ExitStatus.INTERRUPTED)
    except OSError as exc:          # click writing help or a completion script into a full disk
        sys.exit(stdout_failed(exc))
    sys.exit(code if isinstance(code, int) else ExitStatus.OK)


def _click_errors():
    """The module of the click that typer runs on (its own copy from typer 0.28, click before)."""
    module = sys.modules[next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError").__module__]
    if not hasattr(module, "NoArgsIsHelpError"):            # click < 8.2 shows that help itself
        module.NoArgsIsHelpError = type("NoArgsIsHelpError", (Exception,), {})
    return module


def _command_named(args: list[str]) -> str:
    """`rstwatch read`, `rstwatch rules explain`: the command the words name, for an error click
    raised without one (an option's missing value)."""
    import typer.main
    words, group = ["rstwatch"], typer.main.get_command(app)
    for arg in args:
        sub = getattr(group, "commands", {}).get(arg)
        if sub is None:
            break
        words.append(arg)
        group = sub
    return " ".join(words)


def _usage_error(exc) -> int:
    """A mistyped command, option or value in one line, as every other error (click's four: Usage,
    Try, a blank line, Error), naming the help that shows the right ones."""
    where = exc.ctx.command_path if exc.ctx is not None else _command_named(sys.argv[1:])
    message = exc.format_message().strip()
    if not message.endswith((".", "?", "!")):
        message += "."
    _tell(f"rstwatch: error: {message} See '{where} --help'.")
    return exc.exit_code
