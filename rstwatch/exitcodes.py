"""The exit statuses of every command, in one place (the README's "Exit codes and messages" table)."""
from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0              # every input was read and the output was written (warnings possible)
    PARTIAL = 1         # some inputs could not be read (or the live capture was lost); the rest was reported
    USAGE = 2           # nothing could be read, bad usage, invalid rules, output refused or not writable
    INTERNAL = 70       # a bug in rstwatch (EX_SOFTWARE)
    INTERRUPTED = 130   # Ctrl-C (128 + SIGINT)
