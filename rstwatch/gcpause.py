"""Garbage collection held off around work whose objects all live on or die by reference count."""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator

def settle_startup() -> None:
    """What is loaded by now (pandas, numpy, the rules, a live session's tracker) lives until
    the process ends: keep it out of every collection (gc.freeze), and collect the youngest
    objects less often (a reset creates a few dozen that live as long as its finding). Before
    it, `live` spent ~20% of its CPU in the collector (100,000 resets: three full collections
    of every imported object, 0.42 s, and 50 middle ones, 0.17 s); `read`, 13% (measured)."""
    gc.freeze()
    gc.set_threshold(10_000, 50, 50)
    gc.enable()             # the entry point held it off while the imports ran (entry.py)


# Set by a one-shot command (`read`, tune_gc in run.py), never by `live`: see gc_paused.
_freeze_after = False


def freeze_after_pauses() -> None:
    """From now on, what a paused block made is moved out of the collector's sight when the
    block ends (gc.freeze). Otherwise the first collection after the block scans every object
    it made: one such collection after the walk of 100,000 connections took 77 ms, finding no
    garbage. Frozen objects are still freed by their reference counts; cyclic garbage alive at
    that moment would never be collected, which a process that reads and exits can afford and a
    long-running `live` cannot."""
    global _freeze_after
    _freeze_after = True


@contextmanager
def gc_paused() -> Iterator[None]:
    """No collection inside the block (one there finds no garbage and rescans every object the
    block keeps); the collector's state before it is restored after it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if _freeze_after:
            gc.freeze()
        if was_enabled:
            gc.enable()


def import_paused(name: str):
    """Import a large library (pandas: ~300,000 objects that live until exit) with the collector
    held off, and for a one-shot command frozen after, as if it had been loaded at start-up:
    collections among its objects find nothing (a read importing pandas with the collector on
    paid ~0.1 s more CPU, measured)."""
    import importlib
    with gc_paused():
        return importlib.import_module(name)
