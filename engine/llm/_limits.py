"""Per-provider limits: requests in flight, requests per minute, tokens per minute.

A provider's limits are its account's, not one run's, so one `Throttle` (inside a `Provider`)
is shared by every client and run that uses the provider. Each budget is a token bucket that
holds a minute's worth and refills continuously; a request takes 1 from the request bucket
and its prompt estimate plus `max_tokens` from the token bucket (what providers themselves
count against the limit), and gets back what it did not use when it ends. Waiting is a
`trio.sleep` (or a `CapacityLimiter` wait), so it is cancellable and follows the run's clock.
A provider outlives runs: a bucket carries its level from one `trio.run` to the next (and to
the one run an asyncio portal hosts), refilled only by the time that really passed between.

A bucket admits up to twice its rate in one minute (a full bucket, then a minute's refill);
`ProviderLimits(strict=True)` uses a sliding-window log instead (`_sliding.py`), which never
admits more than the limit in any sliding minute. Limits shared by several processes are
`SharedLimits` (`_shared_limits.py`), given to the `Provider` beside these.
"""

from __future__ import annotations

import math
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import attrs
import trio

from ._checks import at_least_one, optional_at_least_one
from ._errors import LLMConfigError
from ._sliding import StrictBudget

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

__all__ = ["DEFAULT_LIMITS", "ProviderLimits", "ProviderStatistics", "Throttle"]


@attrs.frozen(kw_only=True)
class ProviderLimits:
    """Limits of one provider account.

    Attributes:
        max_in_flight: Requests sent and not yet finished, at most.
        requests_per_minute: Requests started per minute, at most (`None`: no budget).
        tokens_per_minute: Tokens (prompt estimate plus `max_tokens`) per minute, at most
            (`None`: no budget).
        strict: `False`: each per-minute budget is a token bucket holding a minute's worth,
            so a burst after a quiet minute may reach twice the limit within 60 s. `True`:
            a sliding-window log, never more than the limit in any 60 s (bursts wait).
    """

    max_in_flight: int = attrs.field(default=8, validator=at_least_one)
    requests_per_minute: int | None = attrs.field(default=None, validator=optional_at_least_one)
    tokens_per_minute: int | None = attrs.field(default=None, validator=optional_at_least_one)
    strict: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))


#: Limits of a provider created without any: 8 in flight, no per-minute budgets.
DEFAULT_LIMITS = ProviderLimits()


@attrs.define(eq=False)
class _TokenBucket:
    """Holds up to `capacity`, refilled at `capacity` per minute; callers wait in FIFO order.

    A bucket belongs to a provider, which may outlive the trio run it was first used in (a
    provider made once and used by several `trio.run`s, or by the one run an asyncio portal
    hosts). Within a run it follows the run's clock, virtual ones included; each run's clock
    has its own origin, so when a new run first reads the bucket it keeps its level, credits
    the time `wall` (a clock common to every run) says passed since the last reading, and
    re-bases on the new run's clock. A new run never refills it to full for free.
    """

    capacity: int
    wall: Callable[[], float] = time.monotonic
    _level: float = attrs.field(init=False)
    _updated: float = attrs.field(init=False, default=0.0)
    _wall_updated: float | None = attrs.field(init=False, default=None)
    _run: trio.lowlevel.TrioToken | None = attrs.field(init=False, default=None)
    _lock: trio.Lock = attrs.field(init=False, factory=trio.Lock)

    def __attrs_post_init__(self) -> None:
        self._level = float(self.capacity)

    def level(self) -> float:
        now = trio.current_time()
        wall = self.wall()
        run = trio.lowlevel.current_trio_token()
        if run is self._run:
            elapsed = now - self._updated
        elif self._wall_updated is None:
            elapsed = 0.0  # first reading ever: the bucket starts full
        else:
            elapsed = max(0.0, wall - self._wall_updated)
        self._level = min(float(self.capacity), self._level + elapsed * self.capacity / 60)
        self._updated = now
        self._wall_updated = wall
        self._run = run
        return self._level

    async def take(self, amount: int) -> None:
        async with self._lock:
            missing = amount - self.level()
            if missing > 0:
                # Holding the lock, nobody else takes meanwhile: one sleep refills enough.
                await trio.sleep(missing * 60 / self.capacity)
            self._level = self.level() - amount

    def give_back(self, amount: int) -> None:
        self._level = min(float(self.capacity), self.level() + amount)


@attrs.frozen(kw_only=True)
class ProviderStatistics:
    """A provider's limits at one moment (from `Provider.statistics()`).

    Attributes:
        max_in_flight: The cap on requests in flight.
        in_flight: Requests in flight now.
        waiting_for_slot: Requests waiting for the cap.
        requests_available: Requests the per-minute budget would allow now (`None`: no budget).
        tokens_available: Tokens the per-minute budget would allow now (`None`: no budget).
    """

    max_in_flight: int
    in_flight: int
    waiting_for_slot: int
    requests_available: int | None
    tokens_available: int | None


@attrs.define(eq=False)
class Throttle:
    """The live limits of one provider: a `trio.CapacityLimiter` and two optional buckets.

    Made by `Provider`; shared by everything that uses that provider.

    Args:
        limits: The limits to enforce.
    """

    limits: ProviderLimits
    _slots: trio.CapacityLimiter = attrs.field(init=False)
    _requests: _TokenBucket | StrictBudget | None = attrs.field(init=False)
    _tokens: _TokenBucket | StrictBudget | None = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._slots = trio.CapacityLimiter(self.limits.max_in_flight)
        budget = StrictBudget if self.limits.strict else _TokenBucket
        rpm = self.limits.requests_per_minute
        tpm = self.limits.tokens_per_minute
        self._requests = None if rpm is None else budget(rpm)
        self._tokens = None if tpm is None else budget(tpm)

    @asynccontextmanager
    async def request(self, tokens: int) -> AsyncIterator[None]:
        """Wait for the budgets and a slot, hold the slot for the block, then free it.

        Args:
            tokens: The request's token reservation (prompt estimate plus `max_tokens`).

        Yields:
            Nothing; the request may be sent inside the block.

        Raises:
            LLMConfigError: If `tokens` exceeds the whole per-minute token budget.
        """
        if self._tokens is not None and tokens > self._tokens.capacity:
            raise LLMConfigError(
                f"a request reserving {tokens} tokens (prompt estimate plus `max_tokens`) can "
                f"never fit `tokens_per_minute`={self._tokens.capacity}; lower `max_tokens` or "
                "raise the budget"
            )
        if self._requests is not None:
            await self._requests.take(1)
        if self._tokens is not None:
            await self._tokens.take(tokens)
        async with self._slots:
            yield

    def give_back_tokens(self, tokens: int) -> None:
        """Return reserved tokens a request did not use to the per-minute budget."""
        if self._tokens is not None and tokens > 0:
            self._tokens.give_back(tokens)

    def statistics(self) -> ProviderStatistics:
        """Return the limits' state now (call inside `trio.run`)."""
        slots = self._slots.statistics()
        return ProviderStatistics(
            max_in_flight=self.limits.max_in_flight,
            in_flight=slots.borrowed_tokens,
            waiting_for_slot=slots.tasks_waiting,
            requests_available=_available(self._requests),
            tokens_available=_available(self._tokens),
        )


def _available(bucket: _TokenBucket | StrictBudget | None) -> int | None:
    return None if bucket is None else math.floor(bucket.level())
