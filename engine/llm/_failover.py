"""Failover: an ordered list of providers and models; when one fails, the call goes to the next.

A `Failover` holds targets (a client and a model each), first choice first. A call goes to
the first target whose circuit is closed; if it fails after that client's own retries
(any `LLMError`: a `RetryBudgetExceededError`, a refused request...), it goes to the next,
and so on. It raises `FailoverExhaustedError` only when every target has failed or is
switched off.

Each target has a circuit breaker (the pattern of Nygard, *Release It!*, 2007): once
`Breaker.failure_rate` of its last `Breaker.window` calls (at least `Breaker.min_calls`)
failed, it *opens* and calls skip the target for `Breaker.cooldown` seconds; then one call
at a time may try it (*half-open*): a success closes the circuit, a failure opens it again.
A call that was cancelled counts for nothing.

With hedging (`Hedge`), a hedge goes to the same target, or, with `Hedge.to_next`, to the
next one whose circuit is closed. Every request is recorded with its target's position
(`CallRecord.failover`), and the answer says which target gave it (`Completion.provider`,
`.model` and `.failover`).

Circuits read `trio.current_time()`: keep a `Failover` within one `trio.run`.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Literal

import attrs
import trio

from ._checks import at_least_one, positive
from ._client import DEFAULT_MAX_TOKENS, Completion, LLMClient
from ._errors import LLMError
from ._messages import as_messages
from ._race import CallArgs, Leg, run_call
from ._usage import estimate_prompt_tokens

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._hedge import Hedge
    from ._messages import MessageLike
    from ._meter import UsageMeter

__all__ = [
    "DEFAULT_BREAKER",
    "Breaker",
    "Failover",
    "FailoverExhaustedError",
    "FailoverStatistics",
    "Target",
    "TargetStatistics",
]


def _rate(_: object, attribute: attrs.Attribute[float], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"`{attribute.name}` must be a rate in (0, 1], got {value!r}")


@attrs.frozen(kw_only=True)
class Breaker:
    """When a target's circuit opens, and for how long.

    Attributes:
        failure_rate: Open once this share of the recent calls failed.
        window: How many recent calls count.
        min_calls: Calls needed in the window before it can open.
        cooldown: Seconds the circuit stays open before a call may try the target again.

    Raises:
        ValueError: A field is out of range, or `min_calls` exceeds `window`.
    """

    failure_rate: float = attrs.field(default=0.5, validator=_rate)
    window: int = attrs.field(default=20, validator=at_least_one)
    min_calls: int = attrs.field(default=5, validator=at_least_one)
    cooldown: float = attrs.field(default=30.0, validator=positive)

    def __attrs_post_init__(self) -> None:
        if self.min_calls > self.window:
            raise ValueError(
                f"`min_calls` must be <= `window` ({self.window}), got {self.min_calls}"
            )


#: A circuit opens when half of a target's last 20 calls (at least 5) failed, for 30 s.
DEFAULT_BREAKER = Breaker()


def _model(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"`{attribute.name}` must be a non-empty model name, got {value!r}")


@attrs.frozen(kw_only=True)
class Target:
    """One place a call can go: a client (its provider) and a model.

    Attributes:
        client: The client, with its provider, retries and limits.
        model: The model name, as that provider spells it.
    """

    client: LLMClient
    model: str = attrs.field(validator=_model)


class FailoverExhaustedError(LLMError):
    """Every target of a `Failover` failed, or had its circuit open.

    Differs from `RetryBudgetExceededError`, which one client raises when its own retries
    run out: this one is raised after each target had its turn. `__cause__` is the last
    target's error (`None` if every circuit was open).

    Attributes:
        failures: One line per target: what happened to it on this call.
    """

    def __init__(self, message: str, *, failures: tuple[str, ...]) -> None:
        super().__init__(message)
        self.failures = failures


@attrs.frozen(kw_only=True)
class TargetStatistics:
    """One target's circuit and record at one moment.

    Attributes:
        provider: The provider's name.
        model: The model.
        circuit: `"closed"`, `"open"` or `"half-open"`.
        answered: Calls this target answered.
        failed: Calls that failed on this target.
        recent_failure_rate: The failure share of the breaker's window (0 if empty).
    """

    provider: str
    model: str
    circuit: Literal["closed", "open", "half-open"]
    answered: int
    failed: int
    recent_failure_rate: float


@attrs.frozen(kw_only=True)
class FailoverStatistics:
    """A `Failover`'s targets, in order (from `Failover.statistics()`).

    Attributes:
        targets: One snapshot per target.
    """

    targets: tuple[TargetStatistics, ...]


@attrs.define(eq=False)
class _Circuit:
    breaker: Breaker
    outcomes: deque[bool] = attrs.field(init=False)
    open_until: float = -math.inf
    tripped: bool = False
    answered: int = 0
    failed: int = 0

    def __attrs_post_init__(self) -> None:
        self.outcomes = deque(maxlen=self.breaker.window)

    def allows(self, now: float) -> bool:
        return now >= self.open_until

    def record(self, ok: bool, now: float) -> None:
        if ok:
            self.answered += 1
        else:
            self.failed += 1
        if self.tripped:
            # Half-open: this call was the probe.
            if ok:
                self.tripped = False
                self.outcomes.clear()
            else:
                self.open_until = now + self.breaker.cooldown
            return
        self.outcomes.append(ok)
        failures = self.outcomes.count(False)
        breaker = self.breaker
        if len(self.outcomes) >= breaker.min_calls and failures >= breaker.failure_rate * len(
            self.outcomes
        ):
            self.tripped = True
            self.open_until = now + breaker.cooldown

    def state(self, now: float) -> Literal["closed", "open", "half-open"]:
        if not self.tripped:
            return "closed"
        return "half-open" if self.allows(now) else "open"


def _targets(value: Sequence[Target]) -> tuple[Target, ...]:
    return tuple(value)


def _non_empty(
    _: object, attribute: attrs.Attribute[tuple[Target, ...]], value: tuple[Target, ...]
) -> None:
    if not value:
        raise ValueError(f"`{attribute.name}` must name at least one Target, got none")
    for target in value:
        if not isinstance(target, Target):
            raise TypeError(
                f"`{attribute.name}` must hold `Target(client=..., model=...)`s, got {target!r}"
            )


@attrs.define(eq=False, kw_only=True)
class Failover:
    """Calls that go to the first working target of an ordered list.

    Make one per list of targets, once, and share it: its circuits learn from every call::

        chat = Failover(targets=[
            Target(client=gpt, model="gpt-4o"),
            Target(client=claude, model="claude-sonnet-4-5"),
        ])
        answer = await chat.complete("Hello")
        answer.provider  # which one answered

    Args:
        targets: Where calls go, first choice first.
        breaker: When a target's circuit opens.
        hedge: Hedge the calls (`None`: as each target's client, else provider, says).

    Raises:
        ValueError: `targets` is empty.
        TypeError: `targets` holds something that is not a `Target`.
    """

    targets: tuple[Target, ...] = attrs.field(converter=_targets, validator=_non_empty)
    breaker: Breaker = DEFAULT_BREAKER
    hedge: Hedge | None = None
    _circuits: tuple[_Circuit, ...] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._circuits = tuple(_Circuit(self.breaker) for _ in self.targets)

    @property
    def models(self) -> tuple[str, ...]:
        """`"provider/model"` of each target, first choice first: what a cached step that
        calls through this failover declares its answer depends on
        (`call_dependencies(model=failover.models)`). `Completion.provider` and `.model`
        say which one answered."""
        return tuple(f"{t.client.provider.name}/{t.model}" for t in self.targets)

    async def complete(
        self,
        messages: str | Sequence[MessageLike],
        *,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        stream: bool | None = None,
        temperature: float | None = None,
        meter: UsageMeter | None = None,
        hedge: Hedge | Literal[False] | None = None,
    ) -> Completion:
        """Ask the first working target to continue `messages`; fail over on failure.

        Args:
            messages: The prompt: a string (one user message) or a sequence of messages.
            max_tokens: The most tokens to generate.
            stream: Stream the answer (`None`: as each target's client decides).
            temperature: Sampling temperature (`None`: the provider's default).
            meter: One more meter to record every request of this call in.
            hedge: Hedge this call (`None`: the failover's `hedge`, else an enclosing
                `hedging()` block's, else each target's client's or provider's; `False`:
                never).

        Returns:
            The first complete answer; its `provider`, `model` and `failover` say which
            target gave it.

        Raises:
            FailoverExhaustedError: Every target failed or had its circuit open.
            ValueError: An argument is invalid.
        """
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"`max_tokens` must be an int >= 1, got {max_tokens!r}")
        prompt = as_messages(messages)
        estimate = estimate_prompt_tokens(prompt)
        failures: list[str] = []
        last: LLMError | None = None
        for position, target in enumerate(self.targets):
            circuit = self._circuits[position]
            if not circuit.allows(trio.current_time()):
                failures.append(f"{_name(target)}: skipped, its circuit is open")
                continue
            client = target.client
            chosen = None if hedge is False else client.hedge_for(hedge or self.hedge or None)
            args = CallArgs(
                prompt=prompt,
                prompt_estimate=estimate,
                max_tokens=max_tokens,
                stream=stream if stream is not None else max_tokens >= client.stream_min_tokens,
                temperature=temperature,
                meter=meter,
            )
            primary: Leg[Completion] = Leg(client=client, model=target.model, failover=position)
            backup = self._backup(primary, position, chosen)
            try:
                completion = await run_call(primary, backup, chosen, args)
            except LLMError as exc:
                circuit.record(False, trio.current_time())
                failures.append(f"{_name(target)}: {type(exc).__name__}: {exc}")
                last = exc
                continue
            self._circuits[completion.failover].record(True, trio.current_time())
            return completion
        summary = "; ".join(failures)
        raise FailoverExhaustedError(
            f"every target failed or is switched off ({summary}); add a target, or raise "
            "`Breaker.failure_rate` / lower `Breaker.cooldown` if circuits open too readily",
            failures=tuple(failures),
        ) from last

    def statistics(self) -> FailoverStatistics:
        """Return each target's circuit and counts now (call inside `trio.run`)."""
        now = trio.current_time()
        return FailoverStatistics(
            targets=tuple(
                TargetStatistics(
                    provider=target.client.provider.name,
                    model=target.model,
                    circuit=circuit.state(now),
                    answered=circuit.answered,
                    failed=circuit.failed,
                    recent_failure_rate=(
                        circuit.outcomes.count(False) / len(circuit.outcomes)
                        if circuit.outcomes
                        else 0.0
                    ),
                )
                for target, circuit in zip(self.targets, self._circuits, strict=True)
            )
        )

    def _backup(
        self, primary: Leg[Completion], position: int, hedge: Hedge | None
    ) -> Leg[Completion] | None:
        if hedge is None:
            return None
        if hedge.to_next:
            now = trio.current_time()
            for later in range(position + 1, len(self.targets)):
                if self._circuits[later].allows(now):
                    target = self.targets[later]
                    return Leg(client=target.client, model=target.model, failover=later)
        return primary


def _name(target: Target) -> str:
    return f"{target.client.provider.name}/{target.model}"
