"""Speculation around one router (`engine/_routing.py`): plan, race, cancel losers, record."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import pytest
import trio
from specroute.engine import Flow, StepStatus, router, step
from specroute.routes import (
    Branches,
    HandoffError,
    Plan,
    PlanReason,
    Prediction,
    Route,
    RouterView,
    UnknownBranchError,
    UnknownRouteError,
)

from tests.strategies import FixedPredictor

if TYPE_CHECKING:
    from collections.abc import Mapping

    from specroute.routes import SpeculationPlan
    from trio.testing import MockClock


def make_flow(predictor: Any = None, answer: Any = None) -> Flow:
    """`decide` (1 s) picks `a` (one 2 s step) or `b` (two 0.5 s steps)."""

    @step
    async def decide(request: str) -> Any:
        await trio.sleep(1)
        return Route(request) if answer is None else answer

    @step(output="out")
    async def a_only(request: str) -> str:
        await trio.sleep(2)
        return "a"

    @step
    async def b_first(request: str) -> str:
        await trio.sleep(0.5)
        return "b1"

    @step(output="out")
    async def b_second(b_first: str) -> str:
        await trio.sleep(0.5)
        return "b2"

    branches = {"a": Flow([a_only]), "b": Flow([b_first, b_second])}
    return Flow([router(decide, branches, predictor=predictor)], name="race")


def at(result: Any, name: str) -> Any:
    return next(e for e in result.trace if e.step == name)


async def test_a_planned_branch_starts_beside_its_router(autojump_clock: MockClock) -> None:
    result = await make_flow().run(request="b", speculate=Branches({"decide": ["b"]}))
    assert result.outputs == {"out": "b2"}
    assert at(result, "b_first").start == result.started
    assert at(result, "b_first").speculative
    assert result.wall_time == pytest.approx(1.0)  # the branch finished under the router


async def test_an_unplanned_winner_starts_when_the_router_answers(
    autojump_clock: MockClock,
) -> None:
    result = await make_flow().run(request="a", speculate=Branches({"decide": ["b"]}))
    assert at(result, "a_only").start - result.started == pytest.approx(1.0)
    assert not at(result, "a_only").speculative
    assert result.wall_time == pytest.approx(3.0)


async def test_a_loser_is_cancelled_the_moment_the_router_answers(
    autojump_clock: MockClock,
) -> None:
    result = await make_flow().run(request="b", speculate=Branches({"decide": ["a", "b"]}))
    loser = at(result, "a_only")
    assert loser.status is StepStatus.CANCELLED
    assert loser.wasted
    assert loser.end == at(result, "decide").end
    assert result.values["out"] == "b2"


async def test_a_step_limit_parks_the_rest_until_the_branch_is_chosen(
    autojump_clock: MockClock,
) -> None:
    result = await make_flow().run(request="b", speculate=Branches({"decide": {"b": 1}}))
    assert at(result, "b_first").start == result.started
    assert at(result, "b_second").start - result.started == pytest.approx(1.0)


async def test_the_predictor_runs_as_router_dot_predict_and_is_waste_when_wrong(
    autojump_clock: MockClock,
) -> None:
    unasked = await make_flow(FixedPredictor({"a": 0.9})).run(request="b", mode="parallel")
    # Without speculation there is no policy to guide, so nothing asks the predictor.
    assert all(e.step != "decide.predict" for e in unasked.trace)
    assert unasked.decisions[0].prediction is None

    class Follow:
        def check(self, routers: Mapping[str, tuple[str, ...]]) -> None:
            return None

        def plan(self, router: RouterView) -> SpeculationPlan:
            likeliest = None if router.prediction is None else router.prediction.likeliest
            return {} if likeliest is None else {likeliest: None}

    wrong = await make_flow(FixedPredictor({"a": 0.9})).run(request="b", speculate=Follow())
    predict = at(wrong, "decide.predict")
    assert (predict.branch, predict.status, predict.speculative) == ("", StepStatus.OK, True)
    assert predict.wasted
    assert wrong.decisions[0].plan == {"a": None}
    assert wrong.decisions[0].right is False
    right = await make_flow(FixedPredictor({"b": 0.9})).run(request="b", speculate=Follow())
    assert not at(right, "decide.predict").wasted
    assert right.decisions[0].right


async def test_the_decision_records_label_time_plan_and_reasons(
    autojump_clock: MockClock,
) -> None:
    reason = PlanReason(probability=0.5, steps=1, saving=0.2, waste=0.1)

    @attrs.frozen
    class Reasoned:
        def check(self, routers: Mapping[str, tuple[str, ...]]) -> None:
            return None

        def plan(self, router: RouterView) -> SpeculationPlan:
            return Plan({"b": 1}, {"b": reason, "a": attrs.evolve(reason, steps=0)})

    result = await make_flow().run(request="a", speculate=Reasoned())
    (decision,) = result.decisions
    assert (decision.router, decision.branch, decision.label) == ("decide", "", "a")
    assert decision.at == pytest.approx(result.started + 1.0)
    assert decision.plan == {"b": 1}
    assert decision.reasons == {"b": reason, "a": attrs.evolve(reason, steps=0)}
    assert decision.prediction is None
    assert not decision.wasted


async def test_a_plan_naming_an_unknown_branch_fails_the_run(autojump_clock: MockClock) -> None:
    class Careless:
        def check(self, routers: Mapping[str, tuple[str, ...]]) -> None:
            return None

        def plan(self, router: RouterView) -> SpeculationPlan:
            return {"z": None}

    with pytest.raises(UnknownBranchError, match=r"planned branch 'z' for router 'decide'"):
        await make_flow().run(request="a", speculate=Careless())


async def test_an_answer_that_is_not_a_known_route_is_refused(autojump_clock: MockClock) -> None:
    with pytest.raises(UnknownRouteError, match=r"returned 'a'; a router step must return a"):
        await make_flow(answer="a").run(request="a")
    with pytest.raises(UnknownRouteError, match=r"label 'c'.*known labels: 'a', 'b'"):
        await make_flow(answer=Route("c")).run(request="a")
    with pytest.raises(HandoffError, match=r"handed \['extra'\] to branch 'a'"):
        await make_flow(answer=Route("a", extra=1)).run(request="a")


# -- verified hits: a stale cached route is a miss, a corrected near match is stored -------


def cached_router(answer: list[str], labels: tuple[str, ...], **cache: Any) -> tuple[Any, Flow]:
    """A cached router step answering `answer[0]`, over one branch per label."""
    from specroute.cache import CacheOptions

    calls: list[str] = []

    @step(cache=CacheOptions(**cache))
    async def triage(request: str) -> Route:
        calls.append(request)
        return Route(answer[0])

    def leaf(label: str) -> Flow:
        @step(name=f"handle_{label}", output="out")
        async def handle(request: str) -> str:
            return label

        return Flow([handle])

    flow = Flow([router(triage, {label: leaf(label) for label in labels})], name="triage")
    return calls, flow


@pytest.mark.parametrize("mode", ["sequential", "parallel", "speculative"])
async def test_an_exact_hit_naming_a_label_the_router_lost_is_a_miss(mode: str) -> None:
    from specroute.cache import open_cache

    answer = ["old"]
    calls, before = cached_router(answer, ("old", "new"))
    async with open_cache() as cache:
        await before.run(request="refund", cache=cache, mode=mode)
        # The same router step, in a flow whose branches no longer include "old".
        answer[0] = "new"
        renamed = Flow(
            [router(before.nodes[0].step, {"new": before.nodes[0].branches["new"]})], name="v2"
        )
        result = await renamed.run(request="refund", cache=cache, mode=mode)
        assert result.outputs["out"] == "new"
        assert calls == ["refund", "refund"]
        assert result.decisions[0].cache is None
        # The router's own answer replaced the stale one: the next run is an exact hit.
        again = await renamed.run(request="refund", cache=cache, mode=mode)
        assert again.outputs["out"] == "new"
        assert calls == ["refund", "refund"]
        assert again.decisions[0].cache == "exact"


@pytest.mark.parametrize("mode", ["sequential", "parallel", "speculative"])
async def test_a_near_match_naming_a_label_the_router_lost_is_a_miss(mode: str) -> None:
    from specroute.cache import open_cache

    answer = ["old"]
    calls, before = cached_router(answer, ("old", "new"), semantic="request")
    async with open_cache() as cache:
        await before.run(request="Book a flight to Paris for Monday", cache=cache, mode=mode)
        answer[0] = "new"
        renamed = Flow(
            [router(before.nodes[0].step, {"new": before.nodes[0].branches["new"]})], name="v2"
        )
        result = await renamed.run(
            request="book a flight to Paris for monday!", cache=cache, mode=mode
        )
        assert result.outputs["out"] == "new"
        assert len(calls) == 2
        assert result.decisions[0].cache is None


@pytest.mark.parametrize("exact", [True, False])
async def test_a_corrected_near_match_is_stored_under_its_own_answer(exact: bool) -> None:
    from specroute.cache import open_cache

    answer = ["travel"]
    calls, flow = cached_router(answer, ("travel", "billing"), semantic="request", exact=exact)
    async with open_cache() as cache:
        await flow.run(request="Book a flight to Paris for Monday", cache=cache)
        answer[0] = "billing"
        corrected = await flow.run(request="book a flight to Paris for monday!", cache=cache)
        assert corrected.outputs["out"] == "billing"
        assert corrected.decisions[0].cache == "semantic (verified)"
        stats = cache.statistics()
        assert stats.stores == 2
        assert stats.semantic_entries == 2
        if exact:
            # The paraphrase's own answer is an exact hit now; the router is not asked.
            again = await flow.run(request="book a flight to Paris for monday!", cache=cache)
            assert (again.decisions[0].cache, again.outputs["out"]) == ("exact", "billing")
            assert len(calls) == 2


async def test_a_predictor_that_changes_its_inputs_does_not_change_the_routers(
    autojump_clock: MockClock,
) -> None:
    seen: list[Any] = []

    class Rewriting:
        async def predict(self, view: RouterView, inputs: Any) -> Any:
            inputs["x"] = "rewritten"  # not a predictor's to change (a `Mapping`), but done
            await trio.sleep(1)
            return Prediction(probabilities={"a": 1.0}, source="test")

        def observe(self, view: RouterView, inputs: Mapping[str, Any], label: str) -> None:
            pass

    @step
    async def pick(x: int) -> Route:
        seen.append(x)
        await trio.lowlevel.checkpoint()
        return Route("a")

    @step(output="out")
    async def take(x: int) -> int:
        return x

    flow = Flow([router(pick, {"a": [take]}, predictor=Rewriting())], outputs=["out"])
    result = await flow.run(x=1, mode="speculative", speculate=Branches({"pick": ["a"]}))
    assert seen == [1]
    assert result.outputs == {"out": 1}
