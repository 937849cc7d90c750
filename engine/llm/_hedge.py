"""Hedged LLM calls: once a call is slower than usual, send a copy; keep whichever answers first.

This is the "hedged request" of Dean and Barroso, *The Tail at Scale* (CACM 56(2), 2013):
a completion is idempotent, so a second identical request costs only tokens, and the first
complete answer is as good as the other. A call hedged with `Hedge(after=0.97,
max_extra=0.05)` runs like this:

1. The request (the *primary*) starts. Its provider and model have a `LatencyWindow` of
   recent latencies in the client's `HedgeState`; the hedge threshold is its `after`
   quantile, or `Hedge.initial_delay` while it holds fewer than `Hedge.min_samples`.
2. If the primary is still running `threshold` seconds after the call started, and the
   budget and the provider allow it, a *backup* (the hedge) starts: the same request, to
   the same provider and model, or to the next target of a `Failover` (`Hedge.to_next`).
3. The first complete answer wins. The other request is cancelled: its stream is closed (the
   provider stops generating), it is billed for what arrived, and its record is `cancelled`
   with the role it played (`CallRecord.hedge`): that is the hedge's waste.
4. A request that fails (after its retries) does not end the call while the other is still
   running: the call fails only when both have.

The budget: every hedged call adds `max_extra` to a credit shared by every call and run that
uses the same `HedgeState` (by default one per process, `process_hedge_state()`), up to
`Hedge.burst`; a hedge takes 1. So hedges never exceed `max_extra` times the calls made, plus
nothing: the credit starts at 0. Hedges take a provider slot like any request (they wait in
the same `ProviderLimits`), and a hedge is not sent at all while the provider's cap is full
or requests wait for it: a hedge must not delay another call's first request.

Calls made inside an effect step are never hedged: the engine runs effects inside
`no_hedging()`. (A completion is idempotent; the step around it may not be.)
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import TYPE_CHECKING

import attrs

from ._checks import at_least_one, optional_positive, positive
from ._latency import DEFAULT_LATENCY_WINDOW, LatencyWindow

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "DEFAULT_HEDGE_MIN_SAMPLES",
    "Hedge",
    "HedgeState",
    "HedgeStatistics",
    "block_hedge",
    "hedging",
    "hedging_allowed",
    "no_hedging",
    "process_hedge_state",
]

#: Latencies a provider and model need before their quantile sets the hedge threshold.
DEFAULT_HEDGE_MIN_SAMPLES = 50

_UNIT = 1_000_000
_DEFAULT: contextvars.ContextVar[Hedge | None] = contextvars.ContextVar(
    "specroute_llm_block_hedge", default=None
)
_ALLOWED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "specroute_llm_hedging_allowed", default=True
)


def _quantile(_: object, attribute: attrs.Attribute[float], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ValueError(f"`{attribute.name}` must be a quantile in (0, 1), got {value!r}")


def _bool(_: object, attribute: attrs.Attribute[bool], value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"`{attribute.name}` must be True or False, got {value!r}")


def _fraction(_: object, attribute: attrs.Attribute[float], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"`{attribute.name}` must be a fraction in (0, 1], got {value!r}")


@attrs.frozen(kw_only=True)
class Hedge:
    """When to hedge a call, and how many hedges to allow.

    Attributes:
        after: Hedge once the call has run longer than this quantile of recent latencies
            of its provider and model (0.97: slower than 97% of them).
        max_extra: Hedges allowed per call, on average: 0.05 caps the extra requests at 5%.
        min_samples: Latencies needed before their quantile is trusted.
        initial_delay: The threshold, in seconds, while fewer than `min_samples` latencies
            are known (`None`, the default: no hedge until then).
        burst: The most unused budget that can pile up, in hedges: how many slow calls in a
            row can all be hedged after a quiet spell.
        to_next: Send the hedge to the next target of a `Failover` instead of the same
            provider and model (ignored outside a failover, or on its last target).
        window: Latencies kept per provider and model (in the `HedgeState`).

    Raises:
        ValueError: A field is out of range.
    """

    after: float = attrs.field(default=0.97, validator=_quantile)
    max_extra: float = attrs.field(default=0.05, validator=_fraction)
    min_samples: int = attrs.field(default=DEFAULT_HEDGE_MIN_SAMPLES, validator=at_least_one)
    initial_delay: float | None = attrs.field(default=None, validator=optional_positive)
    burst: float = attrs.field(default=10.0, validator=positive)
    to_next: bool = attrs.field(default=False, validator=_bool)
    window: int = attrs.field(default=DEFAULT_LATENCY_WINDOW, validator=at_least_one)


@attrs.frozen(kw_only=True)
class HedgeStatistics:
    """A `HedgeState`'s counters at one moment.

    Attributes:
        calls: Calls that could have been hedged (hedging on, outside effects).
        hedges_started: Backups sent.
        hedges_won: Backups that answered first.
        over_budget: Hedges not sent because the budget was spent.
        provider_busy: Hedges not sent because the provider's cap was full.
        credit: Hedges the budget allows right now.
    """

    calls: int
    hedges_started: int
    hedges_won: int
    over_budget: int
    provider_busy: int
    credit: float


@attrs.define(eq=False)
class HedgeState:
    """What hedging learns and spends: latencies per provider and model, and the budget.

    Share one across everything that should share a budget; by default every client uses
    `process_hedge_state()`. Reading and updating it never awaits, so concurrent calls see
    a consistent budget.
    """

    _windows: dict[tuple[str, str], LatencyWindow] = attrs.field(init=False, factory=dict)
    # In millionths of a hedge: whole numbers add up exactly (0.1 * 100 floats do not).
    _credit: int = attrs.field(init=False, default=0)
    _calls: int = attrs.field(init=False, default=0)
    _started: int = attrs.field(init=False, default=0)
    _won: int = attrs.field(init=False, default=0)
    _over_budget: int = attrs.field(init=False, default=0)
    _busy: int = attrs.field(init=False, default=0)

    def latencies(
        self, provider: str, model: str, *, size: int = DEFAULT_LATENCY_WINDOW
    ) -> LatencyWindow:
        """Return the latency window of `provider` and `model`, made empty on first use.

        Args:
            provider: The provider's name.
            model: The model's name.
            size: The window's size if it has to be made.

        Returns:
            The window, which calls update in place.
        """
        window = self._windows.get((provider, model))
        if window is None:
            window = self._windows[provider, model] = LatencyWindow(size)
        return window

    def threshold(self, provider: str, model: str, hedge: Hedge) -> float | None:
        """Return after how many seconds a call to `provider` and `model` is hedged.

        Returns:
            The `hedge.after` quantile of its latencies, `hedge.initial_delay` while fewer
            than `hedge.min_samples` are known, or `None`: do not hedge.
        """
        window = self.latencies(provider, model, size=hedge.window)
        if len(window) < hedge.min_samples:
            return hedge.initial_delay
        return window.quantile(hedge.after)

    def statistics(self) -> HedgeStatistics:
        """Return the counters now."""
        return HedgeStatistics(
            calls=self._calls,
            hedges_started=self._started,
            hedges_won=self._won,
            over_budget=self._over_budget,
            provider_busy=self._busy,
            credit=self._credit / _UNIT,
        )

    def reset(self) -> None:
        """Forget every latency, spend the budget, and zero the counters."""
        self._windows.clear()
        self._credit = 0
        self._calls = self._started = self._won = self._over_budget = self._busy = 0

    def _earn(self, hedge: Hedge) -> None:
        self._calls += 1
        earned = self._credit + round(hedge.max_extra * _UNIT)
        self._credit = min(round(hedge.burst * _UNIT), earned)

    def _spend(self) -> bool:
        # Check and take with no await between: concurrent calls cannot overdraw.
        if self._credit < _UNIT:
            self._over_budget += 1
            return False
        self._credit -= _UNIT
        self._started += 1
        return True


_PROCESS_STATE = HedgeState()


def process_hedge_state() -> HedgeState:
    """Return the `HedgeState` clients use when given none: one per process."""
    return _PROCESS_STATE


@contextlib.contextmanager
def no_hedging() -> Iterator[None]:
    """Hedge no call made inside the block, nor in the tasks started from it.

    The engine runs effect steps inside it: their calls run once, as written.
    """
    token = _ALLOWED.set(False)
    try:
        yield
    finally:
        _ALLOWED.reset(token)


@contextlib.contextmanager
def hedging(hedge: Hedge) -> Iterator[Hedge]:
    """Hedge, as `hedge` says, every call made inside the block (and in tasks started from
    it) that names no `hedge=` of its own; a step uses it to hedge its calls::

        @step
        async def draft(topic: str) -> str:
            with hedging(Hedge(after=0.95)):
                return (await llm.complete(topic, model="gpt-4o")).text

    It outranks the client's and the provider's `hedge`; `no_hedging()` outranks it.

    Args:
        hedge: How to hedge.

    Yields:
        `hedge`.

    Raises:
        TypeError: `hedge` is not a `Hedge`.
    """
    if not isinstance(hedge, Hedge):
        raise TypeError(f"`hedge` must be a Hedge, got {hedge!r}")
    token = _DEFAULT.set(hedge)
    try:
        yield hedge
    finally:
        _DEFAULT.reset(token)


def block_hedge() -> Hedge | None:
    """Return the `Hedge` the innermost `hedging()` block set (`None`: none)."""
    return _DEFAULT.get()


def hedging_allowed() -> bool:
    """Return whether calls made here may be hedged (false inside `no_hedging()`)."""
    return _ALLOWED.get()
