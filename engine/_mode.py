"""How a run schedules the same flow: one step at a time, dataflow, or dataflow plus speculation."""

from __future__ import annotations

import enum

from specroute.routes import FlowError

__all__ = ["Mode"]


class Mode(enum.StrEnum):
    """Scheduling modes; every mode gives the same outputs for the same flow and inputs.

    Attributes:
        SEQUENTIAL: One step at a time in a topological order, each router before its branch.
        PARALLEL: Each step starts the moment its inputs exist; branches start after their
            router returns.
        SPECULATIVE: Like PARALLEL, and branches named by the speculation policy start
            beside their router; losers are cancelled when the router returns.
    """

    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"
    SPECULATIVE = "speculative"

    @classmethod
    def parse(cls, value: Mode | str) -> Mode:
        """Return `value` as a `Mode`, raising `FlowError` that lists the modes if unknown."""
        try:
            return cls(value)
        except ValueError:
            modes = ", ".join(repr(mode.value) for mode in cls)
            raise FlowError(f"`mode` must be one of {modes}, got {value!r}") from None
