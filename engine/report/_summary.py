"""The figures a report shows, computed from logged runs: `summarize(records) -> Summary`.

Every figure comes from the runs themselves (`RunRecord.result`, the live run model); the
baseline for "saved" is each run's own `sequential_time` (the same useful work one step at
a time), so no second, sequential run is needed. Figures are milliseconds, to the
microsecond. Percentiles interpolate linearly between the two nearest ranks (numpy's default):
p50 of 100, 200, 300, 400 ms is 250 ms and p95 is 385 ms.

Speculation is counted per speculated branch: a branch path `router:label` (inside a run)
with at least one step that started before its router decided (a map item's steps count
with the branch around the map; a loop iteration `loop#k` started beside the check before
it is right when it was chosen, with no head start logged). It was *right* when that
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
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import attrs

from .._trace import RunResult, StepStatus
from ._schema import RunRecord, ms

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from .._trace import TraceEntry
    from ._hedging import StepHedging
    from ._predictions import PredictionSummary, ValuePredictionSummary

__all__ = [
    "CacheSummary",
    "Distribution",
    "LabelSummary",
    "RoiSummary",
    "RoiTerm",
    "RouteSummary",
    "Speculated",
    "SpeculationSummary",
    "Summary",
    "percentile",
    "speculated",
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
            mean=mean_of(values),
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
        exact_evictions: Exact entries the cache dropped to make room: the most any logged
            run's cache had dropped when that run ended (a cache counts from its start, so
            for one process's log this is its cache's count as of the last run).
        semantic_evictions: The same for semantic entries.
    """

    hits: int = 0
    misses: int = 0
    hit_rate: float | None = None
    saved_ms: float = 0.0
    saved_cost: float = 0.0
    unpriced_hits: int = 0
    exact_evictions: int = 0
    semantic_evictions: int = 0


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
        value_predictions: Per step: its predicted values (near matches) and how often
            its real value confirmed them.
        hedging: Per step that hedged or failed over: hedges sent and won, latency saved,
            dollars spent.
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
    value_predictions: tuple[ValuePredictionSummary, ...] = ()
    hedging: tuple[StepHedging, ...] = ()
    unpriced_calls: int = 0
    wasted_unpriced_calls: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The summary as strict JSON data (what `specroute report --json` prints).

        A figure that is not a finite number (a sum that overflowed) becomes None, since
        JSON has no NaN or Infinity.
        """
        data: dict[str, Any] = finite(attrs.asdict(self))
        return data


def finite(value: Any) -> Any:
    """JSON-ready `value` with every float that is not finite (NaN, inf) made None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def ratio(part: float, whole: float) -> float:
    """`part / whole`, or 0 when `whole` is 0."""
    return part / whole if whole else 0.0


def mean_of(values: Iterable[float]) -> float:
    """The mean of `values` (0 when empty; inf, not an error, past the largest float)."""
    # Not `statistics.fmean`: it raises on a sum past the largest float; this says inf.
    got = list(values)
    return sum(got) / len(got) if got else 0.0


def _speculated_branch(path: str) -> str:
    """The branch whose speculation made a step at `path` speculative: a map's item
    (`map[i]`) is never speculative itself, so its steps count with the branch around it."""
    while path.endswith("]"):
        path = path.rpartition("/")[0]
    return path


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
            path = _speculated_branch(entry.branch)
            if path:
                groups[path].append(entry)
    decided = {(r.branch, r.router, r.label): r.at for r in result.routes}
    # A step's predicted value (a near match) runs what reads it in `<step>:predicted`: it
    # was right when the step's real value confirmed it, at the moment it did.
    for guess in result.predicted_values:
        if guess.confirmed and guess.at is not None:
            decided[guess.branch, guess.step, "predicted"] = guess.at
    judged = []
    for path, entries in groups.items():
        parent, _, last = path.rpartition("/")
        router, _, label = last.partition(":")
        at = decided.get((parent, router, label))
        if ":" not in last:
            # A loop's iteration `loop#k` started before the check before it answered: it
            # was right if it was chosen (no router decision logs when that was).
            loop = last.partition("#")[0]
            right = not any(entry.wasted for entry in entries)
            judged.append(
                Speculated(
                    branch=path,
                    router=loop,
                    label="again",
                    right=right,
                    wasted_ms=0.0 if right else ms(sum(entry.duration for entry in entries)),
                    wasted_cost=0.0 if right else sum(entry.cost for entry in entries),
                )
            )
        elif at is None:
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
