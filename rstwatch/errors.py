"""One exception family. Every error says where: a file, an offset or frame, or a rule file:line."""
from __future__ import annotations


class RstwatchError(Exception):
    """Base class: the message is shown to the user on one line, prefixed by `where`."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason

    def __reduce__(self):       # from a `--jobs` worker: rebuilt with both arguments (the default gives one)
        return type(self), (self.where, self.reason)


class CaptureError(RstwatchError):
    """A capture file could not be read at all (missing, not a capture, unsupported)."""


class RuleError(RstwatchError):
    """One or more rule files are invalid; `problems` lists every `file:line: reason`."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(problems[0].split(":", 1)[0] if problems else "rules",
                         f"{len(problems)} rule problem(s)")

    def __reduce__(self):
        return type(self), (self.problems,)

    def __str__(self) -> str:
        return "\n".join(self.problems)


class OutputError(RstwatchError):
    """The output file cannot be written (exists without --force, directory missing...)."""


class OutputClosed(Exception):
    """Whoever read our output went away (`| head`, a hung-up terminal): stop quietly.
    Not a BrokenPipeError on purpose: rich swallows those and exits 1 itself."""

    def __init__(self, where: str) -> None:
        super().__init__(f"{where}: the reader went away")
        self.where = where
