"""The incident report: what the findings add up to, as one model that an HTML and a Markdown
template render. Aggregates are computed over all findings; ladders are drawn for two or three
sampled connections per cause, and the table is capped, so 100,000 resets stay a small file."""
from __future__ import annotations

import base64
import io
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from .summary import reset_weights

TABLE_ROWS = 500              # rows shown in the findings table
EMBED_CSV_BYTES = 1_000_000   # the full CSV is embedded up to this size, else written beside the report
SAMPLES = 3                   # example connections drawn per cause
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
    return f"{seconds / 3600:.1f} h"


def _endpoint(host: str, port: Any) -> str:
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def endpoints(df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(server endpoint, client address) per finding; a flood names its target host, port *."""
    flood = (df["sport"].astype("int64") == 0) & (df["dport"].astype("int64") == 0)
    by_server = df["sender"] == "server"
    srv_host = df["src"].where(by_server, df["dst"])
    srv_port = df["sport"].where(by_server, df["dport"]).astype(str)
    srv_port = srv_port.where(~flood, "*")
    server = [_endpoint(h, p) for h, p in zip(srv_host, srv_port)]
    client = df["dst"].where(by_server, df["src"]).where(~flood, df["src"])
    return pd.Series(server, index=df.index), client


def _top(keys: pd.Series, weights: pd.Series, causes: pd.Series) -> list[dict]:
    frame = pd.DataFrame({"key": keys.astype(str), "n": weights, "cause": causes})
    total = frame.groupby("key")["n"].sum().sort_values(ascending=False, kind="stable").head(TOP)
    out = []
    for key, n in total.items():
        sub = frame[frame["key"] == key].groupby("cause")["n"].sum().sort_values(ascending=False)
        out.append({"name": key, "resets": int(n),
                    "causes": ", ".join(f"{c} {int(v)}" for c, v in sub.head(3).items())
                    + (f", +{len(sub) - 3} more" if len(sub) > 3 else "")})
    return out


def _connections(df: pd.DataFrame) -> int:
    """Distinct connections: a connection's two directions and its several RSTs count once."""
    flood = df["connections"].notna() if "connections" in df else pd.Series(False, index=df.index)
    single = df[~flood]
    first = single["conn_first_frame"] if "conn_first_frame" in single else single["frame"]
    keys = set()
    for f, a, p, b, q, s in zip(single["file"], single["src"], single["sport"], single["dst"], single["dport"], first):
        x, y = (str(a), int(p)), (str(b), int(q))
        keys.add((f, min(x, y), max(x, y), str(s)))
    return len(keys) + (int(pd.to_numeric(df.loc[flood, "connections"]).sum()) if flood.any() else 0)


def _samples(grp: pd.DataFrame) -> pd.DataFrame:
    """Up to SAMPLES findings of one cause, from different servers and files where possible."""
    distinct = grp.drop_duplicates(["file", "_server"]).head(SAMPLES)
    if len(distinct) < SAMPLES:
        rest = grp.drop(index=distinct.index).head(SAMPLES - len(distinct))
        distinct = pd.concat([distinct, rest])
    return distinct


def build(df: pd.DataFrame, info, standalone_svg: bool = False) -> dict[str, Any]:
    """Everything the templates show."""
    from .. import __version__
    from .runinfo import rules_digest, with_digests
    df = df.sort_values(["time", "file", "frame"], kind="stable", ignore_index=True) if len(df) else df
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    names = sorted({Path(str(f.path)).name for f in info.inputs}) or sorted({Path(str(f)).name for f in df.get("file", [])})
    model: dict[str, Any] = {
        "title": info.title or f"TCP resets in {', '.join(names[:3])}{' and more' if len(names) > 3 else ''}",
        "generated": now, "version": __version__, "findings": len(df), "packets": info.packets,
        "files": info.files, "notes": list(info.warnings),
    }
    model["provenance"] = _provenance(info, with_digests, rules_digest)
    if not len(df):
        model.update(resets=0, empty=True)
        return model
    weights = reset_weights(df)
    server, client = endpoints(df)
    df = df.assign(_server=server, _client=client, _w=weights)
    resets = int(weights.sum())
    per_cause = df.groupby("cause")["_w"].sum().sort_values(ascending=False, kind="stable")
    order = list(per_cause.index)
    from .timeline import _human, colours, timeline_svg
    palette = colours(order)
    t0, t1 = float(df["time"].min()), float(df["time"].max())
    svg, step = timeline_svg(df, order, palette, standalone=standalone_svg)
    top = ", ".join(f"{c} ({int(n):,}, {100 * n / resets:.0f}%)" for c, n in per_cause.head(3).items())
    model.update(
        empty=False, resets=resets, connections=_connections(df), start=_utc(t0), end=_utc(t1),
        span=_duration(t1 - t0), day=_utc(t0, "%Y-%m-%d"), causes_sentence=top, cause_count=len(order),
        drops=_drops(info), timeline=svg, bin_text=_human(step), palette=palette,
        top_services=_top(df["_server"], weights, df["cause"]), top_clients=_top(df["_client"], weights, df["cause"]),
    )
    model["sections"], notes = _sections(df, order, palette, info, per_cause, resets)
    model["notes"] += notes
    model["table"] = _table(df.head(TABLE_ROWS), info)
    model["table_capped"] = len(df) > TABLE_ROWS
    return model


def _share(n: float, total: int) -> str:
    pct = 100 * n / total
    return "<1%" if 0 < pct < 1 else f"{pct:.0f}%"


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


def _sections(df, order, palette, info, per_cause, resets) -> tuple[list[dict], list[str]]:
    from .ladder import ladder_svg
    from .packets import packets_for_samples
    rules = {r.name: r for r in info.rules}
    samples = {c: _samples(df[df["cause"] == c]) for c in order}
    every = pd.concat(list(samples.values()))
    packets, notes = packets_for_samples(every, info.packets_for)
    sections = []
    for n, cause in enumerate(order):
        grp = df[df["cause"] == cause]
        rule = rules.get(cause)
        first = grp.iloc[0]
        conf = grp["confidence"].astype(float)
        alts = pd.Series([a for lst in grp["alternatives"] for a in (lst or [])], dtype=object).value_counts()
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
            "cause": cause, "colour": palette[cause], "resets": int(per_cause[cause]), "findings": len(grp),
            "share": _share(per_cause[cause], resets),
            "title": first["title"], "rule": first["rule"],
            "notes": rule.confidence_notes if rule else "", "references": "; ".join(rule.references) if rule else "",
            "senders": ", ".join(f"{k} {v}" for k, v in grp["sender"].value_counts().items()),
            "receiver_errno": ", ".join(errno.get("receiver") or []) or "nothing",
            "sender_errno": ", ".join(errno.get("sender") or []) or "nothing",
            "remediation": list(first["remediation"] or []),
            "conf_min": f"{conf.min():.2f}", "conf_max": f"{conf.max():.2f}",
            "alternatives": ", ".join(f"{a} ({v})" if len(grp) > 1 else str(a) for a, v in alts.items()) or "none",
            "examples": examples,
        })
    return sections, notes


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


def _full_csv(df: pd.DataFrame, info, side_name: str) -> dict[str, str]:
    """The complete findings as CSV: a data: link when small, else a file beside the report."""
    from .csvout import write_csv
    buf = io.StringIO()
    write_csv(df, buf)
    data = buf.getvalue().encode()
    if len(data) <= EMBED_CSV_BYTES or info.output is None:
        if len(data) > EMBED_CSV_BYTES:
            return {"note": "the full findings are too large to embed: write them with `rstwatch read -f csv`"}
        return {"href": "data:text/csv;base64," + base64.b64encode(data).decode(), "download": "findings.csv",
                "size": f"{len(data) / 1024:.0f} KiB"}
    side = info.output.with_name(side_name)
    _write_beside(side, data, info.force)
    return {"href": side.name, "size": f"{len(data) / 2**20:.1f} MiB", "download": side.name}


def _write_beside(path: Path, data: bytes, force: bool) -> None:
    from .output import write_file
    write_file(path, data, force)           # never through a planted link, no .part left behind


def _env():
    import jinja2
    return jinja2.Environment(loader=jinja2.PackageLoader("rstwatch.report", "templates"),
                              autoescape=jinja2.select_autoescape(["html.j2"]), trim_blocks=True, lstrip_blocks=True,
                              undefined=jinja2.StrictUndefined)


def write_html(df: pd.DataFrame, out: TextIO, info) -> None:
    model = build(df, info)
    if not model["empty"]:
        stem = info.output.stem if info.output is not None else "findings"
        model["csv"] = _full_csv(df, info, f"{stem}.findings.csv")
    out.write(_env().get_template("report.html.j2").render(**model))


def write_markdown(df: pd.DataFrame, out: TextIO, info) -> None:
    """Markdown with the pictures as SVG files in NAME_files/ beside it."""
    model = build(df, info, standalone_svg=True)
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
        model["csv"] = _full_csv(df, info, f"{info.output.stem}.findings.csv")
        if model["csv"].get("href", "").startswith("data:"):
            files["findings.csv"] = base64.b64decode(model["csv"]["href"].split(",", 1)[1]).decode()
            model["csv"] = {"href": f"{folder.name}/findings.csv", "size": model["csv"]["size"]}
        _write_folder(folder, files, info.force)
    out.write(_env().get_template("report.md.j2").render(**model))


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
    finally:
        os.close(fd)
