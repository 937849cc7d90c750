"""The compiled loop of the sketch scan (`cache/_sketch_kernel.py`): compiled once for one
signature, a first pass over one or two words, a full count of all four, and no row missed
at any place in a block or in the tail past the last."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from specroute.cache._sketch_kernel import _BLOCK, scan_into
from specroute.cache._sketch_scan import WORDS, SketchQuery, numpy_scan

from tests.cache.sketch_codes import counted, differing_in, packed

ZERO = np.zeros(WORDS, dtype=np.uint64)


def kernel_scan(codes: np.ndarray, size: int, asked: SketchQuery) -> list[int]:
    """The rows `scan_into` writes to `out`, as many as it says it wrote."""
    # As long as `codes`, so a loop running past `size` writes where it is seen, not past
    # the end of `out` (the loop does not check bounds).
    out = np.full(codes.shape[1], -1, dtype=np.intp)
    first, full = np.uint64(asked.first_bound), np.uint64(asked.full_bound)
    found = scan_into(codes, size, asked.code, asked.words, first, full, out)
    kept: list[int] = out[:found].tolist()
    return kept


def test_it_is_compiled_when_imported_for_one_signature() -> None:
    # Built in the thread that imports it; never compiled again on a caller's thread.
    assert len(scan_into.signatures) == 1


@pytest.mark.parametrize(
    "codes",
    [
        np.zeros((WORDS, 8), dtype=np.int64),  # signed words
        np.asfortranarray(np.zeros((WORDS, 8), dtype=np.uint64)),  # not word-major rows
    ],
)
def test_other_argument_types_are_refused_rather_than_compiled(codes: np.ndarray) -> None:
    out = np.empty(8, dtype=np.intp)
    with pytest.raises(TypeError, match="No matching definition"):
        scan_into(codes, 8, ZERO, 1, np.uint64(0), np.uint64(0), out)


@pytest.mark.parametrize(("words", "kept"), [(1, [0, 1, 2]), (2, [0, 1])])
def test_the_first_pass_counts_one_or_two_words(words: int, kept: list[int]) -> None:
    # Row 1 differs in word 0 by 3 and in word 1 by 2; row 2 in word 1 by 9.
    codes = packed(ZERO, differing_in(3, {1: [3, 2], 2: [0, 9]}))
    asked = SketchQuery(ZERO, words, 5, 64 * WORDS)
    assert kernel_scan(codes, 3, asked) == kept == counted(codes, 3, asked)


def test_the_full_count_drops_rows_the_first_pass_kept() -> None:
    # All three pass the first word; rows 1 and 2 differ further in words 2 and 3.
    codes = packed(ZERO, differing_in(3, {0: [1], 1: [1, 0, 3, 3], 2: [1, 0, 3, 4]}))
    asked = SketchQuery(ZERO, 1, 1, 7)
    assert kernel_scan(codes, 3, asked) == [0, 1] == counted(codes, 3, asked)


@pytest.mark.parametrize("words", [1, 2])
def test_rows_come_in_order_from_every_block_and_the_tail(words: int) -> None:
    size = 3 * _BLOCK + 5
    rng = np.random.default_rng(7)
    flips = rng.random((size, 64 * WORDS)) < rng.random((size, 1))
    codes = packed(ZERO, flips)
    asked = SketchQuery(ZERO, words, 20 * words, 90)
    kept = kernel_scan(codes, size, asked)
    assert kept == counted(codes, size, asked)
    # Enough rows on either side of the bounds that the comparison means something.
    assert 0 < len(kept) < size
    assert any(row >= 3 * _BLOCK for row in kept)


def test_nothing_past_size_is_read() -> None:
    codes = np.zeros((WORDS, _BLOCK + 10), dtype=np.uint64)
    assert kernel_scan(codes, _BLOCK + 3, SketchQuery(ZERO, 2, 0, 0)) == list(range(_BLOCK + 3))


@pytest.mark.parametrize("words", [1, 2])
def test_one_row_at_the_bound_is_found_at_every_place_in_a_block(words: int) -> None:
    # Every other row differs in every bit, so the only block with a row within the bound
    # is the planted row's: at each position of a block, and in the tail past the last.
    size = 3 * _BLOCK + 5
    query = np.zeros(WORDS, dtype=np.uint64)
    bound = 10
    for place in range(2 * _BLOCK, size):
        for differing, expected in ((bound, [place]), (bound + 1, [])):
            flips = np.ones((size, 64 * WORDS), dtype=bool)
            flips[place] = False
            flips[place, :differing] = True  # all within the first word
            codes = packed(query, flips)
            asked = SketchQuery(query, words, bound, bound)
            assert kernel_scan(codes, size, asked) == expected, (place, differing)
            assert numpy_scan(codes, size, asked).tolist() == expected
