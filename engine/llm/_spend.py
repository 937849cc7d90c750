"""Spend caps: a hard limit on the tokens and dollars of a run, or of a tenant per window.

A cap is a `SpendLedger` made active around the code it caps, like a meter with
`record_usage`: `with spend_caps(ledger):` covers every LLM call made inside the block and
in the tasks started from it. Before a call is sent, each active ledger *reserves* what the
call may cost at most (its prompt estimate plus `max_tokens`, priced by the client's price
table); if that would pass a cap, the call is not sent and `SpendCapExceededError` names
the cap. When the call ends (completed, failed or cancelled), the reservation is replaced
by what the call really used, so nothing spent is lost from the accounting and what was
reserved but not used comes back.

A ledger is local (`SpendLedger`: one run, or one tenant in this process) or shared by
every worker through Redis (`SharedSpendLedger`: one tenant over all workers). A cap with a
`window` counts only what was spent in the last `window` seconds (a sliding log, as
`_sliding.py`); without one it counts everything the ledger has seen. An unpriced model's
calls count their tokens and no dollars.
"""

from __future__ import annotations

import contextlib
import contextvars
import secrets
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import trio
from specroute.cache import RedisUnavailableError

from ._checks import optional_at_least_one
from ._errors import LLMConfigError, SpendCapExceededError
from ._sliding import SlidingWindowLog
from ._usage import Usage

if TYPE_CHECKING:
    from collections.abc import Iterator

    from coredis.commands import Script
    from specroute.cache import RedisConnection

    from ._prices import PriceTable

__all__ = [
    "Reservations",
    "SharedSpendLedger",
    "SpendCap",
    "SpendLedger",
    "Spending",
    "active_ledgers",
    "reserve_spend",
    "spend_caps",
]

# Dollars are counted in nano-dollars, so the logs add integers (a cheap call costs a few
# micro-dollars, which whole micro-dollars would round away).
_MICRO = 1_000_000_000


def _optional_positive(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise LLMConfigError(f"`{attribute.name}` must be None or a number > 0, got {value!r}")


def _name(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise LLMConfigError(
            f"`{attribute.name}` must be a non-empty str that the error will name (such as"
            f" 'tenant acme per hour'), got {value!r}"
        )


@attrs.frozen(kw_only=True)
class SpendCap:
    """A hard limit on tokens and dollars.

    Attributes:
        name: What the error calls this cap ("run", "tenant acme per hour").
        tokens: Most tokens (prompt plus output) spent (`None`: no token cap).
        dollars: Most dollars spent (`None`: no dollar cap).
        window: Seconds the cap looks back (`None`: everything the ledger has seen).

    Raises:
        LLMConfigError: A setting is out of range, or neither cap is set.
    """

    name: str = attrs.field(validator=_name)
    tokens: int | None = attrs.field(default=None, validator=optional_at_least_one)
    dollars: float | None = attrs.field(default=None, validator=_optional_positive)
    window: float | None = attrs.field(default=None, validator=_optional_positive)

    def __attrs_post_init__(self) -> None:
        if self.tokens is None and self.dollars is None:
            raise LLMConfigError(f"spend cap {self.name!r} sets neither `tokens` nor `dollars`")


@attrs.frozen(kw_only=True)
class Spending:
    """What a ledger has counted (reservations of calls in flight included).

    Attributes:
        tokens: Tokens counted.
        dollars: Dollars counted.
        refused: Calls refused because they would have passed the cap.
    """

    tokens: int
    dollars: float
    refused: int


class Ledger(Protocol):
    """What the client calls on an active ledger."""

    cap: SpendCap

    async def reserve(self, tokens: int, dollars: float) -> object:
        """Count a call's most; raise `SpendCapExceededError` if it would pass the cap."""

    async def settle(self, reservation: object, tokens: int, dollars: float) -> None:
        """Replace a reservation by what the call really spent."""


def _refusal(cap: SpendCap, tokens: int, dollars: float, spent: Spending) -> str:
    window = "" if cap.window is None else f" in any {cap.window:g} s"
    limits = []
    if cap.tokens is not None:
        limits.append(f"{cap.tokens} tokens")
    if cap.dollars is not None:
        limits.append(f"${cap.dollars:g}")
    return (
        f"spend cap {cap.name!r} ({' and '.join(limits)}{window}) would be passed: already"
        f" {spent.tokens} tokens and ${spent.dollars:.6f}, and this call may take {tokens}"
        f" tokens and ${dollars:.6f}; the call was not sent. Raise the cap or lower"
        " `max_tokens`"
    )


@attrs.define(eq=False)
class _Reservation:
    tokens: int
    micro: int


@attrs.define(eq=False)
class SpendLedger:
    """A cap's count in this process: for one run, or one tenant's window.

    Args:
        cap: The cap.
    """

    cap: SpendCap
    _tokens: SlidingWindowLog = attrs.field(init=False)
    _micro: SlidingWindowLog = attrs.field(init=False)
    _refused: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        window = float("inf") if self.cap.window is None else self.cap.window
        self._tokens = SlidingWindowLog(self.cap.tokens or 0, window)
        self._micro = SlidingWindowLog(round((self.cap.dollars or 0) * _MICRO), window)

    async def reserve(self, tokens: int, dollars: float) -> _Reservation:
        """Count a call's most, or refuse it.

        Args:
            tokens: The call's most tokens.
            dollars: The call's most dollars.

        Returns:
            The reservation, for `settle`.

        Raises:
            SpendCapExceededError: The call would pass the cap.
        """
        now = trio.current_time()
        micro = round(dollars * _MICRO)
        over_tokens = self.cap.tokens is not None and self._tokens.wait(now, tokens) > 0
        over_dollars = self.cap.dollars is not None and self._micro.wait(now, micro) > 0
        if over_tokens or over_dollars:
            self._refused += 1
            raise SpendCapExceededError(
                _refusal(self.cap, tokens, dollars, self.spending()), cap=self.cap.name
            )
        self._tokens.admit(now, tokens)
        self._micro.admit(now, micro)
        return _Reservation(tokens, micro)

    async def settle(self, reservation: object, tokens: int, dollars: float) -> None:
        """Replace a reservation by what the call spent (never more than it reserved)."""
        assert isinstance(reservation, _Reservation)
        self._tokens.refund(max(0, reservation.tokens - tokens))
        self._micro.refund(max(0, reservation.micro - round(dollars * _MICRO)))

    def spending(self) -> Spending:
        """Return what this ledger counts now.

        Returns:
            The count at this moment.
        """
        now = trio.current_time()
        return Spending(
            tokens=self._tokens.used(now),
            dollars=self._micro.used(now) / _MICRO,
            refused=self._refused,
        )


_RESERVE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local window = tonumber(ARGV[4])
local function total(key)
  if window > 0 then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  end
  local sum = 0
  local log = redis.call('ZRANGE', key, 0, -1)
  for i = 1, #log do
    sum = sum + tonumber(string.match(log[i], ':(%d+)$'))
  end
  return sum
end
local tokens = total(KEYS[1])
local micro = total(KEYS[2])
local tcap = tonumber(ARGV[5])
local dcap = tonumber(ARGV[6])
if (tcap > 0 and tokens + tonumber(ARGV[2]) > tcap) or
   (dcap > 0 and micro + tonumber(ARGV[3]) > dcap) then
  return {0, tokens, micro}
end
redis.call('ZADD', KEYS[1], now, ARGV[1] .. ':' .. ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1] .. ':' .. ARGV[3])
if window > 0 then
  redis.call('PEXPIRE', KEYS[1], window)
  redis.call('PEXPIRE', KEYS[2], window)
end
return {1, tokens, micro}
"""
# Keep the admission time; replace the amount by what was spent.
_SETTLE = """
for i = 1, 2 do
  local score = redis.call('ZSCORE', KEYS[i], ARGV[1] .. ':' .. ARGV[1 + i])
  if score then
    redis.call('ZREM', KEYS[i], ARGV[1] .. ':' .. ARGV[1 + i])
    redis.call('ZADD', KEYS[i], score, ARGV[1] .. ':' .. ARGV[3 + i])
  end
end
return 1
"""


@attrs.define(eq=False)
class _SharedReservation:
    id: str
    tokens: int
    micro: int
    local: _Reservation | None


@attrs.define(eq=False)
class SharedSpendLedger:
    """A cap counted in Redis, shared by every worker that names the same `key`.

    While Redis does not answer, the cap is enforced on this worker's own count (a local
    `SpendLedger` with the same cap), and the calls it admits are not in Redis's count.

    Args:
        redis: The connection.
        cap: The cap.
        key: The ledger's name in Redis (a tenant: `"acme"`).
        prefix: Prefix of the Redis names.
    """

    _redis: RedisConnection = attrs.field(alias="redis")
    cap: SpendCap
    key: str
    prefix: str = "specroute"
    _reserve: Script[bytes] = attrs.field(init=False)
    _settle: Script[bytes] = attrs.field(init=False)
    _local: SpendLedger = attrs.field(init=False)
    _refused: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._reserve = self._redis.script(_RESERVE)
        self._settle = self._redis.script(_SETTLE)
        self._local = SpendLedger(self.cap)

    async def reserve(self, tokens: int, dollars: float) -> _SharedReservation:
        """Count a call's most in Redis, or refuse it (see `SpendLedger.reserve`).

        Raises:
            SpendCapExceededError: The call would pass the cap.
        """
        micro = round(dollars * _MICRO)
        reservation = _SharedReservation(secrets.token_hex(8), tokens, micro, None)
        window = 0 if self.cap.window is None else max(1, round(self.cap.window * 1000))
        args: list[Any] = [reservation.id, tokens, reservation.micro, window]
        args += [self.cap.tokens or 0, round((self.cap.dollars or 0) * _MICRO)]
        try:
            admitted, spent_tokens, spent_micro = await self._redis.evaluate(
                self._reserve, self._names(), args
            )
        except RedisUnavailableError:
            reservation.local = await self._local.reserve(tokens, dollars)
            return reservation
        if admitted != 1:
            self._refused += 1
            spent = Spending(
                tokens=spent_tokens, dollars=spent_micro / _MICRO, refused=self._refused
            )
            message = _refusal(self.cap, tokens, dollars, spent)
            raise SpendCapExceededError(message, cap=self.cap.name)
        return reservation

    async def settle(self, reservation: object, tokens: int, dollars: float) -> None:
        """Replace a reservation by what the call spent, in Redis (or locally)."""
        assert isinstance(reservation, _SharedReservation)
        if reservation.local is not None:
            await self._local.settle(reservation.local, tokens, dollars)
            return
        spent = [min(tokens, reservation.tokens), min(round(dollars * _MICRO), reservation.micro)]
        args: list[Any] = [reservation.id, reservation.tokens, reservation.micro, *spent]
        with trio.CancelScope(shield=True), contextlib.suppress(RedisUnavailableError):
            # Shielded: a cancelled call's spend must still be settled; an outage leaves the
            # reservation counted in full, which errs on the side of the cap.
            await self._redis.evaluate(self._settle, self._names(), args)

    def _names(self) -> list[str]:
        base = f"{{{self.prefix}:spend:{self.key}:{self.cap.name}}}"
        return [f"{base}:tokens", f"{base}:dollars"]


_ACTIVE: contextvars.ContextVar[tuple[Ledger, ...]] = contextvars.ContextVar(
    "specroute_spend_ledgers", default=()
)


@contextlib.contextmanager
def spend_caps(*ledgers: Ledger) -> Iterator[tuple[Ledger, ...]]:
    """Cap every LLM call made inside the block (and in tasks started from it).

    Blocks nest: a call must fit every active ledger. Wrap a run in a fresh
    `SpendLedger(SpendCap(name="run", dollars=0.50))` to cap that run, and in a tenant's
    long-lived ledger to cap the tenant too.

    Args:
        *ledgers: The ledgers to make active.

    Yields:
        `ledgers`.
    """
    token = _ACTIVE.set((*_ACTIVE.get(), *ledgers))
    try:
        yield ledgers
    finally:
        _ACTIVE.reset(token)


def active_ledgers() -> tuple[Ledger, ...]:
    """Return the ledgers `spend_caps` made active in the current context."""
    return _ACTIVE.get()


@attrs.define(eq=False)
class Reservations:
    """One call's reservations on every active ledger, settled when the call ends."""

    held: list[tuple[Ledger, object]] = attrs.Factory(list)

    async def settle(self, tokens: int, dollars: float) -> None:
        """Replace each reservation by what the call spent."""
        for ledger, reservation in self.held:
            await ledger.settle(reservation, tokens, dollars)


async def reserve_spend(
    prices: PriceTable, model: str, prompt_tokens: int, max_tokens: int
) -> Reservations:
    """Reserve a call's most on every active ledger, or refuse it on the first that is full.

    Raises:
        SpendCapExceededError: A ledger's cap would be passed; nothing stays reserved.
    """
    reservations = Reservations()
    ledgers = active_ledgers()
    if not ledgers:
        return reservations
    most = Usage(input_tokens=prompt_tokens, output_tokens=max_tokens)
    dollars = prices.cost(model, most) or 0.0
    try:
        for ledger in ledgers:
            reservations.held.append((ledger, await ledger.reserve(most.total_tokens, dollars)))
    except BaseException:
        # Nothing was sent: give back what the ledgers before the refusing one reserved.
        with trio.CancelScope(shield=True):
            await reservations.settle(0, 0.0)
        raise
    return reservations
