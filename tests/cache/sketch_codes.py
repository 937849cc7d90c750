"""Word-major sketch codes built bit by bit, and the rows a query keeps by a direct count: the
reference both the numpy scan and the compiled loop are held to."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from specroute.cache._sketch_scan import WORDS

if TYPE_CHECKING:
    from specroute.cache._sketch_scan import SketchQuery


def packed(query: np.ndarray, flips: np.ndarray) -> np.ndarray:
    """Word-major codes, row `i` being `query` with the bits `flips[i]` marks flipped."""
    bits = np.unpackbits(query.view(np.uint8), bitorder="little") ^ flips
    codes = np.packbits(bits, axis=1, bitorder="little").view(np.uint64)
    return np.ascontiguousarray(codes.T)


def counted(codes: np.ndarray, size: int, asked: SketchQuery) -> list[int]:
    """The rows `asked` keeps, by a direct count of differing bits."""
    differing = np.bitwise_count(codes[:, :size] ^ asked.code[:, None]).astype(int)
    first = differing[: asked.words].sum(axis=0) <= asked.first_bound
    full = differing.sum(axis=0) <= asked.full_bound
    return np.flatnonzero(first & full).tolist()


def differing_in(size: int, bits: dict[int, list[int]]) -> np.ndarray:
    """Flips for `size` rows: row `i` differs in `bits[i][w]` bits of word `w` (the lowest
    ones), and in no bit where not given."""
    flips = np.zeros((size, 64 * WORDS), dtype=bool)
    for row, per_word in bits.items():
        for word, count in enumerate(per_word):
            flips[row, 64 * word : 64 * word + count] = True
    return flips
