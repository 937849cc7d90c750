"""Watching a run as it goes: a progress display, metrics or spans hang on this protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._trace import StepStatus

__all__ = ["RunObserver"]


class RunObserver(Protocol):
    """Told when each step execution starts and ends. Calls are synchronous and must not
    block: they run on the scheduler's path. Pass one as `Flow.run(observer=...)`."""

    def step_started(self, step: str, branch: str, speculative: bool) -> None:
        """A step's function (or cache lookup) started."""

    def step_finished(self, step: str, branch: str, status: StepStatus, seconds: float) -> None:
        """A step ended: returned, failed, was cancelled, served from cache, or skipped."""
