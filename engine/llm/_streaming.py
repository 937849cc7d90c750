"""A streamed call whose text a step can yield as it arrives: `LLMClient.stream`.

The call is an async generator the step iterates in its own task, so nothing it holds
across a `yield` is a cancel scope or a nursery (trio cannot keep those straight while the
generator is suspended): each read of the answer is bounded by its own `trio.fail_after`,
opened and closed before the text read is handed on. What holds across a `yield` is the
provider's request slot (a `CapacityLimiter`, released in the same task) and httpx's
response, which closes its connection however the generator ends.

Retries follow the client's `RetryPolicy`, but only before the first piece of text was
handed on: after that, the reader has seen text a new attempt would repeat, so a failure
ends the stream with `StreamInterruptedError`. Billing is as for `complete`: every attempt is
recorded, and a stream cut short (the reader stopped, the step was cancelled) is billed the
prompt and the text received.
"""

from __future__ import annotations

import codecs
import contextlib
from typing import TYPE_CHECKING, Protocol

import httpx
import trio

from ._call import CallState
from ._errors import (
    LLMError,
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderResponseError,
    ProviderTimeoutError,
    RetryBudgetExceededError,
)
from ._exchange import (
    Request,
    _describe,
    _read_end,
    _read_line,
    _read_text,
    _status_error,
    _too_large,
)
from ._messages import as_messages
from ._meter import CallStatus
from ._spend import reserve_spend
from ._sse import LineSplitter
from ._usage import estimate_prompt_tokens

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Sequence

    from ._bounds import AnswerBounds
    from ._messages import MessageLike
    from ._meter import CallRecord, UsageMeter
    from ._prices import PriceTable
    from ._provider import Provider
    from ._retry import RetryPolicy
    from ._wire import Progress

__all__ = ["StreamInterruptedError", "Streamer", "stream_text"]

_ERROR_BODY_LIMIT = 64 * 1024


class Streamer(Protocol):
    """What a stream needs of its client (`LLMClient` is the one there is)."""

    @property
    def provider(self) -> Provider: ...

    @property
    def http(self) -> httpx.AsyncClient: ...

    @property
    def retry(self) -> RetryPolicy: ...

    @property
    def timeout(self) -> httpx.Timeout: ...

    @property
    def bounds(self) -> AnswerBounds: ...

    @property
    def prices(self) -> PriceTable: ...

    def _deadline(self, max_tokens: int) -> tuple[float, str]: ...

    def _raise_unless_retryable(self, failure: LLMError, call: CallState, number: int) -> None: ...

    def _delay(self, failure: LLMError, call: CallState, number: int, deadline: float) -> float: ...

    def _record(
        self,
        call: CallState,
        model: str,
        status: CallStatus,
        error: str | None,
        meter: UsageMeter | None,
    ) -> CallRecord: ...


class StreamInterruptedError(LLMError):
    """A streamed call failed after some of its text had been handed on: it is not retried,
    since a new attempt would repeat text its reader has already seen."""


async def stream_text(
    client: Streamer,
    messages: str | Sequence[MessageLike],
    *,
    model: str,
    max_tokens: int,
    temperature: float | None = None,
    meter: UsageMeter | None = None,
) -> AsyncIterator[str]:
    """See `LLMClient.stream`."""
    if not model:
        raise ValueError(f"`model` must be a non-empty model name, got {model!r}")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"`max_tokens` must be an int >= 1, got {max_tokens!r}")
    provider = client.provider
    wire = provider.format
    prompt = as_messages(messages)
    call = CallState(prompt_estimate=estimate_prompt_tokens(prompt), started=trio.current_time())
    request = Request(
        url=wire.url(provider.base_url),
        headers=provider.authorize(wire.headers()),
        body=wire.body(
            prompt, model=model, max_tokens=max_tokens, stream=True, temperature=temperature
        ),
        stream=True,
        reserve=call.prompt_estimate + max_tokens,
        max_tokens=max_tokens,
    )
    caps = await reserve_spend(client.prices, model, call.prompt_estimate, max_tokens)
    seconds, which = client._deadline(max_tokens)
    deadline = call.started + seconds
    status = CallStatus.CANCELLED
    error: str | None = None
    handed = 0
    try:
        for number in range(1, client.retry.max_attempts + 1):
            failure: LLMError | None = None
            async with provider.acquire(request.reserve):
                progress = call.open_attempt()
                texts = _attempt(client, request, call, progress, deadline, which)
                try:
                    async with contextlib.aclosing(texts):
                        async for text in texts:
                            handed += 1
                            yield text
                except (
                    ProviderConnectionError,
                    ProviderTimeoutError,
                    ProviderHTTPError,
                    ProviderResponseError,
                ) as exc:
                    call.close_attempt(error=f"{type(exc).__name__}: {exc}")
                    failure = exc
                else:
                    attempt = call.close_attempt(error=None)
            if failure is None:
                provider.refund(request.reserve - attempt.usage.total_tokens)
                status = CallStatus.COMPLETED
                return
            if handed:
                raise StreamInterruptedError(
                    f"{provider.name}: the stream failed after {handed} pieces of text had "
                    f"been read ({type(failure).__name__}: {failure}); it is not retried, "
                    f"since a new attempt would repeat them"
                ) from failure
            client._raise_unless_retryable(failure, call, number)
            await trio.sleep(client._delay(failure, call, number, seconds))
        raise AssertionError("unreachable: the last attempt raises or returns")
    except Exception as exc:
        status = CallStatus.FAILED
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if call.progress is not None:
            call.close_attempt(error="Cancelled: the stream was closed mid-attempt")
        record = client._record(call, model, status, error, meter)
        await caps.settle(record.usage.total_tokens, record.cost or 0.0)


async def _attempt(
    client: Streamer,
    request: Request,
    call: CallState,
    progress: Progress,
    deadline: float,
    which: str,
) -> AsyncGenerator[str, None]:
    """One attempt's text, piece by piece; raises a `Provider*Error` on failure."""
    provider = client.provider
    bounds = client.bounds
    limit = bounds.max_bytes(request.max_tokens)

    def bound(wait: float) -> float:
        left = deadline - trio.current_time()
        if left <= 0:
            raise RetryBudgetExceededError(
                f"{provider.name}: the call's deadline passed mid-stream; raise {which}",
                attempts=tuple(call.attempts),
            )
        return min(wait, left)

    try:
        with trio.fail_after(bound(bounds.first_byte)):
            response = await client.http.send(
                client.http.build_request(
                    "POST",
                    request.url,
                    headers=request.headers,
                    json=request.body,
                    timeout=client.timeout,
                    extensions={"trace": call.trace},
                ),
                stream=True,
            )
        chunks: AsyncIterator[bytes] | None = None
        ended = False
        try:
            call.status_code = response.status_code
            if response.status_code >= 400:
                with trio.fail_after(bound(bounds.between_chunks)):
                    text, cut = await _read_text(response, _ERROR_BODY_LIMIT)
                raise _status_error(provider, client.retry, call, response, text, cut=cut)
            decode = codecs.getincrementaldecoder("utf-8")(errors="replace")
            lines = LineSplitter()
            decoder = provider.format.stream_decoder()
            chunks = response.aiter_bytes()
            handed = 0
            while not progress.done:
                wait = bounds.first_byte if not progress.received else bounds.between_chunks
                try:
                    with trio.fail_after(bound(wait)):
                        chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    ended = True
                    _read_end(provider, lines, decoder, progress)
                    break
                progress.received += len(chunk)
                if progress.received > limit:
                    raise _too_large(provider, limit)
                for line in lines.feed(decode.decode(chunk)):
                    _read_line(provider, provider.scrub(line), decoder, progress)
                    if progress.done:
                        break
                # Hand on what arrived, then read on (no scope is open across the yield).
                while handed < len(progress.parts):
                    handed += 1
                    yield progress.parts[handed - 1]
            if not ended:
                # Read on to the end (within the bounds) so the connection can be reused.
                with trio.move_on_after(bounds.between_chunks):
                    async for _ in chunks:
                        pass
                    ended = True
        finally:
            if chunks is not None and not ended:
                await _stop_reading(chunks)
            await response.aclose()
    except trio.TooSlowError:
        phase = "the first byte" if not progress.received else "the next chunk"
        raise ProviderTimeoutError(
            f"{provider.name}: no {phase} within the bound (`AnswerBounds`); raise it with "
            "`LLMClient(bounds=AnswerBounds(...))` if the model is that slow"
        ) from None
    except httpx.TimeoutException as exc:
        raise ProviderTimeoutError(f"{provider.name}: {_describe(provider, exc)}") from exc
    except httpx.TransportError as exc:
        raise ProviderConnectionError(
            f"{provider.name}: {_describe(provider, exc)}; check that {provider.base_url} is "
            "reachable"
        ) from exc
    except httpx.HTTPError as exc:
        raise ProviderResponseError(f"{provider.name}: {_describe(provider, exc)}") from exc
    if not progress.done:
        raise ProviderConnectionError(
            f"{provider.name}: the answer ended before its final event (connection cut short)"
        )


async def _stop_reading(chunks: AsyncIterator[bytes]) -> None:
    """Stop a stream we no longer read by cancelling one more read, not by leaving httpx's
    byte iterators suspended (they would be finalised later, with a warning): the read
    raises `Cancelled` inside them, which ends them, and this scope absorbs it."""
    with trio.CancelScope() as stop:
        stop.cancel()
        async for _ in chunks:
            pass
