"""A whole report read from a log in one streaming pass: `read_report(path) -> Report`.

Each line is read, counted and dropped: what stays is a `Summarizer`'s few numbers per run,
the one run whose timeline the page shows, and the damaged lines (the first
`MAX_PROBLEMS` of them, and how many there were).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from .._trace import StepStatus
from ._log import LogProblem, iter_log
from ._summarize import RunFigures, Summarizer
from ._summary import Summary, speculated

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._schema import RunRecord

__all__ = [
    "MAX_PROBLEMS",
    "NotableRun",
    "Report",
    "pick_run",
    "read_report",
    "speculation_score",
]

MAX_PROBLEMS = 1000


def speculation_score(record: RunRecord) -> tuple[int, int, int, float]:
    """How well a run shows speculation: higher is better (the default timeline).

    A run with branches speculated both rightly and wrongly beats one with only one kind,
    then more speculative and wasted steps, then more kinds of step status, then the
    longer run.
    """
    judged = speculated(record)
    run = record.result
    kinds = len({one.right for one in judged})
    busy = sum(
        entry.speculative or entry.wasted
        for entry in run.trace
        if entry.status is not StepStatus.SKIPPED
    )
    statuses = len({entry.status for entry in run.trace})
    return kinds, busy, statuses, run.wall_time


@attrs.define(eq=False)
class _Chooser:
    """Keeps one run while the log streams by: the one asked for, or the best example."""

    which: str | None
    chosen: RunRecord | None = None
    number: int | None = None
    matches: int = 0
    _best: tuple[int, int, int, float] | None = None

    def consider(self, record: RunRecord, number: int) -> None:
        which = self.which
        if which is None:
            score = speculation_score(record)
            if self._best is None or score > self._best:
                self._best = score
                self.chosen, self.number = record, number
        elif _is_position(which):
            if number == int(which):
                self.chosen, self.number = record, number
        elif record.id.startswith(which):
            self.matches += 1
            if self.matches == 1:
                self.chosen, self.number = record, number

    def check(self, runs: int) -> None:
        which = self.which
        if which is None:
            if runs == 0:
                raise ValueError("the log holds no readable runs, so there is no run to show")
        elif _is_position(which):
            if not 1 <= int(which) <= runs:
                raise ValueError(f"`--run` must be between 1 and {runs}, got {int(which)}")
        elif self.matches != 1:
            problem = "no run id starts" if not self.matches else f"{self.matches} run ids start"
            raise ValueError(f"`--run`: {problem} with {which!r}; give a position or a longer id")


@attrs.frozen(kw_only=True)
class NotableRun:
    """A run worth a second timeline on the page, and why.

    Attributes:
        why: What makes it notable ("the slowest run; the most step time wasted").
        number: Its 1-based position among the runs.
        record: The run.
    """

    why: str
    number: int
    record: RunRecord


@attrs.define(eq=False)
class _Notables:
    """The slowest run, the one that wasted most and the first failure, kept as they stream by."""

    # why -> (score, number, record); a higher score wins, ties keep the earlier run.
    best: dict[str, tuple[float, int, RunRecord]] = attrs.Factory(dict)

    def consider(self, record: RunRecord, number: int) -> None:
        run = record.result
        failed = any(entry.status is StepStatus.FAILED for entry in run.trace)
        for why, score in (
            ("the slowest run", run.wall_time),
            ("the most step time wasted", run.wasted_time if run.wasted_time > 0 else None),
            ("the first run with a failed step", 1.0 if failed else None),
        ):
            if score is None:
                continue
            held = self.best.get(why)
            if held is None or score > held[0]:
                self.best[why] = (score, number, record)

    def runs(self, shown: int | None) -> tuple[NotableRun, ...]:
        reasons: dict[int, list[str]] = {}
        records: dict[int, RunRecord] = {}
        for why, (_, number, record) in self.best.items():
            if number != shown:
                reasons.setdefault(number, []).append(why)
                records[number] = record
        return tuple(
            NotableRun(why="; ".join(reasons[number]), number=number, record=records[number])
            for number in sorted(reasons)
        )


def _is_position(which: str) -> bool:
    return which.isdigit() and len(which) < 8


def pick_run(records: Iterable[RunRecord], which: str | None = None) -> RunRecord:
    """The run a report's timeline shows.

    Args:
        records: The runs, in log order.
        which: A 1-based position in `records`, or the start of a run id; None for the
            run that best shows speculation (`speculation_score`).

    Returns:
        The run.

    Raises:
        ValueError: No runs, or nothing matches `which` (or it matches several ids).
    """
    chooser = _Chooser(which)
    count = 0
    for count, record in enumerate(records, start=1):
        chooser.consider(record, count)
    chooser.check(count)
    if chooser.chosen is None:  # pragma: no cover - `check` raised
        raise ValueError("the log holds no readable runs, so there is no run to show")
    return chooser.chosen


@attrs.frozen(kw_only=True)
class Report:
    """What a report shows, read in one pass over a log.

    Attributes:
        path: The log, or None when built from records in memory.
        summary: The figures.
        runs: A few numbers per run, in log order (the charts and the runs table).
        shown: The run whose timeline is shown, or None without readable runs.
        shown_number: Its 1-based position among the runs.
        chosen: True when the reader asked for `shown`; False when it was picked as the
            run that best shows speculation.
        problems: The damaged lines (at most `MAX_PROBLEMS`).
        problem_count: How many lines were damaged in all.
        others: Other runs whose timelines the page offers (the slowest, the one that
            wasted most, the first with a failed step), without `shown`.
    """

    path: Path | None
    summary: Summary
    runs: tuple[RunFigures, ...]
    shown: RunRecord | None
    shown_number: int | None
    chosen: bool
    problems: tuple[LogProblem, ...]
    problem_count: int
    others: tuple[NotableRun, ...] = ()

    @classmethod
    def of(
        cls,
        items: Iterable[RunRecord | LogProblem],
        *,
        run: str | None = None,
        path: Path | None = None,
    ) -> Report:
        """Fold runs and problems, in log order, into a report.

        Args:
            items: What `iter_log` yields (or runs alone).
            run: The run to show: a 1-based position or the start of an id; None for the
                run that best shows speculation.
            path: The log they came from.

        Returns:
            The report.

        Raises:
            ValueError: `run` matches no run, or several.
        """
        summarizer = Summarizer()
        chooser = _Chooser(run)
        notables = _Notables()
        problems: list[LogProblem] = []
        problem_count = 0
        count = 0
        for item in items:
            if isinstance(item, LogProblem):
                problem_count += 1
                if len(problems) < MAX_PROBLEMS:
                    problems.append(item)
                continue
            count += 1
            summarizer.add(item)
            chooser.consider(item, count)
            notables.consider(item, count)
        # Without a readable run there is nothing to pick: the report lists why instead.
        if count:
            chooser.check(count)
        return cls(
            path=path,
            summary=summarizer.summary(),
            runs=summarizer.runs,
            shown=chooser.chosen,
            shown_number=chooser.number,
            chosen=run is not None,
            problems=tuple(problems),
            problem_count=problem_count,
            others=notables.runs(chooser.number),
        )


def read_report(path: str | Path, *, run: str | None = None, strict: bool = False) -> Report:
    """Read a run log into a `Report`, streaming it (memory: a few numbers per run).

    Args:
        path: The log file.
        run: The run to show: a 1-based position or the start of an id; None for the run
            that best shows speculation.
        strict: Raise on the first damaged line.

    Returns:
        The report.

    Raises:
        OSError: The file cannot be opened.
        RunLogError: With `strict`, the first damaged line.
        ValueError: `run` matches no run, or several.
    """
    path = Path(path)
    return Report.of(iter_log(path, strict=strict), run=run, path=path)
