"""The LLM client: one `complete` call over either wire format, with retries, limits and a ledger.

Every call, however it ends, is recorded (see `_meter.py`). A cancelled call raises
`trio.Cancelled` like any trio operation; its partial usage is in the meters, not in a return
value. Streams are read inside `async with http.stream(...)`, so cancelling the call closes
the HTTP response at once and the provider stops generating.
"""

from __future__ import annotations

import random
import warnings
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

import attrs
import httpx
import trio

from ._bounds import DEFAULT_BOUNDS, AnswerBounds
from ._call import CallState
from ._checks import at_least_one
from ._errors import (
    LLMError,
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderResponseError,
    ProviderTimeoutError,
    RetryBudgetExceededError,
)
from ._exchange import Request, exchange
from ._hedge import Hedge, HedgeState, block_hedge, process_hedge_state
from ._messages import Message, MessageLike, as_messages
from ._meter import (
    Attempt,
    CallRecord,
    CallStatus,
    HedgeRole,
    UsageMeter,
    active_meters,
    record_usage,
)
from ._prices import PriceTable, UnknownModelPriceWarning
from ._race import CallArgs, Leg, run_call
from ._retry import DEFAULT_RETRY, RetryPolicy
from ._spend import reserve_spend
from ._streaming import stream_text
from ._usage import Usage, estimate_prompt_tokens
from ._wire import check_body_takes

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    from ._messages import ToolCall
    from ._provider import Provider
    from ._toolspec import OutputSchema, ToolSpec

__all__ = [
    "DEFAULT_HTTP_TIMEOUT",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_STREAM_MIN_TOKENS",
    "Completion",
    "LLMClient",
    "RetryEvent",
    "open_llm_client",
]

#: `max_tokens` when a call gives none.
DEFAULT_MAX_TOKENS = 1024
#: Calls allowing at least this many output tokens stream unless told otherwise, so that
#: cancelling them stops the generation (and the bill) at once.
DEFAULT_STREAM_MIN_TOKENS = 256
#: Per-phase limits: connect, write, and wait for the pool. Reads have no httpx limit: the
#: wait for an answer is bounded by `AnswerBounds` (first byte, gaps between chunks) and the
#: call's deadline, which follow from `max_tokens`.
DEFAULT_HTTP_TIMEOUT = httpx.Timeout(connect=10.0, read=None, write=30.0, pool=30.0)


@attrs.frozen(kw_only=True)
class Completion:
    """A completed call.

    Attributes:
        text: The generated text.
        model: The model asked for.
        provider: The provider's name.
        usage: Tokens billed over every attempt (`usage.partial` is false).
        cost: Dollars for `usage`, or `None` when the model has no price.
        attempts: Every attempt, in order; the last one succeeded.
        started: `trio.current_time()` when `complete` was called.
        finished: `trio.current_time()` when it returned.
        first_token_at: `trio.current_time()` when the first text arrived (`None`: no text).
        finish_reason: Why generation stopped, as the provider says (`"stop"`, `"length"`,
            `"end_turn"`, `"max_tokens"`...), or `None`.
        streamed: Whether the answer was streamed.
        tool_calls: The tool calls the model made, in its order (empty: none).
        hedge: `None` if no hedge was sent; else which request answered
            (`HedgeRole.BACKUP`: the hedge won).
        failover: The position, in its `Failover`, of the target that answered (0: the
            first choice, or no failover).
    """

    text: str
    model: str
    provider: str
    usage: Usage
    cost: float | None
    attempts: tuple[Attempt, ...]
    started: float
    finished: float
    first_token_at: float | None
    finish_reason: str | None
    streamed: bool
    tool_calls: tuple[ToolCall, ...] = ()
    hedge: HedgeRole | None = None
    failover: int = 0

    @property
    def duration(self) -> float:
        """Seconds from the call to its return, retries and waits included."""
        return self.finished - self.started


@attrs.frozen(kw_only=True)
class RetryEvent:
    """An LLM call about to be retried: what `LLMClient.on_retry` is told, before the wait.

    Attributes:
        provider: The provider's name.
        model: The model called.
        prompt: The call's messages (to tell calls apart, e.g. by a stage's prefix).
        attempt: The number of the attempt about to start (2 for the first retry).
        max_attempts: The most attempts the call's `RetryPolicy` allows.
        error: What the failed attempt ended with (`"ProviderStatusError: ..."`).
        delay: Seconds the client waits before that attempt.
        at: `trio.current_time()` when the attempt failed.
    """

    provider: str
    model: str
    prompt: tuple[Message, ...]
    attempt: int
    max_attempts: int
    error: str
    delay: float
    at: float


@attrs.define(eq=False, kw_only=True)
class LLMClient:
    """Calls one provider's models over a (shareable) `httpx.AsyncClient`.

    Make one per provider with `open_llm_client(provider)`, or construct it over an
    `httpx.AsyncClient` you own and share between providers::

        async with httpx.AsyncClient() as http:
            gpt = LLMClient(provider=openai_provider, http=http)
            claude = LLMClient(provider=anthropic_provider, http=http)

    Args:
        provider: Where calls go; its limits are shared with every other user of it.
        http: The HTTP client (trio backend, picked by httpx automatically under trio).
        retry: When and how long to retry.
        timeout: Per-phase HTTP timeouts (connect, write, pool; reads are bounded by `bounds`).
        prices: Prices used for `cost` (default: the provider's `prices`).
        meter: This client's ledger (a new one by default).
        rng: Randomness for backoff jitter; seed it for reproducible waits.
        stream_min_tokens: Calls with `stream=None` stream when `max_tokens` reaches this.
        bounds: How long to wait for an answer and how much of it to read, from
            `max_tokens` (`DEFAULT_BOUNDS`: first byte within 60 s, 30 s between chunks,
            1 KiB per token plus 1 MiB, the call done within 60 s + 0.2 s per token).
        hedge: Hedge this client's calls (`None`: as the provider's `hedge` says).
        hedge_state: Latencies learned and the hedge budget (default: the process's).
        on_retry: Told of every retry before its wait (a progress line, a log, a metric);
            called in the calling task, so it must be quick and must not raise.
    """

    provider: Provider
    http: httpx.AsyncClient = attrs.field(repr=False)
    retry: RetryPolicy = DEFAULT_RETRY
    timeout: httpx.Timeout = DEFAULT_HTTP_TIMEOUT
    prices: PriceTable = attrs.field(
        default=attrs.Factory(lambda self: self.provider.prices, takes_self=True)
    )
    meter: UsageMeter = attrs.field(factory=UsageMeter)
    rng: random.Random = attrs.field(factory=random.Random, repr=False)
    stream_min_tokens: int = attrs.field(
        default=DEFAULT_STREAM_MIN_TOKENS,
        validator=at_least_one,
    )
    bounds: AnswerBounds = DEFAULT_BOUNDS
    hedge: Hedge | None = None
    hedge_state: HedgeState = attrs.field(factory=process_hedge_state, repr=False)
    on_retry: Callable[[RetryEvent], None] | None = attrs.field(default=None, repr=False)
    _warned_models: set[str] = attrs.field(init=False, factory=set, repr=False)

    async def complete(
        self,
        messages: str | Sequence[MessageLike],
        *,
        model: str,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        stream: bool | None = None,
        temperature: float | None = None,
        meter: UsageMeter | None = None,
        tools: Sequence[ToolSpec] = (),
        output: OutputSchema | None = None,
        hedge: Hedge | Literal[False] | None = None,
    ) -> Completion:
        """Ask `model` to continue `messages`; retry retryable failures; record the call.

        The call is recorded in `self.meter`, in `meter` and in every meter made active with
        `record_usage`, whether it completes, fails or is cancelled.

        Args:
            messages: The prompt: a string (one user message) or a sequence of messages.
            model: The model name, as the provider spells it.
            max_tokens: The most tokens to generate.
            stream: Stream the answer (`None`: stream when `max_tokens` reaches
                `stream_min_tokens`). Only a streamed call stops generating when cancelled.
            temperature: Sampling temperature (`None`: the provider's default).
            meter: One more meter to record this call in.
            tools: Tools the model may call; its calls are in `Completion.tool_calls` (run
                them with `run_tool_loop`).
            output: A JSON schema the answer should fit, asked for in the provider's own
                way; not validated here (`structured` validates and retries).

            hedge: Hedge this call (`None`: as an enclosing `hedging()` block, else the
                client, else the provider says; `False`: never). A hedged call is
                recorded as one record per request sent.

        The call ends by `RetryPolicy.deadline` or `bounds.deadline(max_tokens)`, whichever
        is sooner; each attempt reads at most `bounds.max_bytes(max_tokens)` bytes.

        Returns:
            The completion.

        Raises:
            ProviderHTTPError: The provider refused the request with a non-retryable status.
            ProviderResponseError: The answer did not follow the wire format, was larger
                than `max_tokens` allows, or (streamed) was not an event stream at all.
            RetryBudgetExceededError: Retryable failures outlasted the retry policy or the
                call's deadline.
            LLMConfigError: The call can never fit the provider's token budget, or the
                provider's format takes no `tools` or `output`.
            SpendCapExceededError: The call would pass an active spend cap (`spend_caps`);
                it was not sent.
            ValueError: An argument is invalid.
        """
        if not model:
            raise ValueError(f"`model` must be a non-empty model name, got {model!r}")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"`max_tokens` must be an int >= 1, got {max_tokens!r}")
        extras: dict[str, Any] = {}
        # Only to calls that use them: a user's format may not know these arguments.
        if tools:
            extras["tools"] = tuple(tools)
        if output is not None:
            extras["output"] = output
        check_body_takes(self.provider.format, list(extras))
        prompt = as_messages(messages)
        call = CallState(
            prompt_estimate=estimate_prompt_tokens(prompt), started=trio.current_time()
        )
        streamed = stream if stream is not None else max_tokens >= self.stream_min_tokens
        caps = await reserve_spend(self.prices, model, call.prompt_estimate, max_tokens)
        chosen = self.hedge_for(hedge)
        if chosen is not None:
            leg: Leg[Completion] = Leg(client=self, model=model)
            args = CallArgs(
                prompt=prompt,
                prompt_estimate=call.prompt_estimate,
                max_tokens=max_tokens,
                stream=streamed,
                temperature=temperature,
                meter=meter,
                extras=extras,
            )
            # Every request of the race (a hedge too) counts against the caps.
            spent = UsageMeter()
            try:
                with record_usage(spent):
                    return await run_call(leg, leg, chosen, args)
            finally:
                totals = spent.statistics()
                await caps.settle(totals.input_tokens + totals.output_tokens, totals.cost)
        status = CallStatus.CANCELLED
        error: str | None = None
        try:
            completion = await self._complete(
                call, prompt, model, max_tokens, streamed, temperature, extras
            )
            status = CallStatus.COMPLETED
        except Exception as exc:
            status = CallStatus.FAILED
            error = _describe(exc)
            raise
        finally:
            # Runs on cancellation too: the open attempt is billed for what it received.
            if call.progress is not None:
                call.close_attempt(error="Cancelled: the call was cancelled mid-attempt")
            record = self._record(call, model, status, error, meter)
            await caps.settle(record.usage.total_tokens, record.cost or 0.0)
        return completion

    def stream(
        self,
        messages: str | Sequence[MessageLike],
        *,
        model: str,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        temperature: float | None = None,
        meter: UsageMeter | None = None,
    ) -> AsyncIterator[str]:
        """Stream `model`'s answer, a piece of text at a time, for a step to yield on::

            @step(collect="".join)
            async def answer(question: str) -> AsyncIterator[str]:
                async for text in llm.stream(question, model="gpt-4o-mini"):
                    yield text

        Bounded, scrubbed, limited and billed as `complete` is (the same `bounds`,
        `retry` and provider limits). Failures are retried only before the first piece
        of text is handed on; after that a failure raises `StreamInterruptedError`. Close
        the iterator early (stop reading, or be cancelled) and the HTTP stream is closed
        and billed for what arrived. Not hedged: a reader has seen the text.

        Args:
            messages: The prompt: a string (one user message) or a sequence of messages.
            model: The model name, as the provider spells it.
            max_tokens: The most tokens to generate.
            temperature: Sampling temperature (`None`: the provider's default).
            meter: One more meter to record this call in.

        Returns:
            An async iterator of text pieces, in order.
        """
        return stream_text(
            self, messages, model=model, max_tokens=max_tokens, temperature=temperature, meter=meter
        )

    def _mark(
        self, completion: Completion, *, started: float, hedge: HedgeRole | None, failover: int
    ) -> Completion:
        return attrs.evolve(completion, started=started, hedge=hedge, failover=failover)

    def hedge_for(self, hedge: Hedge | Literal[False] | None = None) -> Hedge | None:
        """Return how a call given `hedge` is hedged: its own, else the enclosing
        `hedging()` block's, else the client's, else the provider's (`None`: not hedged)."""
        if hedge is False:
            return None
        return hedge or block_hedge() or self.hedge or self.provider.hedge

    async def _complete(
        self,
        call: CallState,
        prompt: tuple[Message, ...],
        model: str,
        max_tokens: int,
        stream: bool,
        temperature: float | None,
        extras: dict[str, Any],
    ) -> Completion:
        provider = self.provider
        wire = provider.format
        request = Request(
            url=wire.url(provider.base_url),
            headers=provider.authorize(wire.headers()),
            body=wire.body(
                prompt,
                model=model,
                max_tokens=max_tokens,
                stream=stream,
                temperature=temperature,
                **extras,
            ),
            stream=stream,
            reserve=call.prompt_estimate + max_tokens,
            max_tokens=max_tokens,
        )
        deadline, which = self._deadline(max_tokens)
        with trio.move_on_at(call.started + deadline):
            for number in range(1, self.retry.max_attempts + 1):
                failure = await self._attempt(call, request)
                if failure is None:
                    return self._completion(call, model, stream)
                self._raise_unless_retryable(failure, call, number)
                delay = self._delay(failure, call, number, deadline)
                if self.on_retry is not None:
                    self.on_retry(
                        RetryEvent(
                            provider=provider.name,
                            model=model,
                            prompt=prompt,
                            attempt=number + 1,
                            max_attempts=self.retry.max_attempts,
                            error=_describe(failure),
                            delay=delay,
                            at=trio.current_time(),
                        )
                    )
                await trio.sleep(delay)
        # Only the deadline's scope ends the loop early.
        if call.progress is not None:
            call.close_attempt(error="Deadline: the call's deadline passed mid-attempt")
        raise RetryBudgetExceededError(
            f"{self.provider.name}: the call's deadline ({round(deadline, 3)} s) passed after "
            f"{len(call.attempts)} attempt(s); raise {which}",
            attempts=tuple(call.attempts),
        )

    def _deadline(self, max_tokens: int) -> tuple[float, str]:
        """Return the call's deadline in seconds and the setting that chose it."""
        derived = self.bounds.deadline(max_tokens)
        policy = self.retry.deadline
        if policy is not None and policy <= derived:
            return policy, "`RetryPolicy.deadline`"
        return derived, "`AnswerBounds.seconds_per_token` or `AnswerBounds.first_byte`"

    async def _attempt(self, call: CallState, request: Request) -> LLMError | None:
        async with self.provider.acquire(request.reserve):
            progress = call.open_attempt()
            try:
                await exchange(
                    self.http,
                    self.provider,
                    request,
                    call=call,
                    progress=progress,
                    timeout=self.timeout,
                    retry=self.retry,
                    bounds=self.bounds,
                )
            except (ProviderConnectionError, ProviderTimeoutError) as exc:
                billed = not isinstance(exc.__cause__, httpx.ConnectError | httpx.PoolTimeout)
                billed = billed and not isinstance(exc.__cause__, httpx.ConnectTimeout)
                call.close_attempt(error=_describe(exc), billed=billed)
                return exc
            except (ProviderHTTPError, ProviderResponseError) as exc:
                call.close_attempt(error=_describe(exc))
                return exc
            attempt = call.close_attempt(error=None)
        self.provider.refund(request.reserve - attempt.usage.total_tokens)
        return None

    def _raise_unless_retryable(self, failure: LLMError, call: CallState, number: int) -> None:
        if isinstance(failure, ProviderHTTPError):
            retryable = failure.retryable
        else:
            retryable = isinstance(failure, ProviderConnectionError | ProviderTimeoutError)
        if not retryable:
            raise failure
        if number == self.retry.max_attempts:
            raise RetryBudgetExceededError(
                f"{self.provider.name}: gave up after {number} attempt(s); the last failed "
                f"with {_describe(failure)}; raise `RetryPolicy.max_attempts` to keep trying",
                attempts=tuple(call.attempts),
            ) from failure

    def _delay(self, failure: LLMError, call: CallState, number: int, deadline: float) -> float:
        asked = call.attempts[-1].retry_after
        delay = asked if asked is not None else self.retry.backoff(number, self.rng)
        if trio.current_time() + delay > call.started + deadline:
            raise RetryBudgetExceededError(
                f"{self.provider.name}: the next attempt would start {delay:.3g} s from now, "
                f"past the call's deadline ({deadline} s); last failure: {_describe(failure)}",
                attempts=tuple(call.attempts),
            ) from failure
        call.set_delay(delay)
        return delay

    def _completion(self, call: CallState, model: str, stream: bool) -> Completion:
        last = call.attempts[-1]
        progress = call.last_progress
        assert progress is not None, "a completed call has a closed attempt"
        usage = call.usage(partial=False)
        return Completion(
            # Lines were scrubbed as they came; pieces of text joined here are scrubbed again.
            text=self.provider.scrub(progress.text()),
            model=model,
            provider=self.provider.name,
            usage=usage,
            cost=self._cost(model, usage),
            attempts=tuple(call.attempts),
            started=call.started,
            finished=last.finished,
            first_token_at=progress.first_token_at,
            finish_reason=progress.finish_reason,
            streamed=stream,
            tool_calls=progress.tool_calls(),
        )

    def _record(
        self,
        call: CallState,
        model: str,
        status: CallStatus,
        error: str | None,
        meter: UsageMeter | None,
        *,
        hedge: HedgeRole | None = None,
        saved: float = 0.0,
        failover: int = 0,
    ) -> CallRecord:
        usage = call.usage(partial=status is not CallStatus.COMPLETED)
        record = CallRecord(
            provider=self.provider.name,
            model=model,
            status=status,
            usage=usage,
            cost=self._cost(model, usage),
            attempts=tuple(call.attempts),
            started=call.started,
            finished=trio.current_time(),
            error=error,
            hedge=hedge,
            saved=saved,
            failover=failover,
        )
        meters = [self.meter, *active_meters()]
        if meter is not None:
            meters.append(meter)
        # A meter that is both passed and active records the call once.
        for target in {id(m): m for m in meters}.values():
            target.record(record)
        return record

    def _cost(self, model: str, usage: Usage) -> float | None:
        if usage.total_tokens == 0:
            # Nothing billed costs nothing, priced or not (a refused or unsent request).
            return 0.0
        cost = self.prices.cost(model, usage)
        if cost is None and model not in self._warned_models:
            self._warned_models.add(model)
            warnings.warn(
                f"no price for model {model!r}: its cost is None (unpriced, not $0); price it "
                f"with `Provider.openai(..., prices={{{model!r}: ModelPrice(...)}})`",
                UnknownModelPriceWarning,
                stacklevel=5,
            )
        return cost


@asynccontextmanager
async def open_llm_client(
    provider: Provider,
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
    timeout: httpx.Timeout = DEFAULT_HTTP_TIMEOUT,
    prices: PriceTable | None = None,
    meter: UsageMeter | None = None,
    seed: int | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    bounds: AnswerBounds = DEFAULT_BOUNDS,
    hedge: Hedge | None = None,
    hedge_state: HedgeState | None = None,
    on_retry: Callable[[RetryEvent], None] | None = None,
) -> AsyncIterator[LLMClient]:
    """Open an `httpx.AsyncClient` and yield an `LLMClient` for `provider` over it.

    This is the one way to make a client, real or simulated::

        async with open_llm_client(Provider.openai()) as llm: ...
        async with open_llm_client(Provider.simulated()) as llm: ...  # offline

    Args:
        provider: Where calls go.
        retry: When and how long to retry.
        timeout: Per-phase HTTP timeouts.
        prices: Prices used for `cost` (`None`: the provider's `prices`).
        meter: The client's ledger (a new one by default).
        seed: Seed for backoff jitter (`None`: unseeded).
        transport: An httpx transport to use instead of the network (tests); `None`: the
            provider's own `transport` (the in-process server of `Provider.simulated()`),
            else the network.
        bounds: How long to wait for an answer and how much of it to read.
        hedge: Hedge the client's calls (`None`: as the provider's `hedge` says).
        hedge_state: Latencies and hedge budget (`None`: `process_hedge_state()`).
        on_retry: Told of every retry before its wait (see `LLMClient`).

    Yields:
        The client; its HTTP connections close when the block exits.
    """
    async with httpx.AsyncClient(
        timeout=timeout,
        transport=provider.transport if transport is None else transport,
        # Room for every request the provider lets through, plus keep-alive for reuse.
        limits=httpx.Limits(max_connections=max(100, provider.limits.max_in_flight)),
    ) as http:
        yield LLMClient(
            provider=provider,
            http=http,
            retry=retry,
            timeout=timeout,
            prices=provider.prices if prices is None else prices,
            meter=UsageMeter() if meter is None else meter,
            rng=random.Random(seed),
            bounds=bounds,
            hedge=hedge,
            hedge_state=process_hedge_state() if hedge_state is None else hedge_state,
            on_retry=on_retry,
        )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
