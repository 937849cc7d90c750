"""The live progress display counts steps running, done, cancelled and skipped."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from report_records import writer_run
from rich.console import Console
from specroute.engine import StepStatus
from specroute.engine.report import RunProgress

if TYPE_CHECKING:
    from trio.testing import MockClock


async def test_counts_follow_the_run(autojump_clock: MockClock) -> None:
    out = io.StringIO()
    with RunProgress(Console(file=out, width=100)) as progress:
        result = await writer_run(observer=progress)
    expected: dict[str, int] = {}
    for entry in result.trace:
        expected[entry.status.value] = expected.get(entry.status.value, 0) + 1
    assert progress.counts() == expected
    assert progress.counts()["cancelled"] == 1
    text = out.getvalue()
    assert "write_long" in text
    assert "cancelled (speculative)" in text


def test_running_steps_are_listed_until_they_end() -> None:
    progress = RunProgress(Console(file=io.StringIO(), width=100), shown=1)
    progress.step_started("a", "", False)
    progress.step_started("b", "r:x", True)
    assert progress.counts() == {"running": 2}
    progress.step_finished("a", "", StepStatus.OK, 0.25)
    assert progress.counts() == {"running": 1, "ok": 1}
    out = io.StringIO()
    Console(file=out, width=100).print(progress)
    assert "running (speculative)" in out.getvalue()
    assert "0.250" in out.getvalue()
