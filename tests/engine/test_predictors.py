"""Routers with predictors: predicted branches start early; the real router always decides."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import trio
from specroute.engine import Flow, StepFailedError, StepStatus, router, step
from specroute.routes import Prediction, PredictivePolicy, Route, RouterView, RouteStatistics

if TYPE_CHECKING:
    from collections.abc import Mapping

    from trio.testing import MockClock


def make_flow(predictor: Any) -> Flow:
    @step(estimated_seconds=1.0)
    async def decide(request: str) -> Route:
        await trio.sleep(1)
        return Route("slow" if request == "new" else "fast")

    @step(output="answer", estimated_seconds=2.0, estimated_dollars=0.001)
    async def generate(request: str) -> str:
        await trio.sleep(2)
        return "generated"

    @step(output="answer")
    async def reuse() -> str:
        return "reused"

    return Flow(
        [router(decide, {"slow": Flow([generate]), "fast": Flow([reuse])}, predictor=predictor)]
    )


class SlowThinker:
    """A predictor that takes time (like a cheap model) and is always confidently wrong."""

    def __init__(self, delay: float, label: str) -> None:
        self.delay, self.label, self.seen = delay, label, []  # type: ignore[var-annotated]

    async def predict(self, router: RouterView, inputs: Mapping[str, Any]) -> Prediction:
        await trio.sleep(self.delay)
        return Prediction(probabilities={self.label: 0.99}, source="thinker")

    def observe(self, router: RouterView, inputs: Mapping[str, Any], label: str) -> None:
        self.seen.append(label)


POLICY = PredictivePolicy(value_of_time=0.001)  # a second is worth a tenth of a cent


async def test_statistics_predictor_follows_the_traffic(autojump_clock: MockClock) -> None:
    stats = RouteStatistics(smoothing=1.0, decay=0.9)
    flow = make_flow(stats)
    for _ in range(20):
        await flow.run(request="old", speculate=POLICY)  # the fast route, over and over
    rare = await flow.run(request="new", speculate=POLICY)
    assert rare.decisions[0].plan == {}  # P(slow) is too low to pay for the waste
    assert rare.decisions[0].right is False
    assert rare.wall_time == pytest.approx(3.0)
    for _ in range(20):
        await flow.run(request="new", speculate=POLICY)  # the traffic drifts
    learned = await flow.run(request="new", speculate=POLICY)
    assert learned.decisions[0].prediction is not None
    assert learned.decisions[0].prediction.probabilities["slow"] > 0.8
    assert learned.decisions[0].plan == {"slow": None}
    assert learned.decisions[0].right
    assert learned.wall_time == pytest.approx(2.0)  # the router's second was hidden


async def test_wrong_prediction_costs_only_waste(autojump_clock: MockClock) -> None:
    thinker = SlowThinker(0.2, "slow")
    result = await make_flow(thinker).run(request="old", speculate=POLICY)
    assert result.outputs == {"answer": "reused"}
    decision = result.decisions[0]
    assert decision.right is False
    assert decision.plan == {"slow": None}
    # generate ran from 0.2 s to 1 s, and the wrong prediction itself took 0.2 s
    assert result.wasted_time == pytest.approx(0.8 + 0.2)
    predict = next(entry for entry in result.trace if entry.step == "decide.predict")
    assert predict.wasted
    assert predict.duration == pytest.approx(0.2)
    assert thinker.seen == ["fast"]


async def test_prediction_that_arrives_after_the_router_is_moot(autojump_clock: MockClock) -> None:
    result = await make_flow(SlowThinker(5, "slow")).run(request="new", speculate=POLICY)
    assert result.decisions[0].plan == {}
    # The slow prediction was cancelled when the router answered: its second is waste.
    assert result.wasted_time == pytest.approx(1.0)
    assert result.wall_time == pytest.approx(3.0)


async def test_failing_predictor_only_loses_speculation(autojump_clock: MockClock) -> None:
    class Broken:
        async def predict(self, router: RouterView, inputs: Mapping[str, Any]) -> Prediction:
            raise RuntimeError("model down")

        def observe(self, router: RouterView, inputs: Mapping[str, Any], label: str) -> None:
            return None

    result = await make_flow(Broken()).run(request="new", speculate=POLICY)
    assert result.outputs == {"answer": "generated"}
    assert "model down" in result.decisions[0].note
    assert result.decisions[0].prediction is None


async def test_nothing_is_speculated_once_the_router_has_answered(
    autojump_clock: MockClock,
) -> None:
    from specroute.routes import Always

    result = await make_flow(SlowThinker(5, "slow")).run(request="old", speculate=Always())
    assert result.decisions[0].plan == {}
    # Nothing but the moot prediction (cancelled after the router's 1 s) was wasted.
    assert [entry.step for entry in result.trace if entry.wasted] == ["decide.predict"]
    assert result.wasted_time == pytest.approx(1.0)
    assert result.outputs == {"answer": "reused"}


async def test_an_observer_sees_the_prediction_as_a_step(autojump_clock: MockClock) -> None:
    seen: list[tuple[str, ...]] = []

    class Watching:
        def step_started(self, step: str, branch: str, speculative: bool) -> None:
            seen.append(("started", step, str(speculative)))

        def step_finished(self, step: str, branch: str, status: StepStatus, seconds: float) -> None:
            seen.append(("finished", step, status.value, f"{seconds:.1f}"))

    await make_flow(SlowThinker(0.2, "slow")).run(
        request="old", speculate=POLICY, observer=Watching()
    )
    assert ("started", "decide.predict", "True") in seen
    assert ("finished", "decide.predict", "ok", "0.2") in seen
    # A prediction cut short by its router's answer is shown ending, cancelled.
    seen.clear()
    await make_flow(SlowThinker(5, "slow")).run(
        request="new", speculate=POLICY, observer=Watching()
    )
    assert ("finished", "decide.predict", "cancelled", "1.0") in seen


async def test_a_prediction_is_waste_when_the_router_fails(autojump_clock: MockClock) -> None:
    # It named a branch, and the router chose none.
    @step(estimated_seconds=1.0)
    async def decide(request: str) -> Route:
        await trio.sleep(1)
        raise LookupError("no route")

    @step(output="answer", estimated_seconds=2.0, estimated_dollars=0.001)
    async def generate(request: str) -> str:
        await trio.sleep(2)
        return "generated"

    branches = {"slow": Flow([generate]), "fast": Flow([generate], name="fast")}
    flow = Flow([router(decide, branches, predictor=SlowThinker(0.2, "slow"))])
    with pytest.raises(StepFailedError) as failed:
        await flow.run(request="new", speculate=POLICY)
    (predict,) = [entry for entry in failed.value.trace if entry.step == "decide.predict"]
    assert predict.status is StepStatus.OK
    assert predict.wasted
