"""A live terminal display of a run, as a `RunObserver`: steps running, done, cancelled."""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

import attrs
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .._trace import StepStatus
from ._terminal import user_text

if TYPE_CHECKING:
    from types import TracebackType

    from rich.console import RenderableType

__all__ = ["RunProgress"]

DEFAULT_SHOWN = 12
_STYLES = {
    "running": "bold cyan",
    StepStatus.OK: "green",
    StepStatus.CACHED: "bright_green",
    StepStatus.CANCELLED: "yellow",
    StepStatus.FAILED: "bold red",
    StepStatus.SKIPPED: "dim",
    StepStatus.RECOVERED: "magenta",
}


@attrs.frozen(kw_only=True)
class _Row:
    step: str
    branch: str
    speculative: bool
    state: str
    seconds: float | None = None


@attrs.define(eq=False)
class RunProgress:
    """A rich live table of a run's steps; pass it as `Flow.run(observer=...)`.

    Use it as a context manager around the run::

        with RunProgress() as progress:
            result = await flow.run(user_input=..., observer=progress)

    It shows the counts of steps running, done, cancelled, failed and skipped, every step
    running now and the last finished ones. Observer calls only update a dict; rich redraws
    from its own refresh thread, so the scheduler is never held up.

    Args:
        console: Where to draw (default: stderr, so stdout stays clean for `--json`).
        shown: How many finished steps stay listed.
    """

    console: Console = attrs.field(factory=lambda: Console(stderr=True))
    shown: int = attrs.field(default=DEFAULT_SHOWN, kw_only=True)
    _rows: dict[tuple[str, str], _Row] = attrs.field(init=False, factory=dict)
    _live: Live | None = attrs.field(init=False, default=None)

    def __enter__(self) -> Self:
        self._live = Live(self, console=self.console, refresh_per_second=10, transient=False)
        self._live.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.__exit__(kind, error, traceback)
            self._live = None

    def step_started(self, step: str, branch: str, speculative: bool) -> None:
        """Show the step as running."""
        self._rows.pop((branch, step), None)
        self._rows[branch, step] = _Row(
            step=step, branch=branch, speculative=speculative, state="running"
        )

    def step_finished(self, step: str, branch: str, status: StepStatus, seconds: float) -> None:
        """Show how the step ended."""
        old = self._rows.pop((branch, step), None)
        speculative = old.speculative if old is not None else False
        self._rows[branch, step] = _Row(
            step=step, branch=branch, speculative=speculative, state=status.value, seconds=seconds
        )

    def counts(self) -> dict[str, int]:
        """Steps per state: `running` and each `StepStatus` value seen so far."""
        counts: dict[str, int] = {}
        for row in self._rows.values():
            counts[row.state] = counts.get(row.state, 0) + 1
        return counts

    def __rich__(self) -> RenderableType:
        counts = self.counts()
        header = Text()
        for state in ("running", *(status.value for status in StepStatus)):
            if counts.get(state):
                header.append(f"{state} {counts[state]}  ", style=_STYLES[_state(state)])
        table = Table(box=None, show_header=True, header_style="dim", pad_edge=False)
        for name in ("step", "branch", "state", "seconds"):
            table.add_column(name, justify="right" if name == "seconds" else "left")
        running = [row for row in self._rows.values() if row.state == "running"]
        finished = [row for row in self._rows.values() if row.state != "running"]
        for row in [*finished[-self.shown :], *running]:
            state = row.state + (" (speculative)" if row.speculative else "")
            seconds = "" if row.seconds is None else f"{row.seconds:.3f}"
            # Step and branch names are user text: `Text` shows them, never parses markup.
            table.add_row(
                user_text(row.step),
                user_text(row.branch or "-"),
                Text(state, style=_STYLES[_state(row.state)]),
                seconds,
            )
        return Group(header, table)


def _state(state: str) -> str | StepStatus:
    return state if state == "running" else StepStatus(state)
