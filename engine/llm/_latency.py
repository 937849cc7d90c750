"""Recent latencies of one provider and model, and their quantiles: when to send a hedge.

A `LatencyWindow` keeps the last `size` latencies twice: in arrival order (a deque, to know
which one to forget) and sorted (a list kept with `bisect`, to read any quantile at once).
Adding a sample is one `insort` and, once full, one removal: O(size) memory moves, a few
microseconds for the default 1,000 samples, and no `await`.

The quantile is the sample of rank `ceil(q * n)` (the "inverse of the empirical distribution
function", Hyndman and Fan's definition 1): never an interpolation, so `quantile(0.97)` is a
latency that really happened, and at least 97% of the window took no longer.

A call a hedge beat was cancelled before its latency was known. Its elapsed time is a lower
bound, and the client adds it only when that bound is already above the hedge threshold
(a censored sample): it then counts as "slower than the threshold", which is all a quantile
above the threshold's rank needs. Leaving such calls out instead would make every tail
vanish from the window once hedging works, and the threshold would sink.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

import attrs

from ._checks import at_least_one

__all__ = ["DEFAULT_LATENCY_WINDOW", "LatencyWindow"]

#: How many recent latencies a window keeps per provider and model.
DEFAULT_LATENCY_WINDOW = 1000


@attrs.define(eq=False)
class LatencyWindow:
    """The last `size` latencies of one provider and model, with exact quantiles.

    Args:
        size: How many recent samples to keep.
    """

    size: int = attrs.field(default=DEFAULT_LATENCY_WINDOW, validator=at_least_one)
    _arrived: deque[float] = attrs.field(init=False, factory=deque)
    _sorted: list[float] = attrs.field(init=False, factory=list)

    def __len__(self) -> int:
        return len(self._sorted)

    def add(self, seconds: float) -> None:
        """Add one latency, forgetting the oldest once the window is full.

        Args:
            seconds: The latency (a non-negative, finite number).

        Raises:
            ValueError: `seconds` is negative, infinite or nan.
        """
        if not 0 <= seconds < math.inf:
            raise ValueError(f"`seconds` must be a finite number >= 0, got {seconds!r}")
        if len(self._arrived) == self.size:
            oldest = self._arrived.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, oldest)]
        self._arrived.append(seconds)
        bisect.insort(self._sorted, seconds)

    def quantile(self, q: float) -> float | None:
        """Return the `q` quantile of the window (`None` while it is empty).

        Args:
            q: The quantile, in (0, 1].

        Returns:
            The smallest sample with at least `q` of the window at or below it.

        Raises:
            ValueError: `q` is not in (0, 1].
        """
        if not 0 < q <= 1:
            raise ValueError(f"`q` must be in (0, 1], got {q!r}")
        samples = self._sorted
        if not samples:
            return None
        return samples[max(0, math.ceil(q * len(samples)) - 1)]

    def mean_above(self, seconds: float) -> float | None:
        """Return the mean of the samples above `seconds` (`None` if there is none).

        It estimates how long a call still running after `seconds` would have taken: the
        latency a hedge that won at `seconds` saved is this minus `seconds`.
        """
        samples = self._sorted
        start = bisect.bisect_right(samples, seconds)
        if start == len(samples):
            return None
        above = samples[start:]
        return sum(above) / len(above)
