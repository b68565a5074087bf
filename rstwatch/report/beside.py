"""The files an incident report writes beside itself, checked before any work (issue #20 item 8):
a Markdown report's NAME_files/ folder (incident.check_outputs) and NAME.findings.csv, the full
CSV when it is too large to embed. Refused at the start, never found out after minutes of reading
(or, for `live --report`, at the end of the session, losing its report)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import OutputError
from .output import has_room_beside


def check_beside(output: Path | None, force: bool, markdown: bool) -> None:
    """NAME.findings.csv is never replaced without --force, nor ever when it is a link or not a
    regular file; the NAME_files/ folder as incident.check_outputs says."""
    if not has_room_beside(output):             # stdout, /dev/null: nothing is written beside it
        if markdown and output is not None:
            raise OutputError(str(output), "is not a regular file; a Markdown report needs a file name "
                                           "(its images go in NAME_files/ beside it)")
        return
    from .incident import check_outputs
    check_outputs(output, force, markdown)
    side = output.with_name(f"{output.stem}.findings.csv")
    try:
        st = os.lstat(side)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputError(str(side), exc.strerror or str(exc)) from None
    if stat.S_ISLNK(st.st_mode):
        raise OutputError(str(side), "is a symbolic link; refusing to follow or replace it")
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(str(side), "exists and is not a regular file; not replaced")
    if not force:
        raise OutputError(str(side), "already exists beside the report (use --force to overwrite)")
