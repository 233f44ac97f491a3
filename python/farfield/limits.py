"""Cost before work: the memory and term limits every farfield call checks before it
allocates or loops (see the README's table of refusals).

A call whose estimated memory or number of elementary terms (pair interactions, (atom,
k-vector) products, mesh points times stencil points, ...) exceeds a limit raises
``ValueError`` stating the estimate and the parameter to change; nothing is computed.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import _checks, _native

__all__ = ["Limits", "get_limits", "set_limits"]


@dataclass(frozen=True)
class Limits:
    """The limits in force.

    Attributes:
        max_memory: bytes one call may use, or ``None`` for half the memory available at the
            start of each call.
        max_terms: the largest number of elementary terms of one call.
        memory_now: the memory limit in bytes that a call starting now would get.
    """

    max_memory: float | None
    max_terms: float
    memory_now: float


def set_limits(max_memory: float | None = None, max_terms: float = 2e11) -> None:
    """Sets the process-wide limits (call without arguments to restore the defaults)."""
    memory = _checks.optional_positive_float("max_memory", max_memory)
    terms = _checks.positive_float("max_terms", max_terms)
    _native.set_limits(memory, terms)


def get_limits() -> Limits:
    """The limits in force."""
    memory, terms, now = _native.get_limits()
    return Limits(max_memory=memory, max_terms=terms, memory_now=now)
