"""How each router's predictions did, and what checking its near-match cache hits caught.

Counted per router name over the logged runs' `RouterDecision`s. A decision is *predicted* when
it had a likeliest label before the router returned; it was *right* when the router then
returned that label. Branches *speculated on a prediction* are the entries of the plans of
decisions that had a prediction (from any source: statistics, a model, the cache).

Cache hits on routers come in three kinds: an exact hit serves the stored route; a trusted
semantic hit serves a near match's route unverified (it may be wrong, and nothing checks);
a verified semantic hit only predicts the route while the real router runs, and is then
*confirmed* (the router agreed) or *denied* (a wrong near match, caught).

What speculating on predictions wasted is the step time and dollars of the steps marked
wasted in the planned branches the router did not pick (their paths `router:label`, with
anything nested in them). That is the whole cost of a wrong prediction, and also of the
less likely branches a policy chose to start beside a right one (`Always()` starts every
branch). Decisions whose router was cancelled before answering are not judged, so their
branches are not counted here (the waste shows in the speculation figures).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import attrs

from ._schema import ms

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .._trace import PredictedValue, RouterDecision
    from ._schema import RunRecord

__all__ = ["PredictionSummary", "predictions"]

EXACT = "exact"
TRUSTED = "semantic"
VERIFIED = "semantic (verified)"


@attrs.frozen(kw_only=True)
class PredictionSummary:
    """One router's predictions and cache hits over the logged runs.

    Attributes:
        router: The router step's name.
        decisions: Its executions (including those cancelled before they answered).
        predicted: Executions with a predicted label.
        right: Predicted executions whose router returned the predicted label.
        wrong: Predicted executions whose router returned another label.
        accuracy: `right / (right + wrong)`, or None when nothing was judged.
        sources: Who predicted, sorted (`"cache"`, `"statistics"`, ...).
        speculated: Branches started on a prediction.
        wasted_ms: Step time of the wasted steps in those branches that the router did not
            pick.
        wasted_cost: Their LLM dollars.
        exact_hits: Routes served by an exact cache hit.
        trusted_hits: Routes served by a semantic hit, unverified (trust mode).
        verified_hits: Semantic hits that only predicted the route (verify mode).
        confirmed: Verified hits the router agreed with.
        denied: Verified hits the router contradicted: wrong near matches caught.
        denied_wasted_ms: What catching them cost: the step time wasted in their branches.
    """

    router: str
    decisions: int = 0
    predicted: int = 0
    right: int = 0
    wrong: int = 0
    accuracy: float | None = None
    sources: tuple[str, ...] = ()
    speculated: int = 0
    wasted_ms: float = 0.0
    wasted_cost: float = 0.0
    exact_hits: int = 0
    trusted_hits: int = 0
    verified_hits: int = 0
    confirmed: int = 0
    denied: int = 0
    denied_wasted_ms: float = 0.0


def _waste(record: RunRecord, decision: RouterDecision) -> tuple[float, float]:
    """Step time and dollars wasted in the planned branches `decision`'s router did not pick."""
    if decision.label is None:
        return 0.0, 0.0
    lost = [decision.branch_path(label) for label in decision.plan if label != decision.label]
    steps = [
        entry
        for entry in record.result.trace
        if entry.wasted
        and any(entry.branch == path or entry.branch.startswith(f"{path}/") for path in lost)
    ]
    return ms(sum(entry.duration for entry in steps)), sum(entry.cost for entry in steps)


@attrs.define(eq=False)
class _RouterTally:
    """One router's counts so far: a few numbers, whatever the number of runs."""

    decisions: int = 0
    predicted: int = 0
    right: int = 0
    wrong: int = 0
    sources: set[str] = attrs.Factory(set)
    speculated: int = 0
    wasted_ms: float = 0.0
    wasted_cost: float = 0.0
    cache: dict[str | None, int] = attrs.Factory(lambda: defaultdict(int))
    confirmed: int = 0
    denied: int = 0
    denied_wasted_ms: float = 0.0

    def add(self, record: RunRecord, decision: RouterDecision) -> None:
        self.decisions += 1
        self.predicted += decision.predicted is not None
        self.cache[decision.cache] += 1
        self.right += decision.right is True
        self.wrong += decision.right is False
        if decision.prediction is None:
            return
        if decision.prediction.source:
            self.sources.add(decision.prediction.source)
        self.speculated += len(decision.plan)
        wasted_ms, cost = _waste(record, decision)
        self.wasted_ms += wasted_ms
        self.wasted_cost += cost
        if decision.cache == VERIFIED:
            self.confirmed += decision.right is True
            self.denied += decision.right is False
            if decision.right is False:
                self.denied_wasted_ms += wasted_ms

    def summary(self, router: str) -> PredictionSummary:
        judged = self.right + self.wrong
        return PredictionSummary(
            router=router,
            decisions=self.decisions,
            predicted=self.predicted,
            right=self.right,
            wrong=self.wrong,
            accuracy=self.right / judged if judged else None,
            sources=tuple(sorted(self.sources)),
            speculated=self.speculated,
            wasted_ms=self.wasted_ms,
            wasted_cost=self.wasted_cost,
            exact_hits=self.cache[EXACT],
            trusted_hits=self.cache[TRUSTED],
            verified_hits=self.cache[VERIFIED],
            confirmed=self.confirmed,
            denied=self.denied,
            denied_wasted_ms=self.denied_wasted_ms,
        )


@attrs.define(eq=False)
class PredictionTally:
    """Every router's counts, fed one run at a time (`summarize` streams a log through it)."""

    _routers: dict[str, _RouterTally] = attrs.field(init=False, factory=dict)

    def add(self, record: RunRecord) -> None:
        """Count `record`'s decisions."""
        for decision in record.result.decisions:
            self._routers.setdefault(decision.router, _RouterTally()).add(record, decision)

    def summaries(self) -> tuple[PredictionSummary, ...]:
        """One summary per router name, sorted by name."""
        return tuple(self._routers[name].summary(name) for name in sorted(self._routers))


def predictions(records: Iterable[RunRecord]) -> tuple[PredictionSummary, ...]:
    """Each router's predictions and cache hits over `records` (see the module docstring).

    Args:
        records: The runs, any iterable (read once); lines logged before decisions were
            recorded add nothing.

    Returns:
        One summary per router name, sorted by name; empty without decisions.
    """
    tally = PredictionTally()
    for record in records:
        tally.add(record)
    return tally.summaries()


@attrs.frozen(kw_only=True)
class ValuePredictionSummary:
    """One step's predicted values (semantic near matches) over the logged runs.

    Attributes:
        step: The step's name.
        near_matches: Near matches found for it.
        speculated: Those its downstream steps started on.
        confirmed: Near matches its real value agreed with.
        refuted: Near matches its real value refuted.
        confirm_rate: `confirmed / (confirmed + refuted)`, or None when none settled.
        wasted_ms: Step time wasted downstream of refuted predictions.
        wasted_cost: Their LLM dollars.
    """

    step: str
    near_matches: int = 0
    speculated: int = 0
    confirmed: int = 0
    refuted: int = 0
    confirm_rate: float | None = None
    wasted_ms: float = 0.0
    wasted_cost: float = 0.0


def _predicted_waste(record: RunRecord, guess: PredictedValue) -> tuple[float, float]:
    """Step time and dollars wasted in the overlay a prediction's downstream steps ran in."""
    path = f"{guess.branch}/{guess.step}:predicted" if guess.branch else f"{guess.step}:predicted"
    steps = [
        entry
        for entry in record.result.trace
        if entry.wasted and (entry.branch == path or entry.branch.startswith(f"{path}/"))
    ]
    return ms(sum(entry.duration for entry in steps)), sum(entry.cost for entry in steps)


@attrs.define(eq=False)
class _StepValues:
    near_matches: int = 0
    speculated: int = 0
    confirmed: int = 0
    refuted: int = 0
    wasted_ms: float = 0.0
    wasted_cost: float = 0.0

    def summary(self, step: str) -> ValuePredictionSummary:
        settled = self.confirmed + self.refuted
        return ValuePredictionSummary(
            step=step,
            near_matches=self.near_matches,
            speculated=self.speculated,
            confirmed=self.confirmed,
            refuted=self.refuted,
            confirm_rate=self.confirmed / settled if settled else None,
            wasted_ms=self.wasted_ms,
            wasted_cost=self.wasted_cost,
        )


@attrs.define(eq=False)
class ValueTally:
    """Every step's predicted values, fed one run at a time."""

    _steps: dict[str, _StepValues] = attrs.field(init=False, factory=dict)

    def add(self, record: RunRecord) -> None:
        """Count `record`'s predicted values."""
        for guess in record.result.predicted_values:
            counts = self._steps.setdefault(guess.step, _StepValues())
            counts.near_matches += 1
            counts.speculated += guess.speculated
            counts.confirmed += guess.confirmed is True
            counts.refuted += guess.confirmed is False
            if guess.speculated:
                wasted_ms, cost = _predicted_waste(record, guess)
                counts.wasted_ms += wasted_ms
                counts.wasted_cost += cost

    def summaries(self) -> tuple[ValuePredictionSummary, ...]:
        """One summary per step name, sorted by name."""
        return tuple(self._steps[name].summary(name) for name in sorted(self._steps))


def value_predictions(records: Iterable[RunRecord]) -> tuple[ValuePredictionSummary, ...]:
    """Each step's predicted values over `records`: how often its near matches were
    confirmed, and what the refuted ones wasted downstream.

    Args:
        records: The runs, any iterable (read once); lines logged before predicted values
            were recorded add nothing.

    Returns:
        One summary per step name, sorted by name; empty without predicted values.
    """
    tally = ValueTally()
    for record in records:
        tally.add(record)
    return tally.summaries()
