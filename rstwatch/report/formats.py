"""Every output format in one table: name -> how to write findings (all at once) and, for the
formats that can stream, how to write them as they come (`live`).

Adding a format is one entry in FORMATS. Writers are named as "module:function" strings and
imported on use, so a run pays the import time (matplotlib, pyarrow, jinja2) only for the
format it writes.
"""
from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import OutputError


@dataclass(frozen=True)
class Format:
    name: str
    suffixes: tuple[str, ...]          # `-o NAME.suffix` picks this format when --format is not given
    write: str                         # "module:function": write(findings, out, info) with out a text
                                       # stream, or a binary one when `binary`
    stream: str | None = None          # "module:Class": Class(out) with start(what) / write(df) / finish(tally)
    batches: str | None = None         # "module:Class" like `stream`, for `read` only: a binary format
                                       # written a table at a time whose file is finished at the end
    binary: bool = False
    needs_file: bool = False           # writes files beside its output (Markdown images), so no stdout
    help: str = ""

    def writer(self) -> Callable[..., None]:
        return _resolve(self.write)

    def batch_writer(self, out: Any, info: Any = None) -> Any:
        """What `read` writes its findings through a table at a time (the live sink, or `batches`)."""
        if self.batches is not None:
            return _resolve(self.batches)(out, info)
        return self.sink(out)

    def sink(self, out: Any) -> Any:
        if self.stream is None:
            raise OutputError(self.name, "cannot be streamed (use it with -o/--report FILE)")
        return _resolve(self.stream)(out)


FORMATS: dict[str, Format] = {f.name: f for f in [
    Format("table", (), "rstwatch.report.table:write_table", "rstwatch.report.table:TableSink",
           batches="rstwatch.report.table:TableBatches",
           help="for a terminal: one row per RST, then a summary by cause"),
    Format("jsonl", (".jsonl", ".ndjson", ".json"), "rstwatch.report.jsonl:write_jsonl",
           "rstwatch.report.jsonl:JsonlSink", help="one JSON object per RST (the field contract)"),
    Format("csv", (".csv",), "rstwatch.report.csvout:write_csv", "rstwatch.report.csvout:CsvSink",
           help="the JSON Lines columns; lists `;`-joined, errno as JSON"),
    Format("eve", (".eve.json",), "rstwatch.report.eve:write_eve", "rstwatch.report.eve:EveSink",
           help="Suricata EVE JSON, one event per RST"),
    Format("zeek", (".log",), "rstwatch.report.zeeklog:write_zeek", "rstwatch.report.zeeklog:ZeekSink",
           help="a Zeek TSV log"),
    Format("zeek-json", (), "rstwatch.report.zeeklog:write_zeek_json", "rstwatch.report.zeeklog:ZeekJsonSink",
           help="a Zeek JSON log"),
    Format("parquet", (".parquet", ".pq"), "rstwatch.report.parquet:write_parquet",
           batches="rstwatch.report.parquet:ParquetSink", binary=True,
           help="every column of the findings, for `rstwatch report` or a notebook later"),
    Format("html", (".html", ".htm"), "rstwatch.report.incident:write_html", batches="rstwatch.report.incident:html_sink",
           help="the incident report, one self-contained file"),
    Format("md", (".md", ".markdown"), "rstwatch.report.incident:write_markdown", needs_file=True,
           batches="rstwatch.report.incident:markdown_sink",
           help="the incident report as Markdown, images in NAME_files/ beside it"),
]}


def _resolve(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def by_suffix(path: Path | None) -> str | None:
    """The format a file name asks for (`x.parquet` -> parquet), if any."""
    if path is None:
        return None
    name = path.name.lower()
    pairs = sorted(((s, f.name) for f in FORMATS.values() for s in f.suffixes), key=lambda p: -len(p[0]))
    return next((fmt for suffix, fmt in pairs if name.endswith(suffix)), None)   # .eve.json before .json


# Names a format is also written under that another format claims (`eve.json` is Suricata's own
# name, a Zeek JSON log is a `.log`): no warning for these.
ALSO_NAMED = {"eve": (".json",), "zeek-json": (".log", ".json"), "table": (".txt",)}
COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip")


def name_disagrees(fmt: str | None, output: Path | None, chosen: Format) -> str | None:
    """What to warn about when -o's name and what is written disagree: a compressed file's
    suffix (rstwatch writes plain text), another format's suffix with --format given (`-T csv -o
    x.jsonl`), or without it a suffix no format has (`report -o x.pdf` writes HTML); else None."""
    if output is None:
        return None
    name = output.name.lower()
    if name.endswith(COMPRESSED):
        return f"{output}: rstwatch does not compress what it writes; writing plain {chosen.name}"
    named = by_suffix(output)
    if fmt is None:
        if named is None and output.suffix:
            return f"{output}: {output.suffix} is not a suffix rstwatch knows; writing {chosen.name}"
        return None
    if named is None or named == chosen.name or name.endswith(ALSO_NAMED.get(chosen.name, ())):
        return None
    return f"{output}: writing {chosen.name} as --format asks, though the name says {named}"


def tell_if_name_disagrees(fmt: str | None, output: Path | None, chosen: Format) -> None:
    """The warning above on stderr, once the output is known to be writable."""
    message = name_disagrees(fmt, output, chosen)
    if message:
        from .plaintext import visible
        print(f"rstwatch: warning: {visible(message)}", file=sys.stderr)


def choose(fmt: str | None, output: Path | None, terminal: bool, default: str | None = None) -> Format:
    """--format wins, then the output's suffix, then `default`, then table on a terminal, else jsonl."""
    name = fmt or by_suffix(output) or default or ("table" if output is None and terminal else "jsonl")
    if name not in FORMATS:
        raise OutputError(name, f"unknown format (known: {', '.join(FORMATS)})")
    chosen = FORMATS[name]
    if chosen.needs_file and output is None:
        raise OutputError(name, "needs -o FILE (its images are written beside it)")
    if chosen.binary and output is None and terminal:
        raise OutputError(name, "is binary: write it to a file with -o FILE")
    return chosen
