"""Prediction arithmetic: statistics follow drift; the policy speculates only what pays."""

from __future__ import annotations

import pytest
from specroute.routes import (
    Prediction,
    PredictivePolicy,
    RouterView,
    RouteStatistics,
    SimilarityCalibration,
    WasteBudget,
)

# The planner's Path B prefix: ParameterDiscovery 0.4 s ($0.0003), RequirementsAnalysis 0.4 s.
PATH_B = ((0.4, 0.0003), (0.4, 0.0003), (0.4, 0.0003))


def view(probability_b: float, *, now: float = 0.0) -> RouterView:
    return RouterView(
        name="discovery",
        labels=("reuse", "generate"),
        branch_sizes={"reuse": 2, "generate": 3},
        prediction=Prediction(probabilities={"generate": probability_b}),
        branch_estimates={"reuse": ((0.3, 0.0001), (0.0, 0.0)), "generate": PATH_B},
        router_seconds=0.5,
        now=now,
    )


def test_policy_speculates_as_deep_as_pays() -> None:
    policy = PredictivePolicy(value_of_time=0.01)
    plan = policy.plan(view(0.7))
    # k=1 hides 0.4 s, k=2 hides 0.5 s (the router's length); the third starts too late.
    assert plan == {"generate": 2}
    reason = plan.reasons["generate"]  # type: ignore[attr-defined]
    assert reason.saving == pytest.approx(0.7 * 0.5 * 0.01)
    assert reason.waste == pytest.approx(0.3 * 0.0006)


def test_policy_skips_a_branch_that_does_not_pay() -> None:
    policy = PredictivePolicy(value_of_time=0.0001)
    assert policy.plan(view(0.2)) == {}
    assert PredictivePolicy(value_of_time=1.0).plan(view(0.0)) == {}


def test_no_prediction_means_no_speculation() -> None:
    plain = RouterView(name="r", labels=("a",), branch_sizes={"a": 1})
    assert PredictivePolicy(value_of_time=1.0).plan(plain) == {}


def test_budget_turns_speculation_off_when_spent() -> None:
    budget = WasteBudget(dollars_per_minute=0.0002)
    policy = PredictivePolicy(value_of_time=0.01, budget=budget)
    assert policy.plan(view(0.7, now=0.0)) == {"generate": 2}  # expected waste 0.00018
    spent = policy.plan(view(0.7, now=1.0))
    assert spent == {}
    assert spent.reasons["generate"].note == "waste budget spent"  # type: ignore[attr-defined]
    assert policy.plan(view(0.7, now=61.0)) == {"generate": 2}  # refilled after a minute


def test_statistics_learn_and_follow_drift() -> None:
    stats = RouteStatistics(decay=0.9, smoothing=1.0)
    router = view(0.5)
    assert stats.probabilities(router, {}) == {"reuse": 0.5, "generate": 0.5}
    for _ in range(30):
        stats.observe(router, {}, "reuse")
    assert stats.probabilities(router, {})["reuse"] > 0.9
    for _ in range(30):
        stats.observe(router, {}, "generate")
    # 30 decayed "generate"s (~9.6) now outweigh 30 older "reuse"s (~0.4): drift followed.
    assert stats.probabilities(router, {})["generate"] > 0.85


def test_statistics_keep_buckets_apart() -> None:
    stats = RouteStatistics(bucket=lambda inputs: inputs["lang"])
    router = view(0.5)
    for _ in range(10):
        stats.observe(router, {"lang": "en"}, "reuse")
    assert stats.probabilities(router, {"lang": "en"})["reuse"] > 0.8
    assert stats.probabilities(router, {"lang": "de"})["reuse"] == 0.5


def test_prediction_rejects_impossible_probabilities() -> None:
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        Prediction(probabilities={"a": 1.5})
    with pytest.raises(ValueError, match="sum to at most 1"):
        Prediction(probabilities={"a": 0.7, "b": 0.7})


def test_calibration_counts_confirmations_per_similarity() -> None:
    calibration = SimilarityCalibration()
    assert calibration.confidence(0.97) == 0.5
    for confirmed in (True, True, True, False):
        calibration.record(0.972, confirmed)
    assert calibration.confidence(0.975) == pytest.approx(4 / 6)
    assert calibration.confidence(0.99) == 0.5
    assert calibration.totals() == (3, 1)


async def test_blend_averages_by_weight() -> None:
    from specroute.routes import Blend

    class Fixed:
        def __init__(self, probabilities: dict[str, float]) -> None:
            self.probabilities = probabilities
            self.seen: list[str] = []

        async def predict(self, router: RouterView, inputs: object) -> Prediction:
            return Prediction(probabilities=self.probabilities, source="fixed")

        def observe(self, router: RouterView, inputs: object, label: str) -> None:
            self.seen.append(label)

    sure, unsure = Fixed({"generate": 1.0}), Fixed({"generate": 0.2, "reuse": 0.8})
    blend = Blend([(sure, 3.0), (unsure, 1.0)])
    prediction = await blend.predict(view(0.5), {})
    assert prediction.probabilities == pytest.approx({"generate": 0.8, "reuse": 0.2})
    blend.observe(view(0.5), {}, "reuse")
    assert sure.seen == unsure.seen == ["reuse"]
