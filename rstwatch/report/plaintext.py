"""Text that came from the input (file names, interface and process names), made safe to show.

A capture's name is chosen by whoever wrote the file. Shown raw on a terminal, ESC and OSC
sequences in it move the cursor, recolour or hide text, even write the clipboard (OSC 52); a
newline forges a line of output. `visible` writes every such character as an escape that a
person can read (`\\x1b`, `\\n`, `\\u202e`) and leaves all other text alone."""
from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(code: int) -> str:
    ch = chr(code)
    if ch in _NAMED:
        return _NAMED[ch]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# C0, DEL and C1 controls (C1 0x9b is CSI by itself on some terminals); the line and paragraph
# separators (a line break to many viewers); the bidirectional overrides and isolates, which
# reorder what is shown ("Trojan Source") and so can make one name read as another.
_UNSAFE = [*range(0x00, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, 0x061C, 0x200E, 0x200F,
           *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_TABLE = {code: _escape(code) for code in _UNSAFE}


def visible(text) -> str:
    """`text` as one line of plain characters: control characters written as escapes."""
    return str(text).translate(_TABLE)
