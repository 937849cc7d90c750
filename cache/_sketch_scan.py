"""The sketch filter's scan: which rows' sign sketches are close enough to the query's.

Every lookup of a sketch store reads the first 64 or 128 sketch bits of every row, so at
a million rows this scan is the lookup's cost. numpy needs four passes over each block
(xor, bit count, compare, index) and then gathers the survivors' other words for the
full count: 3-5 ms at 1M rows on the shared 2-core machine. With numba installed (the
`ann` extra) one compiled loop reads each row's words once, counts with the CPU's popcount
and checks both bounds as it goes: about 1 ms, near what memory delivers 8-16 MB in.

Both return exactly the same rows (`tests/cache/test_sketch_scan.py` holds them to it), so
`scan` can use numpy while a thread builds the compiled loop, and the compiled loop after.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["WORDS", "build_in_background", "compiled_kernel", "compiled_scan", "numpy_scan", "scan"]

# Sketch words (64 bits each) per row.
WORDS = 4
# Rows per block of numpy's first pass: 256 KiB of words, within a core's L2 cache.
_BLOCK = 32_768

Scan = Callable[..., "NDArray[np.intp]"]


def numpy_scan(
    codes: NDArray[np.uint64],
    size: int,
    code: NDArray[np.uint64],
    words: int,
    first_bound: int,
    full_bound: int,
) -> NDArray[np.intp]:
    """Rows among the first `size` of word-major `codes` whose first `words` words differ
    from `code` in at most `first_bound` bits, and all `WORDS` in at most `full_bound`."""
    kept = _first_pass(codes, size, code, words, first_bound)
    if not len(kept):
        return kept
    full = np.zeros(len(kept), dtype=np.uint16)
    for word in range(WORDS):
        full += np.bitwise_count(np.bitwise_xor(codes[word, kept], code[word]))
    return kept[full <= full_bound]


def _first_pass(
    codes: NDArray[np.uint64], size: int, code: NDArray[np.uint64], words: int, bound: int
) -> NDArray[np.intp]:
    # Block by block, so the temporaries stay in the CPU cache and only the sketches come
    # from memory (at 1M entries a third less time than whole-array passes).
    rows = min(size, _BLOCK)
    xored = np.empty(rows, dtype=np.uint64)
    counts = np.empty(rows, dtype=np.uint8)
    second = np.empty(rows, dtype=np.uint8)
    kept = []
    for start in range(0, size, _BLOCK):
        end = min(size, start + _BLOCK)
        rows = end - start
        np.bitwise_xor(codes[0, start:end], code[0], out=xored[:rows])
        np.bitwise_count(xored[:rows], out=counts[:rows])
        if words == 2:
            np.bitwise_xor(codes[1, start:end], code[1], out=xored[:rows])
            np.bitwise_count(xored[:rows], out=second[:rows])
            np.add(counts[:rows], second[:rows], out=counts[:rows])
        found = np.flatnonzero(counts[:rows] <= bound)
        if len(found):
            kept.append(found + start)
    return np.concatenate(kept) if kept else np.empty(0, dtype=np.intp)


def compiled_scan(
    codes: NDArray[np.uint64],
    size: int,
    code: NDArray[np.uint64],
    words: int,
    first_bound: int,
    full_bound: int,
) -> NDArray[np.intp]:
    """`numpy_scan` in one compiled pass; builds the loop first if need be (numba)."""
    kernel = compiled_kernel()
    if kernel is None:
        raise RuntimeError("compiled_scan needs numba: pip install 'specroute[ann]'")
    return _run(kernel, codes, size, code, words, first_bound, full_bound)


def scan(
    codes: NDArray[np.uint64],
    size: int,
    code: NDArray[np.uint64],
    words: int,
    first_bound: int,
    full_bound: int,
) -> NDArray[np.intp]:
    """The compiled loop once it is built, numpy's passes until then or without numba: the
    same rows either way, so a lookup never waits for the compiler."""
    kernel = _built.kernel
    if kernel is None:
        return numpy_scan(codes, size, code, words, first_bound, full_bound)
    return _run(kernel, codes, size, code, words, first_bound, full_bound)


def build_in_background() -> None:
    """Start building the compiled loop in a thread, once per process.

    Compiling takes about 0.6 s (loading numba's on-disk copy in a later process 0.2-0.3
    s), too long to hold up an event loop; `scan` uses numpy until the loop is ready.
    """
    with _built.lock:
        if _built.started:
            return
        _built.started = True
    threading.Thread(target=compiled_kernel, name="specroute sketch scan", daemon=True).start()


def _run(
    kernel: Callable[..., int],
    codes: NDArray[np.uint64],
    size: int,
    code: NDArray[np.uint64],
    words: int,
    first_bound: int,
    full_bound: int,
) -> NDArray[np.intp]:
    out = np.empty(size, dtype=np.intp)
    found = kernel(codes, size, code, words, np.uint64(first_bound), np.uint64(full_bound), out)
    return out[:found].copy()


class _Built:
    __slots__ = ("kernel", "lock", "started")

    def __init__(self) -> None:
        self.kernel: Callable[..., int] | None = None
        self.lock = threading.Lock()
        self.started = False


_built = _Built()


@functools.cache
def compiled_kernel() -> Callable[..., int] | None:
    """The numba loop, compiled for the argument types `scan` passes; `None` without numba."""
    try:
        from ._sketch_kernel import scan_into
    except ImportError:
        return None
    empty = np.zeros((WORDS, 1), dtype=np.uint64)
    _run(scan_into, empty, 0, empty[:, 0].copy(), 1, 0, 0)
    _built.kernel = scan_into
    return scan_into
