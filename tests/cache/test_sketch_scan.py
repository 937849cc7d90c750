"""The sketch scan: numpy's passes keep the rows a direct count keeps, and numba's compiled
loop keeps exactly the same rows; the loop is built in a thread, once."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from specroute.cache import _sketch_scan, prepare_ann
from specroute.cache._ann import SketchRows
from specroute.cache._sketch_scan import (
    _BLOCK,
    WORDS,
    SketchQuery,
    build_in_background,
    compiled_kernel,
    compiled_scan,
    numpy_scan,
    scan,
)

from tests.cache.sketch_codes import counted, packed

needs_numba = pytest.mark.skipif(
    importlib.util.find_spec("numba") is None, reason="numba is not installed"
)


def codes_near(query: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Word-major codes, each differing from `query` in a random number of random bits, so
    counts fall on every side of the bounds (and on them)."""
    rng = np.random.default_rng(seed)
    flips = rng.random((size, 64 * WORDS)) < rng.random((size, 1))
    return packed(query, flips)


queries = st.builds(
    lambda seed, size, words, first, full: (seed, size, words, first, full),
    st.integers(0, 2**32 - 1),
    st.integers(0, 3_000),
    st.sampled_from([1, 2]),
    st.floats(0, 0.6),
    st.floats(0, 0.6),
)


def _case(drawn: tuple[int, int, int, float, float]) -> tuple[np.ndarray, int, SketchQuery]:
    seed, size, words, first_share, full_share = drawn
    query = np.random.default_rng(seed).integers(0, 2**64, WORDS, dtype=np.uint64)
    # Spare columns past `size`: a scan must stop at `size`, not at the array's end.
    codes = codes_near(query, size + 7, seed)
    asked = SketchQuery(
        query, words, round(first_share * 64 * words), round(full_share * 64 * WORDS)
    )
    return codes, size, asked


@settings(max_examples=60, deadline=None)
@given(queries)
def test_numpy_keeps_the_rows_a_direct_count_keeps(
    drawn: tuple[int, int, int, float, float],
) -> None:
    codes, size, asked = _case(drawn)
    kept = numpy_scan(codes, size, asked)
    assert kept.dtype == np.intp
    assert kept.tolist() == counted(codes, size, asked)


@needs_numba
@settings(max_examples=60, deadline=None)
@given(queries)
def test_compiled_keeps_the_same_rows_as_numpy(drawn: tuple[int, int, int, float, float]) -> None:
    codes, size, asked = _case(drawn)
    kept = compiled_scan(codes, size, asked)
    assert kept.dtype == np.intp
    assert kept.tolist() == numpy_scan(codes, size, asked).tolist()


@pytest.mark.parametrize("chosen", [numpy_scan, pytest.param(compiled_scan, marks=needs_numba)])
def test_a_scan_spans_several_of_numpys_blocks(chosen: object) -> None:
    query = np.zeros(WORDS, dtype=np.uint64)
    codes = np.full((WORDS, _BLOCK + 500), np.uint64(2**64 - 1))
    near = [0, _BLOCK - 1, _BLOCK, _BLOCK + 499]
    codes[:, near] = 0
    kept = chosen(codes, _BLOCK + 500, SketchQuery(query, 2, 0, 0))  # type: ignore[operator]
    assert kept.tolist() == near


@pytest.mark.parametrize(
    ("words", "first", "message"),
    [
        (3, 0, "a first pass reads 1 or 2 sketch words, got 3"),
        (1, -1, "`first_bound` counts bits: >= 0, got -1"),
    ],
)
def test_a_query_outside_what_the_scans_agree_on_is_refused(
    words: int, first: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SketchQuery(np.zeros(WORDS, dtype=np.uint64), words, first, 0)


def test_a_size_past_the_codes_is_refused_before_any_read() -> None:
    codes = np.zeros((WORDS, 3), dtype=np.uint64)
    with pytest.raises(ValueError, match=r"expected 4 rows of at least 4 words, got \(4, 3\)"):
        scan(codes, 4, SketchQuery(np.zeros(WORDS, dtype=np.uint64), 1, 0, 0))


@pytest.fixture
def fresh_build(monkeypatch: pytest.MonkeyPatch) -> _sketch_scan._Built:
    """This process's build state as if nothing had been built yet."""
    built = _sketch_scan._Built()
    monkeypatch.setattr(_sketch_scan, "_built", built)
    return built


@needs_numba
def test_a_sketch_store_builds_the_loop_in_a_thread_and_scan_then_uses_it(
    fresh_build: _sketch_scan._Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real_numpy_scan = numpy_scan

    def counted_numpy(codes: np.ndarray, size: int, asked: SketchQuery) -> np.ndarray:
        calls.append(size)
        return real_numpy_scan(codes, size, asked)

    monkeypatch.setattr(_sketch_scan, "numpy_scan", counted_numpy)
    codes = np.zeros((WORDS, 3), dtype=np.uint64)
    asked = SketchQuery(np.zeros(WORDS, dtype=np.uint64), 1, 0, 0)
    assert scan(codes, 3, asked).tolist() == [0, 1, 2]
    assert calls == [3]  # nothing built yet: numpy answered
    thread = build_in_background()
    assert thread is not None
    assert build_in_background() is None  # one build per process
    thread.join()
    assert fresh_build.kernel is not None
    assert scan(codes, 2, asked).tolist() == [0, 1]
    assert calls == [3]  # the compiled loop answered


def test_a_sketch_store_starts_the_build(fresh_build: _sketch_scan._Built) -> None:
    SketchRows(16, dtype="f32", miss_rate=1e-4)
    assert fresh_build.started


def test_a_failed_build_warns_once_and_leaves_numpy_answering(
    fresh_build: _sketch_scan._Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unbuildable() -> None:
        raise RuntimeError("cannot cache function '_popcount': no locator available")

    monkeypatch.setattr(_sketch_scan, "_compile", unbuildable)
    with pytest.warns(RuntimeWarning, match="set NUMBA_CACHE_DIR to a writable folder"):
        assert compiled_kernel() is None
    assert compiled_kernel() is None  # no second try, no second warning
    codes = np.zeros((WORDS, 2), dtype=np.uint64)
    assert scan(codes, 2, SketchQuery(codes[:, 0].copy(), 1, 0, 0)).tolist() == [0, 1]


def test_a_child_forked_during_a_build_can_build_again(fresh_build: _sketch_scan._Built) -> None:
    fresh_build.started = True  # a thread of the parent's was building
    fresh_build.building.acquire()
    _sketch_scan._after_fork_in_child()
    assert not fresh_build.started
    assert fresh_build.building.acquire(blocking=False)


@needs_numba
def test_prepare_ann_builds_the_loop_before_any_partition_switches(
    fresh_build: _sketch_scan._Built,
) -> None:
    assert prepare_ann()
    assert fresh_build.kernel is not None
