"""Summarizing runs one at a time: `Summarizer`, and `summarize(records) -> Summary`.

What the figures mean is in `_summary.py`. Here each run is folded in as it is read and
dropped: a `RunFigures` (a few numbers) stays per run for the percentiles and the charts, and
one count per step and router name for the cache and prediction figures, so a log of any size
summarizes in memory that grows by a few hundred bytes a run.
"""

from __future__ import annotations

import datetime
import sys
from collections import defaultdict
from typing import TYPE_CHECKING

import attrs

from .._trace import StepStatus
from ._hedging import HedgingTally
from ._predictions import PredictionTally, ValueTally
from ._schema import ms
from ._summary import (
    NO_ROUTE,
    CacheSummary,
    Distribution,
    LabelSummary,
    RoiSummary,
    RoiTerm,
    RouteSummary,
    SpeculationSummary,
    Summary,
    mean_of,
    ratio,
    speculated,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from ._schema import RunRecord

__all__ = ["RunFigures", "Summarizer", "summarize"]


@attrs.frozen(kw_only=True)
class RunFigures:
    """The few numbers a report keeps of one run, so a log streams through in bounded memory.

    Attributes:
        number: Its 1-based position among the readable runs.
        id: The run's id.
        time: When it was logged.
        flow: The flow's name.
        label: Its configuration.
        route: Its route (`"(no route)"` without a router).
        wall_ms: Its wall time.
        sequential_ms: Its sequential baseline.
        wasted_ms: Step time in branches that lost.
        wasted_cost: Dollars of those steps.
        wasted_unpriced_calls: LLM calls of those steps with no price.
        cost: Dollars of all its priced LLM calls.
        unpriced_calls: Its LLM calls with no price (not in `cost`).
        cache_hits: Steps served from the cache.
    """

    number: int
    id: str
    time: str
    flow: str
    label: str
    route: str
    wall_ms: float
    sequential_ms: float
    wasted_ms: float
    wasted_cost: float
    wasted_unpriced_calls: int
    cost: float
    unpriced_calls: int
    cache_hits: int

    @property
    def saved_ms(self) -> float:
        """Wall time saved against the baseline."""
        return self.sequential_ms - self.wall_ms

    @classmethod
    def of(cls, record: RunRecord, number: int) -> RunFigures:
        """The figures of `record`, the `number`-th run."""
        run = record.result
        wasted_unpriced = sum(
            entry.usage.unpriced_calls
            for entry in run.trace
            if entry.wasted and entry.usage is not None
        )
        # Names repeat across runs: one shared string each keeps a long log small.
        return cls(
            number=number,
            id=record.id,
            time=record.time,
            flow=sys.intern(run.flow),
            label=sys.intern(record.label),
            route=sys.intern(run.route or NO_ROUTE),
            wall_ms=ms(run.wall_time),
            sequential_ms=ms(run.sequential_time),
            wasted_ms=ms(run.wasted_time),
            wasted_cost=run.wasted_cost,
            wasted_unpriced_calls=wasted_unpriced,
            cost=run.usage.cost,
            unpriced_calls=run.usage.unpriced_calls,
            cache_hits=run.cache_hits,
        )


@attrs.define(eq=False)
class _SpeculationTally:
    runs: int = 0
    speculated: int = 0
    right: int = 0
    saved_ms: float = 0.0
    wasted_ms: float = 0.0
    wasted_cost: float = 0.0

    def add(self, record: RunRecord) -> None:
        judged = speculated(record)
        self.runs += bool(judged)
        self.speculated += len(judged)
        for one in judged:
            self.right += one.right
            self.saved_ms += one.head_start_ms
            self.wasted_ms += one.wasted_ms
            self.wasted_cost += one.wasted_cost

    def summary(self) -> SpeculationSummary:
        return SpeculationSummary(
            runs=self.runs,
            speculated=self.speculated,
            right=self.right,
            wrong=self.speculated - self.right,
            right_rate=ratio(self.right, self.speculated) if self.speculated else None,
            saved_ms=self.saved_ms,
            saved_ms_mean=ratio(self.saved_ms, self.right),
            wasted_ms=self.wasted_ms,
            wasted_cost=self.wasted_cost,
        )


@attrs.define(eq=False)
class _CacheTally:
    hits: int = 0
    misses: int = 0
    saved_ms: float = 0.0
    # Per step name: (dollars, count) of its computed executions, and its cache hits; a hit
    # is priced at the mean of the computed ones, wherever in the log they are.
    computed: dict[str, tuple[float, int]] = attrs.Factory(dict)
    served: dict[str, int] = attrs.Factory(lambda: defaultdict(int))
    exact_evictions: int = 0
    semantic_evictions: int = 0

    def add(self, record: RunRecord) -> None:
        run = record.result
        self.hits += run.cache_hits
        self.misses += run.cache_misses
        self.saved_ms += ms(run.cache_saved_time)
        self.exact_evictions = max(self.exact_evictions, run.cache_exact_evictions)
        self.semantic_evictions = max(self.semantic_evictions, run.cache_semantic_evictions)
        for entry in run.trace:
            if entry.status is StepStatus.OK and entry.usage is not None:
                dollars, count = self.computed.get(entry.step, (0.0, 0))
                self.computed[entry.step] = (dollars + entry.cost, count + 1)
            elif entry.status is StepStatus.CACHED:
                self.served[entry.step] += 1

    def summary(self) -> CacheSummary:
        saved_cost = 0.0
        unpriced = 0
        for step, hits in self.served.items():
            if step in self.computed:
                dollars, count = self.computed[step]
                saved_cost += hits * (dollars / count)
            else:
                unpriced += hits
        lookups = self.hits + self.misses
        return CacheSummary(
            hits=self.hits,
            misses=self.misses,
            hit_rate=ratio(self.hits, lookups) if lookups else None,
            saved_ms=self.saved_ms,
            saved_cost=saved_cost,
            unpriced_hits=unpriced,
            exact_evictions=self.exact_evictions,
            semantic_evictions=self.semantic_evictions,
        )


def _first_and_last(times: Sequence[str]) -> tuple[str | None, str | None]:
    """The earliest and latest of logged times, by moment. A time without an offset is read
    as UTC (a log is written in UTC; `log_line` refuses a naive time only because it cannot
    know what the caller meant). Text that is no ISO 8601 time (a hand-written line) counts
    only when no time in the log is one."""
    moments = []
    for time in times:
        try:
            moment = datetime.datetime.fromisoformat(time)
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        moments.append((moment, time))
    if moments:
        return min(moments)[1], max(moments)[1]
    return min(times, default=None), max(times, default=None)


def _roi(routes: Sequence[RouteSummary], unpriced: int) -> RoiSummary:
    if not routes:
        return RoiSummary()
    terms = tuple(
        RoiTerm(
            route=route.route,
            share=route.share,
            saved_ms=route.saved_ms,
            wasted_ms=route.wasted_ms,
            wasted_cost=route.wasted_cost,
        )
        for route in routes
    )
    saved = sum(term.share * term.saved_ms for term in terms)
    wasted = sum(term.share * term.wasted_ms for term in terms)
    cost = sum(term.share * term.wasted_cost for term in terms)
    per_second = cost / (saved / 1000) if saved > 0 else None
    arithmetic = " + ".join(
        f"{term.route} {term.share:.0%} x {term.saved_ms:.0f} ms" for term in terms
    )
    # Calls to a model outside the price table cost an unknown amount, not $0.
    dollars = (
        f"${cost:.4f}"
        if not unpriced
        else (
            f"${cost:.4f} plus {unpriced} unpriced LLM calls"
            if cost
            else f"{unpriced} unpriced LLM calls"
        )
    )
    waste = f"{wasted:.0f} ms of step time and {dollars}"
    if saved <= 0:
        verdict = "does not pay"
        sentence = (
            f"Speculation does not pay: runs are no faster than their sequential baseline "
            f"({arithmetic} = {saved:.0f} ms per run) and waste {waste} per run."
        )
    elif cost > 0 or unpriced:
        verdict = "costs"
        price = (
            f": ${per_second:.4f} per second saved"
            if not unpriced
            else (" (unpriced: the dollars per second saved are unknown)")
        )
        sentence = (
            f"Speculation saves {saved:.0f} ms per run ({arithmetic}) and wastes {waste} "
            f"per run{price}."
        )
    else:
        verdict = "pays"
        sentence = (
            f"Speculation pays for itself: it saves {saved:.0f} ms per run ({arithmetic}) "
            f"and wastes {wasted:.0f} ms of step time but no dollars per run."
        )
    return RoiSummary(
        terms=terms,
        saved_ms=saved,
        wasted_ms=wasted,
        wasted_cost=cost,
        cost_per_second_saved=None if unpriced else per_second,
        wasted_unpriced_calls=unpriced,
        verdict=verdict,
        statement=sentence,
    )


def _route(route: str, runs: Sequence[RunFigures], total: int) -> RouteSummary:
    baseline = sum(run.sequential_ms for run in runs)
    return RouteSummary(
        route=route,
        runs=len(runs),
        share=ratio(len(runs), total),
        wall=Distribution.of([run.wall_ms for run in runs]),
        sequential=Distribution.of([run.sequential_ms for run in runs]),
        saved_ms=mean_of(run.saved_ms for run in runs),
        saved_pct=ratio(sum(run.saved_ms for run in runs), baseline),
        wasted_ms=mean_of(run.wasted_ms for run in runs),
        wasted_cost=mean_of(run.wasted_cost for run in runs),
        wasted_unpriced_calls=sum(run.wasted_unpriced_calls for run in runs),
    )


def _label(label: str, runs: Sequence[RunFigures]) -> LabelSummary:
    return LabelSummary(
        label=label,
        runs=len(runs),
        wall=Distribution.of([run.wall_ms for run in runs]),
        saved_ms=mean_of(run.saved_ms for run in runs),
        wasted_ms=mean_of(run.wasted_ms for run in runs),
        wasted_cost=mean_of(run.wasted_cost for run in runs),
        wasted_unpriced_calls=sum(run.wasted_unpriced_calls for run in runs),
        speedup=ratio(sum(r.sequential_ms for r in runs), sum(r.wall_ms for r in runs)),
    )


@attrs.define(eq=False)
class Summarizer:
    """Computes a `Summary` from runs fed one at a time, keeping only `RunFigures` of each.

    This is how `specroute report` reads a log of any size: each record is read, added and
    dropped, so memory holds a few numbers per run (and one count per step and router
    name), not the runs.

    Example::

        summarizer = Summarizer()
        for record in records:
            summarizer.add(record)
        summary = summarizer.summary()
    """

    _runs: list[RunFigures] = attrs.field(init=False, factory=list)
    _failed_steps: int = attrs.field(init=False, default=0)
    _speculation: _SpeculationTally = attrs.field(init=False, factory=_SpeculationTally)
    _cache: _CacheTally = attrs.field(init=False, factory=_CacheTally)
    _predictions: PredictionTally = attrs.field(init=False, factory=PredictionTally)
    _values: ValueTally = attrs.field(init=False, factory=ValueTally)
    _hedging: HedgingTally = attrs.field(init=False, factory=HedgingTally)

    def add(self, record: RunRecord) -> RunFigures:
        """Count one run.

        Args:
            record: The run.

        Returns:
            What is kept of it.
        """
        figures = RunFigures.of(record, len(self._runs) + 1)
        self._runs.append(figures)
        self._failed_steps += sum(
            entry.status is StepStatus.FAILED for entry in record.result.trace
        )
        self._speculation.add(record)
        self._cache.add(record)
        self._predictions.add(record)
        self._values.add(record)
        self._hedging.add(record)
        return figures

    @property
    def runs(self) -> tuple[RunFigures, ...]:
        """The figures of every run added, in order."""
        return tuple(self._runs)

    def summary(self) -> Summary:
        """The summary of every run added so far."""
        runs = self._runs
        by_route: dict[str, list[RunFigures]] = defaultdict(list)
        by_label: dict[str, list[RunFigures]] = defaultdict(list)
        for run in runs:
            by_route[run.route].append(run)
            by_label[run.label].append(run)
        total = len(runs)
        routes = sorted(
            (_route(route, group, total) for route, group in by_route.items()),
            key=lambda route: (-route.runs, route.route),
        )
        baseline = sum(run.sequential_ms for run in runs)
        first, last = _first_and_last([run.time for run in runs])
        wasted_unpriced = sum(run.wasted_unpriced_calls for run in runs)
        return Summary(
            runs=total,
            flows=tuple(sorted({run.flow for run in runs})),
            # By moment: a log written before times were stored in UTC may hold offsets.
            first=first,
            last=last,
            wall=Distribution.of([run.wall_ms for run in runs]),
            sequential=Distribution.of([run.sequential_ms for run in runs]),
            saved_ms=mean_of(run.saved_ms for run in runs),
            saved_pct=ratio(sum(run.saved_ms for run in runs), baseline),
            speedup=ratio(baseline, sum(run.wall_ms for run in runs)),
            failed_steps=self._failed_steps,
            cost=sum(run.cost for run in runs),
            unpriced_calls=sum(run.unpriced_calls for run in runs),
            wasted_ms=sum(run.wasted_ms for run in runs),
            wasted_cost=sum(run.wasted_cost for run in runs),
            wasted_unpriced_calls=wasted_unpriced,
            routes=tuple(routes),
            labels=tuple(_label(label, group) for label, group in by_label.items()),
            speculation=self._speculation.summary(),
            cache=self._cache.summary(),
            roi=_roi(routes, wasted_unpriced),
            predictions=self._predictions.summaries(),
            value_predictions=self._values.summaries(),
            hedging=self._hedging.summaries(),
        )


def summarize(records: Iterable[RunRecord]) -> Summary:
    """Compute a report's figures from logged runs.

    Args:
        records: The runs (e.g. `read_log(path).records`, or `iter_log(path)` for a log
            too large to hold); any number, any flows; read once.

    Returns:
        The summary; empty runs give zeros and None rates.
    """
    summarizer = Summarizer()
    for record in records:
        summarizer.add(record)
    return summarizer.summary()
