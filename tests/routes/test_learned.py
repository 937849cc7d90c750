"""`LearnedState` (`routes/_learned.py`): what runs learn lives apart from what a flow is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import pytest
import trio
from specroute.engine import Flow, ModelPredictor, router, step
from specroute.routes import (
    LearnedFigure,
    LearnedState,
    Prediction,
    Route,
    RouterMemory,
    RouterView,
    RouteStatistics,
    process_learned_state,
)

if TYPE_CHECKING:
    from trio.testing import MockClock

LABELS = ("fast", "slow")


def view_of(state: LearnedState, name: str = "decide") -> RouterView:
    """The view the engine gives a predictor: memory is the run's learned state."""
    return RouterView(
        name=name,
        labels=LABELS,
        branch_sizes=dict.fromkeys(LABELS, 1),
        memory=state.router(name).predictor,
    )


def test_router_memory_is_made_on_first_use_and_then_kept() -> None:
    state = LearnedState()
    assert dict(state.routers()) == {}
    memory = state.router("decide")
    assert isinstance(memory, RouterMemory)
    assert state.router("decide") is memory
    assert list(state.routers()) == ["decide"]


def test_routers_is_a_read_only_view() -> None:
    state = LearnedState()
    state.router("decide")
    view = state.routers()
    with pytest.raises(TypeError):
        view["other"] = RouterMemory()  # type: ignore[index]
    state.router("other")
    assert set(view) == {"decide", "other"}  # a live view, not a copy


def test_snapshot_is_deep_and_restore_brings_it_back() -> None:
    state = LearnedState()
    stats = RouteStatistics(decay=1.0)
    stats.observe(view_of(state), {}, "fast")
    state.router("decide").calibration.record(0.9, True)
    saved = state.snapshot()
    stats.observe(view_of(state), {}, "slow")
    state.router("decide").calibration.record(0.9, False)
    assert saved.router("decide").predictor["counts"][None] == {"fast": 1.0}
    assert saved.router("decide").calibration.totals() == (1, 0)
    state.restore(saved)
    assert state.router("decide").predictor["counts"][None] == {"fast": 1.0}
    # What was restored is a copy: learning more does not change the snapshot.
    stats.observe(view_of(state), {}, "slow")
    assert saved.router("decide").predictor["counts"][None] == {"fast": 1.0}


def test_reset_forgets_one_router_or_everything() -> None:
    state = LearnedState()
    state.router("a").predictor["x"] = 1
    state.router("b").predictor["x"] = 2
    state.reset("a")
    assert list(state.routers()) == ["b"]
    state.reset("missing")  # forgetting what was never learned is fine
    state.reset()
    assert dict(state.routers()) == {}


def test_route_statistics_keep_their_counts_in_the_view_memory() -> None:
    state = LearnedState()
    stats = RouteStatistics(decay=1.0, smoothing=1.0)
    before = attrs.asdict(stats)
    for label in ("slow", "slow", "fast"):
        stats.observe(view_of(state), {}, label)
    assert state.router("decide").predictor == {"counts": {None: {"slow": 2.0, "fast": 1.0}}}
    assert attrs.asdict(stats) == before  # the predictor itself learned nothing
    assert stats.probabilities(view_of(state), {}) == {"fast": 2 / 5, "slow": 3 / 5}
    assert stats.probabilities(view_of(LearnedState()), {}) == {"fast": 0.5, "slow": 0.5}


def test_model_predictor_keeps_its_record_in_the_view_memory() -> None:
    state = LearnedState()
    predictor = ModelPredictor(client=None, model="m")  # type: ignore[arg-type]
    guess = Prediction(probabilities={"slow": 0.5}, source="model")
    for real in ("slow", "fast"):
        predictor.observe(attrs.evolve(view_of(state), prediction=guess), {}, real)
    assert state.router("decide").predictor == {"asked": 2, "right": 1}
    assert predictor.confidence(view_of(state)) == (1 + 1) / (2 + 2)
    assert predictor.confidence(view_of(LearnedState())) == 0.5


def make_flow(name: str, predictor: RouteStatistics) -> Flow:
    @step(name=f"{name}_decide")
    async def decide(request: str) -> Route:
        await trio.sleep(1)
        return Route(request)

    @step(name=f"{name}_work", output="answer")
    async def work(request: str) -> str:
        return request

    branches: dict[str, Any] = {label: Flow([work], name=label) for label in LABELS}
    return Flow([router(decide, branches, predictor=predictor)], name=name)


async def test_two_flows_sharing_one_predictor_learn_separately(
    autojump_clock: MockClock,
) -> None:
    shared = RouteStatistics(decay=1.0)
    one, two = make_flow("one", shared), make_flow("two", shared)
    learned_one, learned_two = LearnedState(), LearnedState()
    for _ in range(3):
        await one.run(request="fast", learned=learned_one)
    await two.run(request="slow", learned=learned_two)
    assert learned_one.router("one_decide").predictor["counts"][None] == {"fast": 3.0}
    assert learned_two.router("two_decide").predictor["counts"][None] == {"slow": 1.0}
    assert "two_decide" not in learned_one.routers()
    assert "one_decide" not in learned_two.routers()
    assert "one_decide" not in process_learned_state().routers()


def test_the_process_state_is_one_object() -> None:
    assert process_learned_state() is process_learned_state()


def test_figures_address_every_number_and_update_figures_sets_them() -> None:
    state = LearnedState()
    stats = RouteStatistics(decay=1.0, bucket=lambda inputs: ("en", 2))
    for label in ("slow", "slow", "fast"):
        stats.observe(view_of(state), {}, label)
    state.router("decide").predictor["note"] = "not a number"
    state.router("decide").predictor["flag"] = True
    state.router("decide").calibration.record(0.953, confirmed=True)
    state.step("extract").record(confirmed=False)
    figures = state.figures()
    assert figures == {
        LearnedFigure("predictor", "decide", ("counts", ("en", 2), "slow")): 2.0,
        LearnedFigure("predictor", "decide", ("counts", ("en", 2), "fast")): 1.0,
        LearnedFigure("calibration", "decide", (0.01, 95, "confirmed")): 1,
        LearnedFigure("step", "extract", ("refuted",)): 1,
    }
    copy = LearnedState()
    assert copy.update_figures(figures) == set()
    assert copy.figures() == figures
    assert copy.router("decide").calibration.confidence(0.953) == state.router(
        "decide"
    ).calibration.confidence(0.953)
    assert stats.probabilities(view_of(copy), {}) == stats.probabilities(view_of(state), {})
    # A zero removes a number; other data in the memory stays.
    assert state.update_figures(dict.fromkeys(figures, 0)) == set()
    assert state.figures() == {}
    assert state.router("decide").predictor["note"] == "not a number"
    assert state.router("decide").calibration.totals() == (0, 0)
    assert state.step("extract").settled == 0


def test_update_figures_returns_what_it_cannot_set() -> None:
    state = LearnedState()
    state.router("decide").predictor["counts"] = "a string, not a dict"
    wrong_width = LearnedFigure("calibration", "decide", (0.05, 19, "confirmed"))
    through_a_string = LearnedFigure("predictor", "decide", ("counts", None, "fast"))
    unknown_field = LearnedFigure("step", "extract", ("maybe",))
    skipped = state.update_figures({wrong_width: 1, through_a_string: 1.0, unknown_field: 2})
    assert skipped == {wrong_width, through_a_string, unknown_field}
    assert state.figures() == {}
