"""The sketch scan: numba's compiled loop keeps exactly the rows numpy's passes keep."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from specroute.cache._ann import SketchRows
from specroute.cache._sketch_scan import (
    _BLOCK,
    WORDS,
    _built,
    compiled_kernel,
    compiled_scan,
    numpy_scan,
    scan,
)

pytestmark = pytest.mark.skipif(compiled_kernel() is None, reason="numba is not installed")


def codes_near(query: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Word-major codes, each differing from `query` in a random number of random bits, so
    counts fall on every side of the bounds (and on them)."""
    rng = np.random.default_rng(seed)
    flips = rng.random((size, 64 * WORDS)) < rng.random((size, 1))
    bits = np.unpackbits(query.view(np.uint8), bitorder="little") ^ flips
    packed = np.packbits(bits, axis=1, bitorder="little").view(np.uint64)
    return np.ascontiguousarray(packed.T)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(0, 3_000),
    words=st.sampled_from([1, 2]),
    first_share=st.floats(0, 0.6),
    full_share=st.floats(0, 0.6),
)
def test_compiled_and_numpy_keep_the_same_rows(
    seed: int, size: int, words: int, first_share: float, full_share: float
) -> None:
    query = np.random.default_rng(seed).integers(0, 2**64, WORDS, dtype=np.uint64)
    # Spare columns past `size`: the scan must stop at `size`, not at the array's end.
    codes = codes_near(query, size + 7, seed)
    first_bound = round(first_share * 64 * words)
    full_bound = round(full_share * 64 * WORDS)
    expected = numpy_scan(codes, size, query, words, first_bound, full_bound)
    kept = compiled_scan(codes, size, query, words, first_bound, full_bound)
    assert kept.dtype == np.intp
    assert kept.tolist() == expected.tolist()
    differing = np.bitwise_count(codes[:, :size] ^ query[:, None]).astype(int)
    within = (differing[:words].sum(axis=0) <= first_bound) & (differing.sum(axis=0) <= full_bound)
    assert expected.tolist() == np.flatnonzero(within).tolist()


def test_numpy_spans_several_blocks() -> None:
    query = np.zeros(WORDS, dtype=np.uint64)
    codes = np.full((WORDS, _BLOCK + 500), np.uint64(2**64 - 1))
    near = [0, _BLOCK - 1, _BLOCK, _BLOCK + 499]
    codes[:, near] = 0
    for chosen in (numpy_scan, compiled_scan):
        assert chosen(codes, _BLOCK + 500, query, 2, 0, 0).tolist() == near


def test_a_sketch_store_builds_the_loop_in_a_thread_and_scan_then_uses_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    SketchRows(16, dtype="f32", miss_rate=1e-4)
    for thread in threading.enumerate():
        if thread.name == "specroute sketch scan":
            thread.join()
    kernel = _built.kernel
    assert kernel is not None
    assert kernel is compiled_kernel()
    calls = []

    def counted(*args: object) -> int:
        calls.append(args[1])
        return kernel(*args)

    monkeypatch.setattr(_built, "kernel", counted)
    query = np.zeros(WORDS, dtype=np.uint64)
    codes = np.zeros((WORDS, 3), dtype=np.uint64)
    assert scan(codes, 3, query, 1, 0, 0).tolist() == [0, 1, 2]
    assert calls == [3]
    # Until the loop is built, numpy answers.
    monkeypatch.setattr(_built, "kernel", None)
    assert scan(codes, 2, query, 1, 0, 0).tolist() == [0, 1]
    assert calls == [3]
