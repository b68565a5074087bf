"""Settle a wire verdict with the kernel's reason (see docs/kernel.md for the rules of the game).

- The kernel's reason maps to causes (table.py). Those that are also among the wire's candidates
  (its cause, then its alternatives) remain; the first one wins. If one remains, the kernel has
  decided: confidence KERNEL_CONFIDENCE.
- The wire said `unknown`: the kernel's causes stand alone.
- No overlap (they disagree): if the reason names one cause, it wins (the reason is a fact, the wire
  an inference) at OVERRIDE_CONFIDENCE; if it names several, the wire's cause stays, the kernel's
  causes join the alternatives and confidence drops to DISPUTED_CONFIDENCE. `wire_cause` keeps the
  wire's verdict in every case.
"""
from __future__ import annotations

from dataclasses import dataclass

from .table import kernel_causes

KERNEL_CONFIDENCE = 0.97
OVERRIDE_CONFIDENCE = 0.9
DISPUTED_CONFIDENCE = 0.5
UNKNOWN = "unknown"


@dataclass(slots=True)
class Settled:
    cause: str
    alternatives: list[str]
    confidence: float
    decided_by: str                 # "kernel" or "wire"
    kernel_agrees: bool | None      # None: the reason names no cause, or the wire had none


def settle(cause: str, alternatives: list[str], confidence: float, reason: str, state: str | None,
           known: set[str] | None = None) -> Settled:
    """`known`: causes that have a loaded rule (a cause without one is never chosen)."""
    kc = [c for c in kernel_causes(reason, state) if known is None or c in known]
    if not kc:
        return Settled(cause, list(alternatives), confidence, "wire", None)
    if cause == UNKNOWN:
        return Settled(kc[0], kc[1:], KERNEL_CONFIDENCE if len(kc) == 1 else confidence, "kernel", None)
    both = [c for c in [cause, *alternatives] if c in kc]
    if both:
        if len(both) == 1:
            return Settled(both[0], [], max(confidence, KERNEL_CONFIDENCE), "kernel", True)
        return Settled(both[0], both[1:], confidence, "wire", True)
    if len(kc) == 1:
        return Settled(kc[0], [cause], OVERRIDE_CONFIDENCE, "kernel", False)
    return Settled(cause, [*alternatives, *[c for c in kc if c not in alternatives]],
                   min(confidence, DISPUTED_CONFIDENCE), "wire", False)
