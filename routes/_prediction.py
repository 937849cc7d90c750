"""Predictions of a router's answer, and the arithmetic that turns them into speculation.

A `Predictor` says, before the router returns, how likely each label is. `PredictivePolicy`
speculates a branch, and only as far as pays: speculating the first `k` steps of a branch
that wins hides up to the router's own duration; if it loses, what those steps cost is
wasted. With `P` the branch's probability, `R` the router's expected seconds, `s_i` and
`d_i` the expected seconds and dollars of the branch's steps in order, and `v` the value
of a second::

    saving(k) = P * min(R, s_1 + ... + s_k) * v
    waste(k)  = (1 - P) * (d_1 + ... + d_j)   # j <= k: the steps that start before R

The policy picks the `k` with the largest `saving - waste`, and none when no `k` gains. A
`WasteBudget` shared by every run in the process caps the expected waste per minute.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from ._errors import ConfigurationError, ConfigurationTypeError
from ._speculation import Plan, PlanReason
from ._view import Prediction, StepEstimate

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

    from ._view import RouterView, ValueView

__all__ = [
    "Blend",
    "PredictivePolicy",
    "Predictor",
    "RouteStatistics",
    "SimilarityCalibration",
    "WasteBudget",
]


class Predictor(Protocol):
    """Predicts a router's label from its inputs, and learns from what it really said.

    A predictor is a definition: what it learns goes in `router.memory`, the figures the
    run's `LearnedState` keeps for this router, so one predictor can serve many flows and
    what was learned can be seen, saved, reset and shared.
    """

    async def predict(self, router: RouterView, inputs: Mapping[str, Any]) -> Prediction:
        """Return the prediction; may await (a cheap model call) and is cancellable."""

    def observe(self, router: RouterView, inputs: Mapping[str, Any], label: str) -> None:
        """Learn that the router, given `inputs`, returned `label`; `router.prediction` is
        what this predictor said for these inputs (None when it was not asked or failed)."""


@attrs.define(eq=False)
class RouteStatistics:
    """Predicts from how often each label won before: smoothed, decayed frequencies.

    Args:
        decay: Each observation multiplies older counts by this, so the estimate follows
            drift (1.0: never forget; the default 0.995: the last ~200 observations
            dominate; faster decay follows drift sooner but its noise triggers waste when a
            branch's probability sits near the break-even, as `bench/policy.py` measures).
        smoothing: Pseudo-count added to every label (Laplace), so a label never seen is
            not impossible.
        bucket: Optional function of the router's inputs giving a feature bucket (say,
            the request's language); frequencies are kept per router and bucket.
    """

    decay: float = attrs.field(default=0.995, kw_only=True)
    smoothing: float = attrs.field(default=1.0, kw_only=True)
    bucket: Callable[[Mapping[str, Any]], Hashable] | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"`decay` must be in (0, 1], got {self.decay!r}")
        if self.smoothing < 0:
            raise ValueError(f"`smoothing` must be >= 0, got {self.smoothing!r}")

    def _counts(self, router: RouterView, inputs: Mapping[str, Any]) -> dict[str, float]:
        """This router's decayed label counts for the inputs' bucket, kept in its memory."""
        buckets: dict[Hashable, dict[str, float]] = router.memory.setdefault("counts", {})
        return buckets.setdefault(None if self.bucket is None else self.bucket(inputs), {})

    def probabilities(self, router: RouterView, inputs: Mapping[str, Any]) -> Mapping[str, float]:
        """The smoothed frequencies for `router` (and the inputs' bucket)."""
        counts = self._counts(router, inputs)
        total = sum(counts.values()) + self.smoothing * len(router.labels)
        if total == 0:
            return {}
        return {label: (counts.get(label, 0.0) + self.smoothing) / total for label in router.labels}

    async def predict(self, router: RouterView, inputs: Mapping[str, Any]) -> Prediction:
        """Return the smoothed frequencies as a prediction (never awaits)."""
        return Prediction(probabilities=self.probabilities(router, inputs), source="statistics")

    def observe(self, router: RouterView, inputs: Mapping[str, Any], label: str) -> None:
        """Count one more `label`, after decaying the older counts."""
        counts = self._counts(router, inputs)
        for known in counts:
            counts[known] *= self.decay
        counts[label] = counts.get(label, 0.0) + 1.0


@attrs.frozen
class Blend:
    """Several predictors as one: the weighted average of their probabilities.

    Args:
        predictors: (predictor, weight) pairs; weights need not sum to 1.
    """

    predictors: tuple[tuple[Predictor, float], ...] = attrs.field(converter=tuple)

    def __attrs_post_init__(self) -> None:
        if not self.predictors or any(weight <= 0 for _, weight in self.predictors):
            raise ValueError("`predictors` must be (predictor, weight > 0) pairs, at least one")

    async def predict(self, router: RouterView, inputs: Mapping[str, Any]) -> Prediction:
        """Ask each predictor in turn and average their answers by weight."""
        total_weight = sum(weight for _, weight in self.predictors)
        blended: dict[str, float] = {}
        parts = []
        for index, (predictor, weight) in enumerate(self.predictors):
            prediction = await predictor.predict(self._part(router, index, None), inputs)
            parts.append(prediction)
            for label, probability in prediction.probabilities.items():
                blended[label] = blended.get(label, 0.0) + probability * weight / total_weight
        source = "+".join(part.source for part in parts)
        return Prediction(probabilities=blended, source=source, parts=tuple(parts))

    def observe(self, router: RouterView, inputs: Mapping[str, Any], label: str) -> None:
        """Tell every predictor, each with its own part of the blended prediction."""
        parts = () if router.prediction is None else router.prediction.parts
        for index, (predictor, _) in enumerate(self.predictors):
            part = parts[index] if index < len(parts) else None
            predictor.observe(self._part(router, index, part), inputs, label)

    @staticmethod
    def _part(router: RouterView, index: int, prediction: Prediction | None) -> RouterView:
        """The view one blended predictor sees: its own memory and its own prediction."""
        memory = router.memory.setdefault(f"part {index}", {})
        return attrs.evolve(router, memory=memory, prediction=prediction)


@attrs.define(eq=False)
class WasteBudget:
    """Dollars per minute that speculation may be expected to waste, shared process-wide.

    A token bucket: it holds at most one minute's dollars and refills continuously. Create
    one and give it to every `PredictivePolicy` that should share it.

    Args:
        dollars_per_minute: The refill rate and the bucket's size.
    """

    dollars_per_minute: float
    _level: float = attrs.field(init=False)
    _updated: float | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        if not self.dollars_per_minute > 0:
            raise ValueError(f"`dollars_per_minute` must be > 0, got {self.dollars_per_minute!r}")
        self._level = self.dollars_per_minute

    def available(self, now: float) -> float:
        """Dollars that may still be risked at time `now` (seconds, any monotonic clock)."""
        if self._updated is not None:
            refill = (now - self._updated) * self.dollars_per_minute / 60.0
            self._level = min(self.dollars_per_minute, self._level + max(0.0, refill))
        self._updated = now
        return self._level

    def spend(self, dollars: float, now: float) -> bool:
        """Take `dollars` if the bucket holds them; say whether it did."""
        if dollars > self.available(now):
            return False
        self._level -= dollars
        return True


def _estimates_by_step(costs: Mapping[str, Any]) -> dict[str, StepEstimate]:
    # A plain dict (the policy is frozen), so a policy still copies and pickles.
    if not isinstance(costs, Mapping):
        raise ConfigurationTypeError(
            f"`costs` must be a mapping step name -> (seconds, dollars), got {costs!r} "
            "(`measured_costs(records)` makes one)"
        )
    estimates = {}
    for name, cost in costs.items():
        message = (
            f"the cost of step {name!r} in `costs` must be a pair (seconds, dollars) of "
            f"numbers >= 0, got {cost!r}"
        )
        if isinstance(cost, str | bytes) or not isinstance(cost, Iterable):
            raise ConfigurationTypeError(message)
        try:
            seconds, dollars = (float(number) for number in cost)
        except (TypeError, ValueError):
            raise ConfigurationTypeError(message) from None
        # Refused as `StepOptions` refuses such estimates: a negative cost makes waste a gain.
        if not (0.0 <= seconds < math.inf and 0.0 <= dollars < math.inf):
            raise ConfigurationError(message)
        estimates[name] = StepEstimate(seconds, dollars)
    return estimates


@attrs.frozen(kw_only=True)
class PredictivePolicy:
    """Speculate what is likely: each branch as deep as its expected saving beats its waste.

    Args:
        value_of_time: Dollars one second of latency is worth to you.
        budget: A `WasteBudget` capping expected waste per minute (shared process-wide).
        min_probability: Branches less likely than this are never speculated.
        costs: Step name -> (seconds, dollars) measured in practice (`StepEstimate`s or
            plain pairs), used instead of the
            steps' own estimates (see `specroute.engine.report.measured_costs`).
    """

    value_of_time: float = attrs.field(validator=attrs.validators.ge(0.0))
    budget: WasteBudget | None = None
    min_probability: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    costs: Mapping[str, StepEstimate] = attrs.field(factory=dict, converter=_estimates_by_step)

    def check(self, routers: Mapping[str, tuple[str, ...]]) -> None:
        """Nothing to check: the policy names no router."""

    def plan(self, router: RouterView) -> Plan:
        """Return, per branch worth it, how many steps to speculate, with the reasons."""
        limits: dict[str, int | None] = {}
        reasons: dict[str, PlanReason] = {}
        prediction = router.prediction
        if prediction is None:
            return Plan(limits, reasons)
        for label in router.labels:
            probability = prediction.probabilities.get(label, 0.0)
            if probability < self.min_probability or probability == 0.0:
                continue
            steps, saving, waste = self._depth(router, label, probability)
            if steps == 0:
                continue
            if self.budget is not None and not self.budget.spend(waste, router.now):
                reasons[label] = PlanReason(
                    probability=probability, steps=0, saving=saving, waste=waste,
                    note="waste budget spent",
                )  # fmt: skip
                continue
            reasons[label] = PlanReason(
                probability=probability, steps=steps, saving=saving, waste=waste
            )
            limits[label] = None if steps >= len(self._estimates(router, label)) else steps
        return Plan(limits, reasons)

    def speculate_value(self, value: ValueView) -> bool:
        """Start the steps downstream of a predicted value when the step's learned confirm
        rate makes the time they save worth more than what they waste when it is refuted
        (the same rule as for a branch, with the confirm rate as its probability). A step
        whose predictions are rarely confirmed (free text compared by equality) soon
        stops costing anything."""
        probability = value.confirm_rate
        if probability < self.min_probability or probability == 0.0:
            return False
        hide = value.step_seconds
        elapsed = dollars = 0.0
        for seconds, cost in value.downstream_estimates:
            if elapsed >= hide:
                break
            dollars += cost
            elapsed += seconds
        saving = probability * min(hide, elapsed) * self.value_of_time
        waste = (1.0 - probability) * dollars
        if saving - waste <= 1e-15:
            return False
        return self.budget is None or self.budget.spend(waste, value.now)

    def _estimates(self, router: RouterView, label: str) -> tuple[StepEstimate, ...]:
        """The branch's step estimates, measured costs taking precedence."""
        estimates = router.branch_estimates.get(label, ())
        if not self.costs:
            return estimates
        names = router.branch_steps.get(label, ())
        return tuple(
            self.costs.get(name, estimate) for name, estimate in zip(names, estimates, strict=False)
        )

    def _depth(
        self, router: RouterView, label: str, probability: float
    ) -> tuple[int, float, float]:
        hide = router.router_seconds
        best = (0, 0.0, 0.0)
        best_gain = 0.0
        elapsed = dollars = 0.0
        for index, (seconds, cost) in enumerate(self._estimates(router, label), 1):
            if elapsed >= hide:
                break  # this step would start after the router returns: nothing to hide
            dollars += cost
            elapsed += seconds
            saving = probability * min(hide, elapsed) * self.value_of_time
            waste = (1.0 - probability) * dollars
            if saving - waste > best_gain + 1e-15:
                best, best_gain = (index, saving, waste), saving - waste
        return best


@attrs.define(eq=False)
class SimilarityCalibration:
    """How often a semantic cache hit at a given similarity was confirmed by the real step.

    Verify mode feeds it each outcome; `confidence` turns a new hit's similarity into a
    probability for the predicted route (Laplace-smoothed per bucket).

    Args:
        bucket_width: Width of a similarity bucket.
    """

    bucket_width: float = attrs.field(default=0.01, kw_only=True)
    _counts: dict[int, list[int]] = attrs.field(init=False, factory=dict)

    def _bucket(self, similarity: float) -> int:
        return math.floor(similarity / self.bucket_width + 1e-9)

    def record(self, similarity: float, confirmed: bool) -> None:
        """Count one verified hit."""
        counts = self._counts.setdefault(self._bucket(similarity), [0, 0])
        counts[0 if confirmed else 1] += 1

    def confidence(self, similarity: float) -> float:
        """Probability that a hit at `similarity` is confirmed (0.5 with no history)."""
        confirmed, denied = self._counts.get(self._bucket(similarity), [0, 0])
        return (confirmed + 1) / (confirmed + denied + 2)

    def totals(self) -> tuple[int, int]:
        """Hits confirmed and hits denied, over all buckets."""
        confirmed = sum(counts[0] for counts in self._counts.values())
        denied = sum(counts[1] for counts in self._counts.values())
        return confirmed, denied
