"""Text and links in the Markdown report, written so that a renderer shows them as they are.

A capture's file name reaches the report (the title, the findings table, the notes, the
provenance); whoever named the file can put HTML (`<svg onload=...>`), a link
(`[x](javascript:...)`), a `|` that splits a table cell or a newline that ends a table row into it.
Each value goes through one of these filters (registered in incident._env): input text is escaped,
a rule's prose keeps its Markdown but not HTML, code spans are fenced past any backticks in them,
and a link is written only to a relative path or an https address."""
from __future__ import annotations

import re
from urllib.parse import quote

from .plaintext import visible

_HTML = {"&": "&amp;", "<": "&lt;"}        # with no `<` there is no tag; `>` alone is text ("a -> b")
# Inline Markdown: backslash, code, emphasis, links and images, table cells, strikethrough,
# heading marks, HTML. `_` inside a word emphasises nothing, so names like tcp_abort stay readable.
_INLINE = re.compile(r"[\\`*\[\]|~#&<]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# What starts a block when a value opens a line (`- {{ n }}`): a quote, a list item, a setext
# underline, a numbered item ("1." or "1)").
_BLOCK_START = re.compile(r"(\s*)([-+=>]|\d+(?=[.)]))")


def _one(m: re.Match) -> str:
    c = m.group(0)
    return _HTML.get(c) or "\\" + c


def md_text(value, start: bool = False) -> str:
    """Text from the input (a file name, a warning naming one) as one line that renders as it
    reads: controls shown as escapes, HTML and Markdown syntax escaped. `start`: the value opens
    a line, so a list or quote marker at its start is escaped too."""
    text = _INLINE.sub(_one, visible(value))
    m = _BLOCK_START.match(text) if start else None
    if m is None:
        return text
    at = m.end() if m.group(2).isdigit() else m.start(2)     # "1." -> "1\.", "- x" -> "\- x"
    return text[:at] + "\\" + text[at:]


def md_prose(value, cell: bool = False) -> str:
    """Text a rule wrote (titles, notes, what to change, summaries from its explain template):
    its Markdown is kept (`code` in a note), HTML is not, and it stays on one line (in a table
    cell, `|` escaped)."""
    text = visible(str(value).replace("\n", " ")).replace("&", "&amp;").replace("<", "&lt;")
    return text.replace("|", "\\|") if cell else text


def md_code(value, cell: bool = False) -> str:
    """A code span holding `value` literally: fenced with more backticks than any run inside it;
    in a table cell `|` is escaped (GFM splits cells before it reads code spans)."""
    text = visible(value)
    if cell:
        text = text.replace("|", "\\|")
    run = max((len(r) for r in re.findall(r"`+", text)), default=0)
    fence = "`" * (run + 1)
    pad = " " if run or text.startswith(" ") or text.endswith(" ") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_link(target) -> str | None:
    """A link target that can only be a relative path or an https address. A relative path is
    percent-encoded, `:` too, so it never reads as a scheme (`javascript:x` becomes the file
    `javascript%3Ax`); an absolute path, or https with spaces, brackets or controls, gives None: no link."""
    if target is None:
        return None
    text = str(target)
    if text.startswith("https://"):
        return None if re.search(r"[\s<>()\\`\x00-\x1f\x7f]", text) else text
    if not text or text.startswith("/"):
        return None
    return quote(text, safe="/")
