"""When to retry a failed attempt, and how long to wait first.

Retried: 408, 409, 429 and every 5xx status, timeouts and connection errors. Never retried:
any other 4xx (the same request would fail the same way). The wait is the provider's
`Retry-After` when it sends one (seconds, or an HTTP date), otherwise exponential backoff with
full jitter: a uniform draw from `[0, min(max_delay, base_delay * 2**(n-1))]` before retry `n`
(the "full jitter" of the AWS architecture blog, which spreads retrying clients best).
"""

from __future__ import annotations

import email.utils
from typing import TYPE_CHECKING, Literal

import attrs

from ._checks import at_least_one, optional_positive, positive

if TYPE_CHECKING:
    import random
    from collections.abc import Iterable

__all__ = [
    "DEFAULT_RETRY",
    "RETRYABLE_STATUSES",
    "RetryPolicy",
    "parse_retry_after",
]

#: Statuses retried besides every 5xx: timeout, conflict, too many requests.
RETRYABLE_STATUSES: frozenset[int] = frozenset((408, 409, 429))


def _statuses(value: Iterable[int] | None) -> frozenset[int] | None:
    if value is None:
        return None
    statuses = frozenset(value)
    for status in statuses:
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"`statuses` must hold HTTP statuses (100-599), got {status!r}")
    return statuses


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How many times, and for how long, a call retries retryable failures.

    Attributes:
        max_attempts: Attempts in all, the first included (1: never retry).
        base_delay: Upper bound of the first backoff draw, in seconds.
        max_delay: Cap on the backoff bound, in seconds.
        deadline: Total seconds for the call, every attempt and wait included; the call fails
            with `RetryBudgetExceededError` when it passes. `None`: no deadline.
        schedule: `"jitter"` (the default): a full-jitter exponential backoff, a random
            wait up to `base_delay * 2 ** (retry - 1)`. `"linear"`: exactly
            `base_delay * retry` (1 s, 2 s, 3 s... for `base_delay=1`), as some pipelines
            specify. Either is capped by `max_delay`.
        statuses: The HTTP statuses retried (`None`: 408, 409, 429 and every 5xx). Timeouts
            and network errors are retried either way; `frozenset({502, 503})` retries
            only those.
    """

    max_attempts: int = attrs.field(default=4, validator=at_least_one)
    base_delay: float = attrs.field(default=0.5, validator=positive)
    max_delay: float = attrs.field(default=30.0, validator=positive)
    deadline: float | None = attrs.field(default=300.0, validator=optional_positive)
    schedule: Literal["jitter", "linear"] = attrs.field(
        default="jitter", validator=attrs.validators.in_(("jitter", "linear"))
    )
    statuses: frozenset[int] | None = attrs.field(default=None, converter=_statuses)

    def __attrs_post_init__(self) -> None:
        if self.max_delay < self.base_delay:
            raise ValueError(
                f"`max_delay` must be >= `base_delay` ({self.base_delay}), got {self.max_delay}"
            )

    def is_retryable_status(self, status: int) -> bool:
        """Return whether an attempt that got HTTP `status` may be retried."""
        if self.statuses is not None:
            return status in self.statuses
        return status in RETRYABLE_STATUSES or 500 <= status <= 599

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Return the delay before retry number `retry` (1 for the first retry): full
        jitter, or linear (see `schedule`).

        Args:
            retry: Which retry this is, from 1.
            rng: The source of randomness (seed it for reproducible waits).

        Returns:
            Seconds to wait.
        """
        if self.schedule == "linear":
            return min(self.max_delay, self.base_delay * retry)
        bound = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        return rng.uniform(0.0, bound)


#: The policy clients use unless given one.
DEFAULT_RETRY = RetryPolicy()


def parse_retry_after(value: str | None, *, date: str | None, now: float) -> float | None:
    """Return the delay a `Retry-After` header asks for, in seconds, or `None`.

    Args:
        value: The header: delay-seconds (`"2"`, `"1.5"`) or an HTTP date.
        date: The response's `Date` header, the reference for an HTTP date (so the delay
            does not depend on how far the two clocks disagree).
        now: Seconds since the epoch, the reference when `date` is missing or unreadable.

    Returns:
        The delay (never negative), or `None` if `value` is missing or unreadable.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    until = _epoch(value)
    if until is None:
        return None
    reference = _epoch(date) if date is not None else None
    return max(0.0, until - (now if reference is None else reference))


def _epoch(http_date: str) -> float | None:
    try:
        return email.utils.parsedate_to_datetime(http_date).timestamp()
    except (TypeError, ValueError):
        return None
