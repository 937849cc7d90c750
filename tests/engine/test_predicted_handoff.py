"""Predicted handoff values: a speculated branch starts the steps that read what its router
hands over, on a predictor's (or a cached route's) guess of those values; the real route
keeps that work or starts the branch again on the real values."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import trio
from specroute.cache import CacheOptions, open_cache
from specroute.engine import Always, Flow, Prediction, Route, RouterView, StepStatus, router, step

from tests.engine.test_predicted import ASKED, STORED, Same

if TYPE_CHECKING:
    from collections.abc import Mapping

    from trio.testing import MockClock


class Predicts:
    """Predicts `generate`, handing it `values`."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values

    async def predict(self, router: RouterView, inputs: Mapping[str, Any]) -> Prediction:
        return Prediction(
            probabilities={"generate": 0.9}, source="test", values={"generate": self.values}
        )

    def observe(self, router: RouterView, inputs: Mapping[str, Any], label: str) -> None:
        return None


def make_flow(
    real_plan: str,
    predictor: Any = None,
    cache: CacheOptions | None = None,
    ran: list[str] | None = None,
) -> Flow:
    @step(cache=cache)
    async def discover(request: str) -> Route:
        await trio.sleep(1)
        return Route("generate", plan=real_plan)

    @step(output="answer")
    async def generate(plan: str) -> str:
        await trio.sleep(2)
        if ran is not None:
            ran.append(plan)
        return f"built {plan}"

    @step(output="answer")
    async def reuse() -> str:
        return "reused"

    return Flow(
        [
            router(
                discover,
                {"generate": [generate], "reuse": [reuse]},
                handoff={"generate": ["plan"]},
                predictor=predictor,
            )
        ]
    )


async def test_a_confirmed_handoff_lets_the_branch_start_with_its_router(
    autojump_clock: MockClock,
) -> None:
    flow = make_flow("P", Predicts({"plan": "P"}))
    result = await flow.run(request="x", speculate=Always())
    assert result.outputs == {"answer": "built P"}
    assert result.wall_time == pytest.approx(2.0)  # not 1 + 2
    (decision,) = result.decisions
    assert decision.handoff_confirmed is True
    assert result.wasted_time == 0


async def test_a_refuted_handoff_starts_the_branch_again_on_the_real_values(
    autojump_clock: MockClock,
) -> None:
    ran: list[str] = []
    flow = make_flow("P", Predicts({"plan": "Q"}), ran=ran)
    result = await flow.run(request="x", speculate=Always())
    assert result.outputs == {"answer": "built P"}
    assert result.wall_time == pytest.approx(3.0)  # as if nothing had been predicted
    (decision,) = result.decisions
    assert decision.handoff_confirmed is False
    assert ran == ["P"]  # the guess's run was cancelled at 1 s, before it finished
    wasted = [(e.step, e.status) for e in result.trace if e.wasted and e.step == "generate"]
    assert wasted == [("generate", StepStatus.CANCELLED)]


async def test_incomplete_predicted_values_start_nothing(autojump_clock: MockClock) -> None:
    flow = make_flow("P", Predicts({"other": "P"}))
    result = await flow.run(request="x", speculate=Always())
    assert result.outputs == {"answer": "built P"}
    assert result.wall_time == pytest.approx(3.0)
    assert result.decisions[0].handoff_confirmed is None


async def test_a_near_match_on_a_router_hands_its_cached_values(autojump_clock: MockClock) -> None:
    flow = make_flow("P", cache=CacheOptions(semantic="request"))
    async with open_cache(embedder=Same()) as cache:
        await flow.run(request=STORED, cache=cache, speculate=Always())
        result = await flow.run(request=ASKED, cache=cache, speculate=Always())
    assert result.outputs == {"answer": "built P"}
    assert result.wall_time == pytest.approx(2.0)
    (decision,) = result.decisions
    assert (decision.cache, decision.handoff_confirmed) == ("semantic (verified)", True)


async def test_the_routers_agree_judges_the_handoff(autojump_clock: MockClock) -> None:
    def same_plan(predicted: Route, real: Route) -> bool:
        return predicted.values["plan"].lower() == real.values["plan"].lower()

    flow = make_flow("P", Predicts({"plan": "p"}), cache=CacheOptions(agree=same_plan))
    result = await flow.run(request="x", speculate=Always())
    # Accepted: the branch's value was computed from the predicted handoff (the weaker promise).
    assert result.outputs == {"answer": "built p"}
    assert result.decisions[0].handoff_confirmed is True
