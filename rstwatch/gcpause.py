"""Garbage collection held off around work whose objects all live on or die by reference count."""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def gc_paused() -> Iterator[None]:
    """No collection inside the block (one there finds no garbage and rescans every object the
    block keeps); the collector's state before it is restored after it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
