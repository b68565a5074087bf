"""Lines of delimited text (CSV, Zeek's TSV) joined from columns of texts: in C (jsonfill.pyx,
join_texts) when it was built and every text is ASCII, else in Python, which stays as the
reference the tests compare it with. 100,000 CSV rows: ~0.05 s against ~0.2 s."""
from __future__ import annotations


def delimited(columns: list[list[str]], sep: str) -> str:
    """Row k: columns[0][k], sep, columns[1][k]... and a newline."""
    from .jsonl import join_texts
    text = join_texts(columns, sep, "\n") if join_texts is not None else None
    return python_delimited(columns, sep) if text is None else text


def python_delimited(columns: list[list[str]], sep: str) -> str:
    return "".join([sep.join(row) + "\n" for row in zip(*columns)])


def int_lists_joined(values: list, sep: str, empty: str) -> list[str]:
    """sep.join(map(str, v)), or `empty` for an empty list, for each list of plain ints (evidence
    frames): in C when it was built (~0.05 us a row against ~0.4)."""
    from .jsonl import int_list_texts
    if int_list_texts is not None:
        return int_list_texts(values, sep, empty)
    return python_int_lists_joined(values, sep, empty)


def python_int_lists_joined(values: list, sep: str, empty: str) -> list[str]:
    return [sep.join(map(int.__repr__, v)) or empty for v in values]
