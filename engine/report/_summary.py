"""The figures a report shows, computed from logged runs: `summarize(records) -> Summary`.

Every figure comes from the runs themselves (`RunRecord.result`, the live run model); the
baseline for "saved" is each run's own `sequential_time` (the same useful work one step at
a time), so no second, sequential run is needed. Figures are milliseconds, to the
microsecond. Percentiles interpolate linearly between the two nearest ranks (numpy's default):
p50 of 100, 200, 300, 400 ms is 250 ms and p95 is 385 ms.

Speculation is counted per speculated branch: a branch path `router:label` (inside a run)
with at least one step that started before its router decided. It was *right* when that
router, on the winning path, returned `label`; then its head start is the time, up to the
decision, during which at least one of its steps was running (the latency speculation
saved). Otherwise it was *wrong*, and every step it started is waste: their durations and
their LLM dollars.

ROI follows seed 000: for each route, its share of runs times its mean saving against the
baseline, added up over routes, is the latency saved per run; the same sum over waste is
what that costs per run, in step time and in dollars.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import attrs

from .._trace import RunResult, StepStatus
from ._predictions import PredictionSummary, PredictionTally
from ._schema import RunRecord, ms

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from .._trace import TraceEntry

__all__ = [
    "CacheSummary",
    "Distribution",
    "LabelSummary",
    "RoiSummary",
    "RoiTerm",
    "RouteSummary",
    "RunFigures",
    "Speculated",
    "SpeculationSummary",
    "Summarizer",
    "Summary",
    "percentile",
    "speculated",
    "summarize",
]

NO_ROUTE = "(no route)"


def percentile(values: Sequence[float], pct: float) -> float:
    """The `pct` percentile of `values`, interpolating linearly between nearest ranks.

    Args:
        values: At least one number, in any order.
        pct: From 0 to 100.

    Returns:
        The percentile (numpy's default method, `statistics.quantiles(method="inclusive")`).

    Raises:
        ValueError: `values` is empty or `pct` is outside 0..100.
    """
    if not values:
        raise ValueError("`values` must hold at least one number, got none")
    if not 0 <= pct <= 100:
        raise ValueError(f"`pct` must be between 0 and 100, got {pct}")
    ordered = sorted(values)
    rank = pct / 100 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@attrs.frozen(kw_only=True)
class Distribution:
    """Count, mean, p50, p95, min and max of some milliseconds (all 0 when empty).

    Attributes:
        count: How many values.
        mean: Their mean.
        p50: Their median.
        p95: Their 95th percentile.
        min: The smallest.
        max: The largest.
    """

    count: int = 0
    mean: float = 0.0
    p50: float = 0.0
    p95: float = 0.0
    min: float = 0.0
    max: float = 0.0

    @classmethod
    def of(cls, values: Sequence[float]) -> Distribution:
        """The distribution of `values`."""
        if not values:
            return cls()
        return cls(
            count=len(values),
            mean=_mean(values),
            p50=percentile(values, 50),
            p95=percentile(values, 95),
            min=min(values),
            max=max(values),
        )


@attrs.frozen(kw_only=True)
class RouteSummary:
    """The runs that took one route (the first top-level router's label).

    Attributes:
        route: The label (`"(no route)"` for flows without a router).
        runs: How many runs took it.
        share: Its share of all runs, 0..1.
        wall: Their wall times.
        sequential: Their sequential baselines.
        saved_ms: Mean wall time saved against the baseline.
        saved_pct: Total saved over total baseline, 0..1.
        wasted_ms: Mean step time wasted per run.
        wasted_cost: Mean dollars wasted per run.
        wasted_unpriced_calls: Wasted LLM calls with no price, over its runs.
    """

    route: str
    runs: int
    share: float
    wall: Distribution
    sequential: Distribution
    saved_ms: float
    saved_pct: float
    wasted_ms: float
    wasted_cost: float
    wasted_unpriced_calls: int = 0


@attrs.frozen(kw_only=True)
class LabelSummary:
    """The runs of one configuration (the label given when logging, else the mode).

    Attributes:
        label: The label.
        runs: How many runs.
        wall: Their wall times.
        saved_ms: Mean wall time saved against the baseline.
        wasted_ms: Mean step time wasted per run.
        wasted_cost: Mean dollars wasted per run.
        wasted_unpriced_calls: Wasted LLM calls with no price, over its runs.
        speedup: Total baseline over total wall time (seed 001's speed-up ratio).
    """

    label: str
    runs: int
    wall: Distribution
    saved_ms: float
    wasted_ms: float
    wasted_cost: float
    speedup: float
    wasted_unpriced_calls: int = 0


@attrs.frozen(kw_only=True)
class SpeculationSummary:
    """How speculation did (see the module docstring for what counts).

    Attributes:
        runs: Runs in which something was speculated.
        speculated: Speculated branches.
        right: Those whose router then picked them.
        wrong: Those whose router picked another branch (or never decided).
        right_rate: `right / speculated`, or None if nothing was speculated.
        saved_ms: Head start of the right ones, added up.
        saved_ms_mean: Mean head start of a right one.
        wasted_ms: Step time of the wrong ones, added up.
        wasted_cost: Dollars of the wrong ones, added up.
    """

    runs: int = 0
    speculated: int = 0
    right: int = 0
    wrong: int = 0
    right_rate: float | None = None
    saved_ms: float = 0.0
    saved_ms_mean: float = 0.0
    wasted_ms: float = 0.0
    wasted_cost: float = 0.0


@attrs.frozen(kw_only=True)
class CacheSummary:
    """What the cache did.

    Attributes:
        hits: Steps served from the cache.
        misses: Cached steps that had to be computed.
        hit_rate: `hits / (hits + misses)`, or None without lookups.
        saved_ms: What the hits took when they were computed, added up.
        saved_cost: Dollars the hits saved, estimated from the same steps' mean cost in
            the runs where they were computed (in this log).
        unpriced_hits: Hits of steps never seen computed here (not in `saved_cost`).
    """

    hits: int = 0
    misses: int = 0
    hit_rate: float | None = None
    saved_ms: float = 0.0
    saved_cost: float = 0.0
    unpriced_hits: int = 0


@attrs.frozen(kw_only=True)
class RoiTerm:
    """One route's part of the ROI: its share times its mean saving and waste.

    Attributes:
        route: The route.
        share: Its share of runs, 0..1.
        saved_ms: Its mean saving per run.
        wasted_ms: Its mean step time wasted per run.
        wasted_cost: Its mean dollars wasted per run.
    """

    route: str
    share: float
    saved_ms: float
    wasted_ms: float
    wasted_cost: float


@attrs.frozen(kw_only=True)
class RoiSummary:
    """Is speculation paying for itself? Seed 000's arithmetic, over the logged runs.

    Attributes:
        terms: One per route.
        saved_ms: Latency saved per run: the sum of share x mean saving.
        wasted_ms: Step time wasted per run: the sum of share x mean waste.
        wasted_cost: Dollars wasted per run.
        cost_per_second_saved: Dollars wasted per second of latency saved, or None when
            nothing was saved or wasted calls were unpriced.
        wasted_unpriced_calls: Wasted LLM calls with no price, over every run: when not 0,
            the wasted dollars are unknown ("unpriced"), not `wasted_cost`.
        verdict: `"pays"`, `"costs"` (saves time for dollars) or `"does not pay"`.
        statement: The arithmetic and the verdict in one plain sentence.
    """

    terms: tuple[RoiTerm, ...] = ()
    saved_ms: float = 0.0
    wasted_ms: float = 0.0
    wasted_cost: float = 0.0
    cost_per_second_saved: float | None = None
    wasted_unpriced_calls: int = 0
    verdict: str = "does not pay"
    statement: str = "No runs."


@attrs.frozen(kw_only=True)
class Summary:
    """Everything a report shows about a set of logged runs.

    Attributes:
        runs: How many runs.
        flows: The flows' names, sorted.
        first: The earliest run's `time`, or None.
        last: The latest run's `time`, or None.
        wall: Wall times of all runs.
        sequential: Their sequential baselines.
        saved_ms: Mean wall time saved against the baseline.
        saved_pct: Total saved over total baseline, 0..1.
        speedup: Total baseline over total wall time.
        failed_steps: Step executions that failed (seed 001's task failures).
        cost: Dollars over every run's priced LLM calls.
        unpriced_calls: LLM calls with no price (a model outside the price table): when not
            0, `cost` leaves them out and reports say "unpriced".
        wasted_ms: Step time wasted over every run.
        wasted_cost: Dollars wasted over every run.
        wasted_unpriced_calls: Wasted LLM calls with no price.
        routes: Per route, most runs first.
        labels: Per configuration, in order of first appearance.
        speculation: How speculation did.
        cache: What the cache did.
        roi: Whether speculation pays.
        predictions: Per router: its predictions and cache hits, checked or not.
    """

    runs: int
    flows: tuple[str, ...]
    first: str | None
    last: str | None
    wall: Distribution
    sequential: Distribution
    saved_ms: float
    saved_pct: float
    speedup: float
    failed_steps: int
    cost: float
    wasted_ms: float
    wasted_cost: float
    routes: tuple[RouteSummary, ...]
    labels: tuple[LabelSummary, ...]
    speculation: SpeculationSummary
    cache: CacheSummary
    roi: RoiSummary
    predictions: tuple[PredictionSummary, ...] = ()
    unpriced_calls: int = 0
    wasted_unpriced_calls: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The summary as strict JSON data (what `specroute report --json` prints).

        A figure that is not a finite number (a sum that overflowed) becomes None, since
        JSON has no NaN or Infinity.
        """
        data: dict[str, Any] = _finite(attrs.asdict(self))
        return data


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def _mean(values: Iterable[float]) -> float:
    # Not `statistics.fmean`: it raises on a sum past the largest float; this says inf.
    got = list(values)
    return sum(got) / len(got) if got else 0.0


def _union(intervals: Iterable[tuple[float, float]]) -> float:
    total = 0.0
    reach = -math.inf
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


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


@attrs.frozen(kw_only=True)
class Speculated:
    """One speculated branch of one run, judged (see the module docstring).

    Attributes:
        branch: Its branch path (`router:label`, nested paths joined with `/`).
        router: The router that was to decide it.
        label: The label it stood for.
        right: The router, on the winning path, returned `label`.
        head_start_ms: When right: how long its steps ran before the decision.
        wasted_ms: When wrong: its steps' durations added up.
        wasted_cost: When wrong: its steps' LLM dollars.
    """

    branch: str
    router: str
    label: str
    right: bool
    head_start_ms: float = 0.0
    wasted_ms: float = 0.0
    wasted_cost: float = 0.0


def speculated(run: RunResult | RunRecord) -> list[Speculated]:
    """The branches `run` started before their router decided, each judged.

    Args:
        run: One run: what `Flow.run` returned, or a logged one.

    Returns:
        One entry per speculated branch path, in the order their first step appears.
    """
    result = run.result if isinstance(run, RunRecord) else run
    groups: dict[str, list[TraceEntry]] = defaultdict(list)
    for entry in result.trace:
        if entry.speculative and entry.status is not StepStatus.SKIPPED and entry.branch:
            groups[entry.branch].append(entry)
    decided = {(r.branch, r.router, r.label): r.at for r in result.routes}
    judged = []
    for path, entries in groups.items():
        parent, _, last = path.rpartition("/")
        router, _, label = last.partition(":")
        at = decided.get((parent, router, label))
        if at is None:
            judged.append(
                Speculated(
                    branch=path,
                    router=router,
                    label=label,
                    right=False,
                    wasted_ms=ms(sum(entry.duration for entry in entries)),
                    wasted_cost=sum(entry.cost for entry in entries),
                )
            )
        else:
            spans = [(e.start, min(e.end, at)) for e in entries if e.start < at]
            judged.append(
                Speculated(
                    branch=path,
                    router=router,
                    label=label,
                    right=True,
                    head_start_ms=ms(_union(spans)),
                )
            )
    return judged


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
            right_rate=_ratio(self.right, self.speculated) if self.speculated else None,
            saved_ms=self.saved_ms,
            saved_ms_mean=_ratio(self.saved_ms, self.right),
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

    def add(self, record: RunRecord) -> None:
        run = record.result
        self.hits += run.cache_hits
        self.misses += run.cache_misses
        self.saved_ms += ms(run.cache_saved_time)
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
            hit_rate=_ratio(self.hits, lookups) if lookups else None,
            saved_ms=self.saved_ms,
            saved_cost=saved_cost,
            unpriced_hits=unpriced,
        )


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
        share=_ratio(len(runs), total),
        wall=Distribution.of([run.wall_ms for run in runs]),
        sequential=Distribution.of([run.sequential_ms for run in runs]),
        saved_ms=_mean(run.saved_ms for run in runs),
        saved_pct=_ratio(sum(run.saved_ms for run in runs), baseline),
        wasted_ms=_mean(run.wasted_ms for run in runs),
        wasted_cost=_mean(run.wasted_cost for run in runs),
        wasted_unpriced_calls=sum(run.wasted_unpriced_calls for run in runs),
    )


def _label(label: str, runs: Sequence[RunFigures]) -> LabelSummary:
    return LabelSummary(
        label=label,
        runs=len(runs),
        wall=Distribution.of([run.wall_ms for run in runs]),
        saved_ms=_mean(run.saved_ms for run in runs),
        wasted_ms=_mean(run.wasted_ms for run in runs),
        wasted_cost=_mean(run.wasted_cost for run in runs),
        wasted_unpriced_calls=sum(run.wasted_unpriced_calls for run in runs),
        speedup=_ratio(sum(r.sequential_ms for r in runs), sum(r.wall_ms for r in runs)),
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
        wasted_unpriced = sum(run.wasted_unpriced_calls for run in runs)
        return Summary(
            runs=total,
            flows=tuple(sorted({run.flow for run in runs})),
            first=min((run.time for run in runs), default=None),
            last=max((run.time for run in runs), default=None),
            wall=Distribution.of([run.wall_ms for run in runs]),
            sequential=Distribution.of([run.sequential_ms for run in runs]),
            saved_ms=_mean(run.saved_ms for run in runs),
            saved_pct=_ratio(sum(run.saved_ms for run in runs), baseline),
            speedup=_ratio(baseline, sum(run.wall_ms for run in runs)),
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
