"""The compiled loop of the sketch scan (numba); imported only when numba is installed.

A first loop counts differing bits over each row's first sketch word or two and keeps the
rows within the first bound, a block of rows at a time: it takes the block's least count
in a loop with no branch (vector instructions) and looks at single rows only in a block
that has one within the bound. A second loop counts the full sketch of those few rows.
Module level, so numba can cache the compiled code on disk.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

__all__ = ["scan_into"]

# Mixing uint64 with numba's default int64 promotes to float64, so every operand of the
# bit arithmetic and of the comparisons is uint64.
_ONE, _TWO, _FOUR, _TOP = np.uint64(1), np.uint64(2), np.uint64(4), np.uint64(56)
_M1, _M2 = np.uint64(0x5555555555555555), np.uint64(0x3333333333333333)
_M4, _ONES = np.uint64(0x0F0F0F0F0F0F0F0F), np.uint64(0x0101010101010101)
_MORE_THAN_ANY_COUNT = np.uint64(256)
# Rows per block of the first loop (at 1M rows and one word 0.3 ms against 0.5-1 for a
# loop testing each row; 64 measured best of 32-512).
_BLOCK = 64


@numba.njit(inline="always", cache=True)
def _popcount(x: Any) -> Any:
    # LLVM turns this bit-count idiom into the CPU's popcount instruction.
    x = x - ((x >> _ONE) & _M1)
    x = (x & _M2) + ((x >> _TWO) & _M2)
    x = (x + (x >> _FOUR)) & _M4
    return (x * _ONES) >> _TOP


# The first loop is written out once per word count: with the count of words as an
# argument, or rows read through the 2-D array, LLVM left it scalar (2-2.5 ms, not 1).
@numba.njit(inline="always", cache=True)
def _first_pass_one(first: Any, size: int, q0: Any, bound: Any, out: Any) -> int:
    found = 0
    whole = size - size % _BLOCK
    for start in range(0, whole, _BLOCK):
        least = _MORE_THAN_ANY_COUNT
        for row in range(start, start + _BLOCK):
            least = min(least, _popcount(first[row] ^ q0))
        if least <= bound:
            for row in range(start, start + _BLOCK):
                if _popcount(first[row] ^ q0) <= bound:
                    out[found] = row
                    found += 1
    for row in range(whole, size):
        if _popcount(first[row] ^ q0) <= bound:
            out[found] = row
            found += 1
    return found


@numba.njit(inline="always", cache=True)
def _first_pass_two(
    first: Any, second: Any, size: int, q0: Any, q1: Any, bound: Any, out: Any
) -> int:
    found = 0
    whole = size - size % _BLOCK
    for start in range(0, whole, _BLOCK):
        least = _MORE_THAN_ANY_COUNT
        for row in range(start, start + _BLOCK):
            least = min(least, _popcount(first[row] ^ q0) + _popcount(second[row] ^ q1))
        if least <= bound:
            for row in range(start, start + _BLOCK):
                if _popcount(first[row] ^ q0) + _popcount(second[row] ^ q1) <= bound:
                    out[found] = row
                    found += 1
    for row in range(whole, size):
        if _popcount(first[row] ^ q0) + _popcount(second[row] ^ q1) <= bound:
            out[found] = row
            found += 1
    return found


# An explicit signature: compiled when this module is imported (in the thread that builds
# it), and any other argument types are refused rather than compiled on the caller's thread.
@numba.njit(
    "int64(uint64[:, ::1], int64, uint64[::1], int64, uint64, uint64, intp[::1])",
    nogil=True,
    cache=True,
    boundscheck=False,
)
def scan_into(
    codes: Any, size: int, code: Any, words: int, first_bound: Any, full_bound: Any, out: Any
) -> int:
    """Write to `out` the rows of word-major `codes` within both bounds; return how many."""
    q0, q1, q2, q3 = code[0], code[1], code[2], code[3]
    if words == 1:
        found = _first_pass_one(codes[0], size, q0, first_bound, out)
    else:
        found = _first_pass_two(codes[0], codes[1], size, q0, q1, first_bound, out)
    kept = 0
    for index in range(found):
        row = out[index]
        count = _popcount(codes[0, row] ^ q0) + _popcount(codes[1, row] ^ q1)
        count += _popcount(codes[2, row] ^ q2) + _popcount(codes[3, row] ^ q3)
        if count <= full_bound:
            out[kept] = row
            kept += 1
    return kept
