"""Watching a run as it goes: a progress display, metrics or spans hang on this protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from specroute.routes import ConfigurationTypeError, ObserverFailedError

if TYPE_CHECKING:
    from collections.abc import Callable

    from specroute.routes import SpecrouteError

    from ._trace import StepStatus

__all__ = ["GuardedObserver", "RunObserver", "check_observer"]


class RunObserver(Protocol):
    """Told when each step execution starts and ends. Calls are synchronous and must not
    block: they run on the scheduler's path. Pass one as `Flow.run(observer=...)`.

    An observer without both methods is refused before the run starts
    (`ConfigurationTypeError`). If a method raises, the run stops with one
    `ObserverFailedError` naming the observer and the method (its exception is the cause),
    and the observer is told nothing more."""

    def step_started(self, step: str, branch: str, speculative: bool) -> None:
        """A step's function (or cache lookup) started."""

    def step_finished(self, step: str, branch: str, status: StepStatus, seconds: float) -> None:
        """A step ended: returned, failed, was cancelled, served from cache, or skipped."""


def check_observer(observer: object) -> None:
    """Refuse, before a run starts, an observer the scheduler could not call."""
    for name in ("step_started", "step_finished"):
        if not callable(getattr(observer, name, None)):
            raise ConfigurationTypeError(
                f"`observer` must have `step_started` and `step_finished` methods (see "
                f"RunObserver), got {observer!r}"
            )


class GuardedObserver:
    """A user's observer as the scheduler calls it: an exception it raises stops the run
    with one `ObserverFailedError` (through `fail`) instead of tearing through the run's
    nurseries, and it is told nothing after that."""

    __slots__ = ("broken", "fail", "observer")

    def __init__(self, observer: RunObserver, fail: Callable[[SpecrouteError], None]) -> None:
        self.observer = observer
        self.fail = fail
        self.broken = False

    def step_started(self, step: str, branch: str, speculative: bool) -> None:
        if self.broken:
            return
        try:
            self.observer.step_started(step, branch, speculative)
        except Exception as exc:  # noqa: BLE001 -- the observer boundary: becomes the run's error
            self._failed("step_started", exc)

    def step_finished(self, step: str, branch: str, status: StepStatus, seconds: float) -> None:
        if self.broken:
            return
        try:
            self.observer.step_finished(step, branch, status, seconds)
        except Exception as exc:  # noqa: BLE001 -- the observer boundary: becomes the run's error
            self._failed("step_finished", exc)

    def _failed(self, method: str, exc: Exception) -> None:
        self.broken = True
        failure = ObserverFailedError(
            f"observer {self.observer!r} raised in `{method}`: {type(exc).__name__}: {exc}; "
            f"an observer must not raise (catch what it cannot handle)"
        )
        failure.__cause__ = exc
        self.fail(failure)
