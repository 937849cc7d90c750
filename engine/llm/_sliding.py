"""A sliding-window log: at most `capacity` units admitted in any `window` seconds.

A token bucket that holds a minute's worth and refills it every minute admits up to twice
its rate in one minute (a full bucket spent at once, then a minute's refill); a log of
admissions does not. Each admission is kept with its time until it is `window` seconds old,
and a new one is admitted only if the units still in the log plus its own fit the capacity;
otherwise it waits until enough of the oldest have left. So in every half-open interval of
`window` seconds, at most `capacity` units are admitted (the "sliding window log" of
rate-limiting literature; GCRA gives the same bound with one number per key, but cannot
weigh each admission by its tokens and refund what a request did not use).

`SlidingWindowLog` is the pure arithmetic; `StrictBudget` waits on it under trio, and is
what `ProviderLimits(strict=True)` and the shared limits' outage fallback use.
"""

from __future__ import annotations

import collections
import math
import time
from typing import TYPE_CHECKING

import attrs
import trio

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["SlidingWindowLog", "StrictBudget"]


@attrs.define(eq=False)
class _Admission:
    at: float
    amount: int


@attrs.define(eq=False)
class SlidingWindowLog:
    """The admissions of the last `window` seconds, oldest first.

    Args:
        capacity: Units allowed in any `window` seconds.
        window: The window's length in seconds.
    """

    capacity: int
    window: float
    _log: collections.deque[_Admission] = attrs.field(init=False, factory=collections.deque)
    _total: int = attrs.field(init=False, default=0)

    def used(self, now: float) -> int:
        """Units admitted in the window that ends at `now`."""
        while self._log and self._log[0].at <= now - self.window:
            self._total -= self._log.popleft().amount
        return self._total

    def wait(self, now: float, amount: int) -> float:
        """Seconds from `now` until `amount` more units fit (0: they fit now)."""
        over = self.used(now) + amount - self.capacity
        if over <= 0:
            return 0.0
        for admission in self._log:
            over -= admission.amount
            if over <= 0:
                wait = admission.at + self.window - now
                # Rounding: `now + wait` must really be past the admission's window, as
                # `used` judges it, or a caller that waits exactly this long waits again.
                while (now + wait) - self.window < admission.at:
                    wait = math.nextafter(wait, math.inf)
                return wait
        return self.window  # more than the capacity: never fits (callers refuse it earlier)

    def admit(self, now: float, amount: int) -> None:
        """Record `amount` units admitted at `now` (call when `wait` said 0)."""
        self._log.append(_Admission(now, amount))
        self._total += amount

    def refund(self, amount: int) -> None:
        """Take back units the newest admissions did not use (never below zero)."""
        for admission in reversed(self._log):
            taken = min(amount, admission.amount)
            admission.amount -= taken
            self._total -= taken
            amount -= taken
            if amount == 0:
                return

    def shift(self, seconds: float) -> None:
        """Move every admission by `seconds` (a new clock origin)."""
        for admission in self._log:
            admission.at += seconds


@attrs.define(eq=False)
class StrictBudget:
    """A `SlidingWindowLog` that callers wait on, in FIFO order, under trio's clock.

    Like the token bucket it replaces, it may outlive one `trio.run`: a new run's clock has
    its own origin, so the log is moved onto it, aged by the time `wall` says passed.

    Args:
        capacity: Units allowed in any `window` seconds.
        window: The window in seconds.
        wall: A clock common to every run.
    """

    capacity: int
    window: float = 60.0
    wall: Callable[[], float] = time.monotonic
    _log: SlidingWindowLog = attrs.field(init=False)
    _lock: trio.Lock = attrs.field(init=False, factory=trio.Lock)
    _run: trio.lowlevel.TrioToken | None = attrs.field(init=False, default=None)
    _read_at: float = attrs.field(init=False, default=0.0)
    _wall_read_at: float = attrs.field(init=False, default=0.0)

    def __attrs_post_init__(self) -> None:
        self._log = SlidingWindowLog(self.capacity, self.window)

    def now(self) -> float:
        """The run's time, with the log moved onto this run's clock if the run is new."""
        now = trio.current_time()
        wall = self.wall()
        run = trio.lowlevel.current_trio_token()
        if self._run is not None and run is not self._run:
            passed = max(0.0, wall - self._wall_read_at)
            self._log.shift(now - self._read_at - passed)
        self._run = run
        self._read_at = now
        self._wall_read_at = wall
        return now

    def level(self) -> float:
        """Units that would be admitted now."""
        return float(self.capacity - self._log.used(self.now()))

    async def take(self, amount: int) -> None:
        """Wait until `amount` fits in the window, then admit it."""
        async with self._lock:
            # Holding the lock, one sleep is enough but for float rounding of the deadline,
            # which the loop absorbs (nothing else sets anything to wait on).
            while (wait := self._log.wait(self.now(), amount)) > 0:  # noqa: ASYNC110
                await trio.sleep(wait)
            self._log.admit(self.now(), amount)

    def give_back(self, amount: int) -> None:
        """Return units a request did not use."""
        self._log.refund(amount)
