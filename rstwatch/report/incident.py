"""The incident report: what the findings add up to, as one model that an HTML and a Markdown
template render. Aggregates are computed over all findings; ladders are drawn for two or three
sampled connections per cause, and the table is capped, so 100,000 resets stay a small file."""
from __future__ import annotations

import base64
import io
import os
import re
import stat
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

import pandas as pd

from .summary import FIRST_ONLY, reset_weights

from .digest import SAMPLES, TABLE_ROWS, Digest

EMBED_CSV_BYTES = 1_000_000   # the full CSV is embedded up to this size, else written beside the report
TOP = 10                      # top services / clients


def _utc(ts: float, fmt: str = "%Y-%m-%d %H:%M:%S.%f") -> str:
    text = datetime.fromtimestamp(ts, tz=timezone.utc).strftime(fmt)
    return text[:-3] if fmt.endswith("%f") else text


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    if seconds < 365 * 86400:
        return f"{seconds / 86400:.1f} days"
    return f"{seconds / (365.25 * 86400):.1f} years"


def _days(t0: float, t1: float) -> str:
    """The UTC day (or first and last day) the resets fall on, for the page's subtitle."""
    first, last = _utc(t0, "%Y-%m-%d"), _utc(t1, "%Y-%m-%d")
    return f"on {first}" if first == last else f"from {first} to {last}"


def _timeline_note(steps: list[float], cut: float) -> str:
    """What the figure's caption must add when the axis was cut into panels."""
    if len(steps) == 1:
        return ""
    from .timeline import _human
    return (f" The axis is cut into {len(steps)} periods with resets: the quiet time between them ({_duration(cut)}"
            f" in all) is left out, each cut marked //; bins are {', '.join(_human(s) for s in steps)} from left to right.")


def _endpoint(host: str, port: Any) -> str:
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def endpoints(df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(server endpoint, client address) per finding; a flood names its target host, port *."""
    flood = (df["sport"].astype("int64") == 0) & (df["dport"].astype("int64") == 0)
    by_server = df["sender"] == "server"
    srv_host = df["src"].where(by_server, df["dst"])
    srv_port = df["sport"].where(by_server, df["dport"]).astype(str)
    srv_port = srv_port.where(~flood, "*")
    server = [_endpoint(h, p) for h, p in zip(srv_host.tolist(), srv_port.tolist())]     # lists: see digest._count
    client = df["dst"].where(by_server, df["src"]).where(~flood, df["src"])
    return pd.Series(server, index=df.index), client


def _top(frame: pd.DataFrame) -> list[dict]:
    """The TOP endpoints by resets, from (key, cause, n) rows, with their three main causes."""
    frame = frame.assign(key=frame["key"].astype(str), cause=frame["cause"].astype(str))
    total = frame.groupby("key")["n"].sum().sort_values(ascending=False, kind="stable").head(TOP)
    out = []
    for key, n in total.items():
        sub = frame[frame["key"] == key].groupby("cause")["n"].sum().sort_values(ascending=False)
        out.append({"name": key, "resets": int(n),
                    "causes": ", ".join(f"{c} {int(v)}" for c, v in sub.head(3).items())
                    + (f", +{len(sub) - 3} more" if len(sub) > 3 else "")})
    return out


def _flood_rows(services: list[dict], clients: list[dict]) -> dict[str, bool]:
    """Whether a top table shows a flood finding's `*` (a flood has no one client, and its finding
    no one port): the report then says what it stands for, under that table."""
    return {"services_flood": any(t["name"].endswith(":*") for t in services),
            "clients_flood": any(t["name"] == "*" for t in clients)}


def _samples(grp: pd.DataFrame) -> pd.DataFrame:
    """Up to SAMPLES findings of one cause, from different servers and files where possible."""
    distinct = grp.drop_duplicates(["file", "_server"]).head(SAMPLES)
    if len(distinct) < SAMPLES:
        rest = grp.drop(index=distinct.index).head(SAMPLES - len(distinct))
        distinct = pd.concat([distinct, rest])
    return distinct


@contextmanager
def progress() -> Iterator[Callable[[str], None]]:
    """On a terminal, a line saying which part of the report is being made (the read before it
    has its own bar; a report of many causes takes seconds more); elsewhere nothing."""
    if not sys.stderr.isatty():
        yield lambda text: None
        return
    from rich.console import Console
    with Console(stderr=True).status("report: summing up the findings") as status:
        yield lambda text: status.update(f"report: {text}")


_say: list[Callable[[str], None]] = [lambda text: None]      # the running report's progress line


@contextmanager
def _reporting() -> Iterator[Callable[[str], None]]:
    with progress() as say:
        _say[0] = say
        try:
            yield say
        finally:
            _say[0] = lambda text: None


def build(df: pd.DataFrame | None, info, standalone_svg: bool = False, digest: Digest | None = None) -> dict[str, Any]:
    """Everything the templates show, from the findings or from their digest (a report read as a
    stream of tables: report/digest.py)."""
    from .. import __version__
    from .runinfo import rules_digest, with_digests
    digest = digest if digest is not None else Digest.of(df)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    names = sorted({Path(str(f.path)).name for f in info.inputs}) or sorted(digest.file_names)
    model: dict[str, Any] = {
        "title": info.title or f"TCP resets in {', '.join(names[:3])}{' and more' if len(names) > 3 else ''}",
        "generated": now, "version": __version__, "findings": digest.findings, "packets": info.packets,
        "files": info.files, "notes": list(info.warnings),
    }
    model["provenance"] = _provenance(info, with_digests, rules_digest)
    if not digest.findings:
        model.update(resets=0, empty=True)
        return model
    per_cause = digest.per_cause()
    resets = int(per_cause.sum())
    order = list(per_cause.index)
    from .timeline import _human, colours, timeline_svg
    palette = colours(order)
    t0, t1 = digest.t0, digest.t1
    _say[0](f"drawing the timeline of {resets:,} resets")
    svg, steps, cut = timeline_svg(digest.reset_table(), order, palette, standalone=standalone_svg)
    top = ", ".join(f"{c} ({int(n):,}, {_share(n, resets)})" for c, n in per_cause.head(3).items())
    model.update(
        empty=False, resets=resets, connections=digest.connections(), start=_utc(t0), end=_utc(t1),
        span=_duration(t1 - t0), day=_days(t0, t1), causes_sentence=top, cause_count=len(order),
        drops=_drops(info), timeline=svg, bin_text=_human(steps[0]) if len(set(steps)) == 1 else "time",
        timeline_note=_timeline_note(steps, cut), palette=palette,
        top_services=_top(digest.endpoint_counts("server", TOP)), top_clients=_top(digest.endpoint_counts("client", TOP)),
    )
    model.update(_flood_rows(model["top_services"], model["top_clients"]))
    model["sections"], notes = _sections(digest, order, palette, info, per_cause, resets)
    model["notes"] += notes
    model["table"] = _table(digest.rows.head(TABLE_ROWS), info)
    model["table_capped"] = digest.findings > TABLE_ROWS
    return model


def _share(n: float, total: int) -> str:
    pct = 100 * n / total       # never "0%" for some nor "100%" for not all (2 of 602, 600 of 602)
    return "<1%" if 0 < pct < 1 else ">99%" if 99 < pct < 100 else f"{pct:.0f}%"


def _drops(info) -> str:
    if info.dropped is not None:
        of = f" of {info.received:,} packets" if info.received else ""
        return f"the capture dropped {info.dropped:,}{of}"
    return "capture drops not known (capture files do not record them)"


def _provenance(info, with_digests, rules_digest) -> dict[str, Any]:
    carried = info.carried or {}
    inputs = [f.to_dict() for f in with_digests(info.inputs)]
    return {"inputs": inputs, "carried_version": carried.get("rstwatch"),
            "rules": len(info.rules), "rule_ids": ", ".join(sorted(r.id for r in info.rules)),
            "rules_sha256": rules_digest(info.rules) if info.rules else "",
            "rule_dirs": ", ".join(info.rule_dirs) or "built-in rules only",
            "command": " ".join(Path(sys.argv[0]).name if i == 0 else a for i, a in enumerate(sys.argv)),
            "source": info.source}


def _sections(digest: Digest, order, palette, info, per_cause, resets) -> tuple[list[dict], list[str]]:
    from .ladder import ladder_svg
    from .packets import packets_for_samples
    rules = {r.name: r for r in info.rules}
    kept = digest.rows
    samples = {c: _samples(kept[kept["cause"] == c]) for c in order}
    every = pd.concat(list(samples.values()))
    packets, notes = packets_for_samples(every, info.packets_for)
    sections = []
    for n, cause in enumerate(order):
        _say[0](f"cause {n + 1} of {len(order)}: {cause}, its packet ladders")
        stats = digest.causes[cause]
        rule = rules.get(cause)
        first = kept[kept["cause"] == cause].iloc[0]
        alts = digest.value_counts(cause, "alternatives")
        examples = []
        for k, (idx, row) in enumerate(samples[cause].iterrows()):
            pk = packets.get(idx)
            client, server, lanes = _ends(row, pk)
            svg = ladder_svg(pk, int(row["frame"]), client, server, set(int(x) for x in row["evidence"] or []),
                             label=f"packet ladder of frame {row['frame']} ({cause})", uid=f"c{n}e{k}",
                             lanes=lanes) if pk else None
            examples.append({"file": str(row["file"]), "name": Path(str(row["file"])).name, "frame": int(row["frame"]),
                             "time": _utc(float(row["time"])), "summary": row["summary"], "filter": row["wireshark_filter"],
                             "history": row.get("conn_state", ""), "zeek": row.get("history", ""),
                             "evidence": _link(info, row), "ladder": svg, "packets": len(pk) if pk else 0,
                             "id": f"ladder-{cause}-{k + 1}"})
        errno = first["errno"] or {}
        sections.append({
            "cause": cause, "colour": palette[cause], "resets": int(per_cause[cause]), "findings": stats.findings,
            "share": _share(per_cause[cause], resets),
            "title": first["title"], "rule": first["rule"],
            "notes": rule.confidence_notes if rule else "", "references": "; ".join(rule.references) if rule else "",
            "senders": ", ".join(f"{k} {v}" for k, v in digest.value_counts(cause, "senders").items()),
            "receiver_errno": ", ".join(errno.get("receiver") or []) or "nothing",
            "sender_errno": ", ".join(errno.get("sender") or []) or "nothing",
            "remediation": _remediation(stats, rule, first),
            "conf_min": f"{stats.conf_min:.2f}", "conf_max": f"{stats.conf_max:.2f}",
            "alternatives": ", ".join(f"{a} ({v})" if stats.findings > 1 else str(a) for a, v in alts.items()) or "none",
            "examples": examples,
        })
    return sections, notes


def _remediation(stats, rule, first) -> list[str]:
    """The cause's remediation: the findings' own texts when they all share them, else the rule's
    with its placeholders (`:{server_port}`, not the first finding's port for all of them), or
    without the rule (saved findings of a rule folder not given again) the first's, marked so."""
    texts = list(first["remediation"] or [])
    if stats.remediation_varies and rule is not None:
        from ..engine.model import outline
        return [outline(t) for t in rule.remediation]
    if stats.remediation_varies and texts:
        texts[0] += FIRST_ONLY
    return texts


def _ends(row, packets) -> tuple[tuple[str, int], tuple[str, int], tuple[str, str]]:
    """(client, server, lane names) of a finding's connection, from its RST's direction. A flood
    row names no ports: its sample connection's own packets tell (a SYN's sender is the client)."""
    src, dst = (str(row["src"]), int(row["sport"])), (str(row["dst"]), int(row["dport"]))
    if packets and src[1] == 0 and dst[1] == 0:
        syn = next((p for p in packets if p.flags & 0x12 == 0x02), None)
        if syn is not None:
            return (syn.src, syn.sport), (syn.dst, syn.dport), ("client", "server")
        rst = next((p for p in packets if p.frame == int(row["frame"])), packets[-1])
        return (rst.dst, rst.dport), (rst.src, rst.sport), ("RST receiver", "RST sender")
    lanes = ("client", "server") if row["sender"] in ("client", "server") else ("RST receiver", "RST sender")
    return ((src, dst) if row["sender"] == "client" else (dst, src)) + (lanes,)


def _link(info, row) -> str | None:
    path = info.evidence.get((str(row["file"]), int(row["frame"])))
    if path is None:
        return None
    base = info.output.parent if info.output is not None else Path(".")
    return Path(os.path.relpath(path, base)).as_posix()


def _table(df: pd.DataFrame, info) -> list[dict]:
    from .table import connection_text
    return [{"time": _utc(r.time, "%H:%M:%S.%f"), "file": Path(str(r.file)).name, "frame": int(r.frame),
             "conn": connection_text(r.src, r.sport, r.dst, r.dport), "sender": r.sender, "cause": r.cause,
             "confidence": f"{r.confidence:.2f}", "summary": r.summary,
             "evidence": _link(info, {"file": r.file, "frame": r.frame})}
            for r in df.itertuples(index=False)]


class CsvSpool:
    """The complete findings as CSV, a table at a time: kept in memory up to EMBED_CSV_BYTES (a
    data: link in the report), past that written on into a file beside the report (or, with the
    report on stdout, dropped with a note). The side file is written like any output: a
    temporary name, no link followed, moved into place at the end, removed if the run fails."""

    def __init__(self, info, side_name: str) -> None:
        from .csvout import CsvSink
        self.side_name = side_name
        from .output import has_room_beside
        self.info, self.side = info, (info.output.with_name(side_name) if has_room_beside(info.output) else None)
        self.blocked = self.side is not None and os.path.lexists(self.side) and not info.force
        if self.blocked:                        # kept: a large CSV is then not written, and the report says why
            self.side = None
        self.buf = io.StringIO()
        self.sink = CsvSink(self.buf)
        self.sink.start("report")
        self.size, self.spilled, self.dropped = 0, None, False
        self._exit = None

    def add(self, df: pd.DataFrame) -> None:
        if self.dropped:
            return                              # too large to embed, nowhere to write: not made at all
        self.sink.write(df)
        self._drain()

    def _drain(self, last: bool = False) -> None:
        # the buffer's position is its length in characters: no copy of it to look
        if not last and self.spilled is None and not self.dropped and self.buf.tell() <= EMBED_CSV_BYTES:
            return                              # still small enough to embed (bytes are checked at the end)
        text = self.buf.getvalue()
        self.buf = self.sink.out = io.StringIO()     # a new buffer (emptying 85 MB of one took 0.14 s)
        self.size += len(text) if text.isascii() else len(text.encode())
        if self.dropped:
            return
        if self.side is None:                   # no file to write beside: not kept, the report says so
            self.dropped = True
            return
        if self.spilled is None:
            from contextlib import ExitStack
            from .output import open_output
            self._exit = ExitStack()
            self.spilled = self._exit.enter_context(open_output(self.side, self.info.force))
        self.spilled.write(text)

    def result(self) -> dict[str, str]:
        self.sink.finish(None)
        data = self.buf.getvalue().encode()
        if self.spilled is None and not self.dropped and len(data) <= EMBED_CSV_BYTES:
            return {"href": "data:text/csv;base64," + base64.b64encode(data).decode(), "download": "findings.csv",
                    "size": f"{len(data) / 1024:.0f} KiB"}
        if self.side is None:
            why = (f"{self.info.output.with_name(self.side_name).name} exists (--force replaces it)" if self.blocked
                   else "the report went to stdout" if self.info.output is None
                   else f"{self.info.output} is not a regular file")
            return {"href": "", "note": f"the full findings are too large to embed and were not written beside the report "
                            f"({why}): write them with `rstwatch read --format csv`"}
        self._drain(last=True)
        self._exit.close()                      # the side file moved into place
        return {"href": self.side.name, "size": f"{self.size / 2**20:.1f} MiB", "download": self.side.name}

    def abort(self) -> None:
        if self._exit is not None:
            import sys
            self._exit.__exit__(*sys.exc_info())    # the temporary file removed, nothing moved into place


def _full_csv(df: pd.DataFrame, info, side_name: str) -> dict[str, str]:
    """The complete findings as CSV: a data: link when small, else a file beside the report."""
    spool = CsvSpool(info, side_name)
    for start in range(0, len(df), CSV_SLICE_ROWS):     # as `read` hands the CSV writer its findings
        spool.add(df.iloc[start:start + CSV_SLICE_ROWS])
    return spool.result()


# The findings go to the CSV writer this many at a time: its texts for 100,000 findings at once
# were fresh memory the kernel zeroed page by page (100,000 findings: 0.95 s, in slices 0.57 s).
CSV_SLICE_ROWS = 5_000


def _env():
    import jinja2
    from .mdtext import md_code, md_link, md_prose, md_text
    env = jinja2.Environment(loader=jinja2.PackageLoader("rstwatch.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html.j2"]), trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(md=md_text, mdprose=md_prose, mdcode=md_code, mdlink=md_link)     # the Markdown template's escaping
    return env


def write_html(df: pd.DataFrame, out: TextIO, info) -> None:
    stem = info.output.stem if info.output is not None else "findings"
    render_html(Digest.of(df), lambda: _full_csv(df, info, f"{stem}.findings.csv"), out, info)


def render_html(digest: Digest, csv, out: TextIO, info) -> None:
    with _reporting() as say:
        model = build(None, info, digest=digest)
        if not model["empty"]:
            say("the findings as CSV")
            model["csv"] = csv()
        say("writing the page")
        out.write(_env().get_template("report.html.j2").render(**model))


def write_markdown(df: pd.DataFrame, out: TextIO, info) -> None:
    """Markdown with the pictures as SVG files in NAME_files/ beside it."""
    render_markdown(Digest.of(df), lambda: _full_csv(df, info, f"{info.output.stem}.findings.csv"), out, info)


def render_markdown(digest: Digest, csv, out: TextIO, info) -> None:
    with _reporting():
        _render_markdown(digest, csv, out, info)


def _render_markdown(digest: Digest, csv, out: TextIO, info) -> None:
    model = build(None, info, standalone_svg=True, digest=digest)
    folder = info.output.with_name(info.output.stem + "_files")
    if not model["empty"]:
        files: dict[str, str] = {"timeline.svg": model["timeline"]}
        model["timeline"] = f"{folder.name}/timeline.svg"
        from .ladder import ladder_svg  # noqa: F401  (standalone ladders carry their own colours)
        for sec in model["sections"]:
            for ex in sec["examples"]:
                if ex["ladder"]:
                    name = f"{ex['id']}.svg"
                    files[name] = _standalone(ex["ladder"])
                    ex["ladder"] = f"{folder.name}/{name}"
        model["vantage"] = _vantage_files(info.vantage, folder, files)
        model["csv"] = csv()
        if model["csv"].get("href", "").startswith("data:"):
            files["findings.csv"] = base64.b64decode(model["csv"]["href"].split(",", 1)[1]).decode()
            model["csv"] = {"href": f"{folder.name}/findings.csv", "size": model["csv"]["size"]}
        _write_folder(folder, files, info.force)
    model.setdefault("vantage", None)
    out.write(_env().get_template("report.md.j2").render(**model))


def _vantage_files(facts: dict | None, folder: Path, files: dict[str, str]) -> dict | None:
    """The Vantage points section of a joined run (read --hosts) for the Markdown template: its
    ladders become files in NAME_files/ beside the report's other pictures."""
    if facts is None:
        return None
    from ..vantage.section import LADDER_CAPTION
    connections = []
    for c in facts["connections"]:
        files[f"{c['id']}.svg"] = _standalone(c["ladder"])
        connections.append(dict(c, ladder=f"{folder.name}/{c['id']}.svg"))
    return dict(facts, connections=connections, caption=LADDER_CAPTION)


class ReportSink:
    """`read -o r.html|r.md` as its findings stream: a digest for the report (report/digest.py)
    and the full CSV written as they go; the report itself rendered at the end."""

    def __init__(self, out: TextIO, info, markdown: bool = False) -> None:
        self.out, self.info, self.markdown = out, info, markdown
        stem = info.output.stem if info.output is not None else "findings"
        self.digest, self.csv = Digest(), CsvSpool(info, f"{stem}.findings.csv")

    def start(self, what: str) -> None:
        pass

    def write(self, df: pd.DataFrame) -> None:
        self.digest.add(df)
        self.csv.add(df)

    def finish(self, tally=None) -> None:
        from ..analyze import _give_back
        _give_back()                            # what the tables freed, before the report draws (-9 MiB at its peak)
        render = render_markdown if self.markdown else render_html
        render(self.digest, self.csv.result, self.out, self.info)

    def abort(self) -> None:
        self.csv.abort()


def check_outputs(output: Path | None, force: bool, markdown: bool) -> None:
    """Before any work: a Markdown report's NAME_files/ folder can be written (it holds files
    only with --force). The CSV beside a report never stops one: see CsvSpool."""
    if markdown and output is not None:
        folder = output.with_name(output.stem + "_files")
        from ..errors import OutputError
        if os.path.islink(folder):
            raise OutputError(str(folder), "is a symbolic link; refusing to follow it")
        if folder.exists() and not folder.is_dir():
            raise OutputError(str(folder), "exists and is not a folder")
        if folder.is_dir() and any(folder.iterdir()) and not force:
            raise OutputError(str(folder), "already exists (use --force to overwrite)")


def html_sink(out: TextIO, info) -> ReportSink:
    return ReportSink(out, info)


def markdown_sink(out: TextIO, info) -> ReportSink:
    return ReportSink(out, info, markdown=True)


def _standalone(svg: str) -> str:
    style = "<style>svg{color:#1f2328} @media (prefers-color-scheme: dark){svg{color:#e6edf3}}</style>"
    head = svg.index(">") + 1
    return '<?xml version="1.0" encoding="utf-8"?>\n' + svg[:head] + style + svg[head:]


def _write_folder(folder: Path, files: dict[str, str], force: bool) -> None:
    from .output import private_folder, write_file
    fd = private_folder(folder, force)      # the folder itself never a link, held open while written
    try:
        for name, text in files.items():
            write_file(folder / name, text.encode("utf-8"), True, dir_fd=fd)
        _remove_stale(fd, set(files))
    finally:
        os.close(fd)


# What a Markdown report writes in NAME_files/ (timeline, ladders per cause and vantage point, CSV)
_REPORT_FILE = re.compile(r"(timeline|(ladder|vantage)-[^/]+)\.svg|findings\.csv")


def _remove_stale(fd: int, written: set[str]) -> None:
    """A report replaced with --force: the files a report writes that this one did not (another
    cause's ladder, a CSV now too large for the folder) go, so the folder holds what the report
    shows. Only regular files named as a report names them; the user's own files (notes.txt,
    diagram.svg, a link) stay, and one that cannot be removed is left (the report is written)."""
    for name in os.listdir(fd):
        if name in written or not _REPORT_FILE.fullmatch(name):
            continue
        try:
            if stat.S_ISREG(os.lstat(name, dir_fd=fd).st_mode):
                os.unlink(name, dir_fd=fd)
        except OSError:
            pass
