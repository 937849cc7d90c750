"""The latency window: exact quantiles over the last `size` samples."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from specroute.engine.llm import LatencyWindow


def test_quantile_is_a_sample_with_at_least_q_of_the_window_at_or_below_it() -> None:
    window = LatencyWindow(100)
    for seconds in range(100, 0, -1):
        window.add(float(seconds))
    assert window.quantile(0.97) == 97.0
    assert window.quantile(0.5) == 50.0
    assert window.quantile(0.001) == 1.0
    assert window.quantile(1.0) == 100.0


def test_empty_window_has_no_quantile() -> None:
    assert LatencyWindow().quantile(0.5) is None
    assert LatencyWindow().mean_above(0.0) is None


def test_oldest_sample_is_forgotten_once_full() -> None:
    window = LatencyWindow(3)
    for seconds in (9.0, 1.0, 2.0, 3.0):
        window.add(seconds)
    assert len(window) == 3
    assert window.quantile(1.0) == 3.0


def test_mean_above_counts_only_larger_samples() -> None:
    window = LatencyWindow()
    for seconds in (1.0, 2.0, 10.0, 20.0):
        window.add(seconds)
    assert window.mean_above(2.0) == 15.0
    assert window.mean_above(20.0) is None


@pytest.mark.parametrize("bad", [-1.0, math.inf, math.nan])
def test_bad_latency_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="`seconds` must be a finite number >= 0"):
        LatencyWindow().add(bad)


@pytest.mark.parametrize("bad", [0.0, 1.5, -0.1])
def test_bad_quantile_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match=r"`q` must be in \(0, 1\]"):
        LatencyWindow().quantile(bad)


def test_size_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="`size` must be an int >= 1, got 0"):
        LatencyWindow(0)


@given(
    st.lists(st.floats(0, 1e6), min_size=1, max_size=60),
    st.integers(1, 20),
    st.floats(0.01, 1.0),
)
def test_matches_sorting_the_last_samples(samples: list[float], size: int, q: float) -> None:
    window = LatencyWindow(size)
    for seconds in samples:
        window.add(seconds)
    kept = sorted(samples[-size:])
    assert window.quantile(q) == kept[math.ceil(q * len(kept)) - 1]
