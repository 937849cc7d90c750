"""`Hedge` checks its fields; `HedgeState` learns per provider and model and keeps the budget."""

from __future__ import annotations

import pytest
from specroute.engine.llm import Hedge, HedgeState, no_hedging, process_hedge_state
from specroute.engine.llm._hedge import hedging_allowed


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("after", 1.0, r"`after` must be a quantile in \(0, 1\), got 1.0"),
        ("after", 0, r"`after` must be a quantile in \(0, 1\), got 0"),
        ("max_extra", 0.0, r"`max_extra` must be a fraction in \(0, 1\], got 0.0"),
        ("max_extra", 1.5, r"`max_extra` must be a fraction in \(0, 1\], got 1.5"),
        ("min_samples", 0, "`min_samples` must be an int >= 1, got 0"),
        ("initial_delay", 0.0, "`initial_delay` must be a number > 0, got 0.0"),
        ("burst", -1.0, "`burst` must be a number > 0, got -1.0"),
        ("to_next", 1, "`to_next` must be True or False, got 1"),
    ],
)
def test_hedge_refuses_out_of_range_fields(field: str, value: object, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        Hedge(**{field: value})  # type: ignore[arg-type]


def test_threshold_is_the_initial_delay_until_enough_samples_then_the_quantile() -> None:
    state = HedgeState()
    hedge = Hedge(after=0.5, min_samples=4, initial_delay=7.0)
    window = state.latencies("p", "m")
    for seconds in (1.0, 2.0, 3.0):
        window.add(seconds)
        assert state.threshold("p", "m", hedge) == 7.0
    window.add(4.0)
    assert state.threshold("p", "m", hedge) == 2.0
    # Another model of the same provider learns apart.
    assert state.threshold("p", "other", hedge) == 7.0
    assert state.threshold("p", "other", Hedge(min_samples=4)) is None


def test_budget_earns_max_extra_per_call_up_to_burst() -> None:
    state = HedgeState()
    hedge = Hedge(max_extra=0.25, burst=1.0)
    for _ in range(3):
        state._earn(hedge)
    assert not state._spend()
    state._earn(hedge)
    assert state._spend()
    for _ in range(20):
        state._earn(hedge)
    assert state.statistics().credit == 1.0
    stats = state.statistics()
    assert (stats.calls, stats.hedges_started, stats.over_budget) == (24, 1, 1)
    state.reset()
    assert state.statistics().calls == 0


def test_no_hedging_nests_and_restores() -> None:
    assert hedging_allowed()
    with no_hedging():
        assert not hedging_allowed()
        with no_hedging():
            assert not hedging_allowed()
        assert not hedging_allowed()
    assert hedging_allowed()


def test_one_state_per_process() -> None:
    assert process_hedge_state() is process_hedge_state()
