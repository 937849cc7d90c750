"""The sketch filter's scan: which rows' sign sketches are close enough to the query's.

Every lookup of a sketch store reads the first 64 or 128 sketch bits of every row, so at
a million rows this scan is the lookup's cost. numpy needs four passes over each block
(xor, bit count, compare, index) and then gathers the survivors' other words for the
full count: 1.7-5.4 ms at 1M rows on the shared 2-core machine. With numba installed (the
`ann` extra) one compiled loop (`_sketch_kernel`) does it in 0.4-1.4 ms, near the time
memory takes to deliver 8-16 MB.

Both keep exactly the same rows (`tests/cache/test_sketch_scan.py` holds them to it), so
`scan` uses numpy until a thread has built the compiled loop, and the compiled loop after.
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import TYPE_CHECKING

import attrs
import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import NDArray

__all__ = [
    "WORDS",
    "SketchQuery",
    "build_in_background",
    "compiled_kernel",
    "compiled_scan",
    "numpy_scan",
    "scan",
]

# Sketch words (64 bits each) per row.
WORDS = 4
# Rows per block of numpy's first pass: 256 KiB of words, within a core's L2 cache.
_BLOCK = 32_768


def _one_or_two(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value not in (1, 2):
        raise ValueError(f"a first pass reads 1 or 2 sketch words, got {value!r}")


def _not_negative(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"`{attribute.name}` counts bits: >= 0, got {value!r}")


@attrs.frozen
class SketchQuery:
    """What a scan keeps: rows whose first `words` sketch words differ from `code` in at
    most `first_bound` bits, and all `WORDS` words in at most `full_bound`."""

    code: NDArray[np.uint64]
    words: int = attrs.field(validator=_one_or_two)
    first_bound: int = attrs.field(validator=_not_negative)
    full_bound: int = attrs.field(validator=_not_negative)


def numpy_scan(codes: NDArray[np.uint64], size: int, query: SketchQuery) -> NDArray[np.intp]:
    """The rows among the first `size` of word-major `codes` that `query` keeps."""
    _check(codes, size)
    code = query.code
    kept = _first_pass(codes, size, code, query.words, query.first_bound)
    if not len(kept):
        return kept
    full = np.zeros(len(kept), dtype=np.uint16)
    for word in range(WORDS):
        full += np.bitwise_count(np.bitwise_xor(codes[word, kept], code[word]))
    return kept[full <= query.full_bound]


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


def compiled_scan(codes: NDArray[np.uint64], size: int, query: SketchQuery) -> NDArray[np.intp]:
    """`numpy_scan` in one compiled pass; builds the loop first if need be (numba)."""
    kernel = compiled_kernel()
    if kernel is None:
        raise RuntimeError("compiled_scan needs numba: pip install 'specroute[ann]'")
    return _run(kernel, codes, size, query)


def scan(codes: NDArray[np.uint64], size: int, query: SketchQuery) -> NDArray[np.intp]:
    """The compiled loop once it is built, numpy's passes until then or without numba: the
    same rows either way."""
    kernel = _built.kernel
    if kernel is None:
        return numpy_scan(codes, size, query)
    return _run(kernel, codes, size, query)


def build_in_background() -> threading.Thread | None:
    """Start building the compiled loop in a thread, once per process; return the thread,
    or `None` if a build already began.

    Importing numba and compiling took 0.6-2 s here (loading numba's on-disk copy in a
    later process 0.3-0.4 s). Lookups meanwhile use numpy's scan rather than wait, but the
    compiling thread holds the interpreter lock in stretches: a lookup measured up to 120
    ms while it compiled (11-51 ms while it loaded the on-disk copy).
    """
    with _built.lock:
        if _built.started:
            return None
        _built.started = True
    thread = threading.Thread(target=compiled_kernel, name="specroute sketch scan", daemon=True)
    thread.start()
    return thread


def compiled_kernel() -> Callable[..., int] | None:
    """The numba loop, compiled (once per process) for the argument types `scan` passes;
    `None` without numba, or with a `RuntimeWarning` if numba fails to build it."""
    with _built.building:
        if _built.kernel is None and _built.failed is None:
            try:
                _built.kernel = _compile()
            except ImportError:
                _built.failed = "numba is not installed"
            except Exception as exc:  # noqa: BLE001 -- numba's own errors: warn, use numpy
                _built.failed = f"{type(exc).__name__}: {exc}"
                warnings.warn(
                    "specroute: the sketch filter's compiled scan could not be built"
                    f" ({_built.failed}); lookups use numpy's scan (the same answers, slower)."
                    " If numba cannot write its cache, set NUMBA_CACHE_DIR to a writable"
                    " folder",
                    RuntimeWarning,
                    stacklevel=1,
                )
        return _built.kernel


def _compile() -> Callable[..., int]:
    from ._sketch_kernel import scan_into  # compiles, or loads numba's on-disk copy

    return scan_into


def _check(codes: NDArray[np.uint64], size: int) -> None:
    # The compiled loop reads without bounds checks, so the bounds are checked here.
    if codes.shape[0] != WORDS or not 0 <= size <= codes.shape[1]:
        raise ValueError(f"expected {WORDS} rows of at least {size} words, got {codes.shape}")


def _run(
    kernel: Callable[..., int], codes: NDArray[np.uint64], size: int, query: SketchQuery
) -> NDArray[np.intp]:
    _check(codes, size)
    out = np.empty(size, dtype=np.intp)
    first, full = np.uint64(query.first_bound), np.uint64(query.full_bound)
    found = kernel(codes, size, query.code, query.words, first, full, out)
    return out[:found].copy()


class _Built:
    """The compiled loop of this process, once built, and whether a build began."""

    __slots__ = ("building", "failed", "kernel", "lock", "started")

    def __init__(self) -> None:
        self.kernel: Callable[..., int] | None = None
        self.failed: str | None = None
        self.started = False
        self.lock = threading.Lock()
        self.building = threading.Lock()


_built = _Built()


def _after_fork_in_child() -> None:
    # A fork during a build leaves no thread to finish it, and maybe its locks held.
    _built.lock = threading.Lock()
    _built.building = threading.Lock()
    _built.started = _built.kernel is not None or _built.failed is not None


os.register_at_fork(after_in_child=_after_fork_in_child)
