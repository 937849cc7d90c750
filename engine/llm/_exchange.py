"""One attempt's HTTP exchange: send the request, read the answer, turn failures into errors.

The answer is read inside `async with http.stream(...)`, so however the block is left (a
cancellation included) httpx closes the response: a finished one returns its connection to the
pool, an unfinished one closes its connection, and the server sees the disconnect.
"""

from __future__ import annotations

import codecs
import json
import math
import time
from typing import TYPE_CHECKING, Any

import attrs
import httpx
import trio

from ._bounds import DEFAULT_BOUNDS
from ._errors import (
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderResponseError,
    ProviderTimeoutError,
)
from ._retry import parse_retry_after
from ._sse import LineSplitter, SSEDecoder
from ._wire import load_json

if TYPE_CHECKING:
    from ._bounds import AnswerBounds
    from ._call import CallState
    from ._provider import Provider
    from ._retry import RetryPolicy
    from ._wire import Progress, StreamDecoder

__all__ = ["Request", "exchange", "retry_after"]

# The most of an error body read: enough for any provider's message.
_ERROR_BODY_LIMIT = 64 * 1024
# The fields of an event stream; a first line with another is not one.
_SSE_FIELDS = frozenset(("data", "event", "id", "retry"))

# Hints appended to errors for statuses whose fix is known.
_STATUS_HINTS = {
    400: "fix the request (model, max_tokens, messages)",
    401: "check the API key",
    403: "check the key's permissions for this model",
    404: "check the model name and the base URL",
    413: "shorten the prompt",
    422: "fix the request (model, max_tokens, messages)",
    429: "lower the provider's limits (ProviderLimits) or raise the retry budget",
}


@attrs.frozen(kw_only=True)
class Request:
    """A built request, sent again unchanged by each attempt."""

    url: str
    # They carry the key: never in a repr.
    headers: dict[str, str] = attrs.field(repr=False)
    body: dict[str, Any]
    stream: bool
    reserve: int
    max_tokens: int


async def exchange(
    http: httpx.AsyncClient,
    provider: Provider,
    request: Request,
    *,
    call: CallState,
    progress: Progress,
    timeout: httpx.Timeout,
    retry: RetryPolicy,
    bounds: AnswerBounds = DEFAULT_BOUNDS,
) -> None:
    """Send `request` and read the answer into `progress`; raise a `Provider*Error` on failure.

    Provider text enters the library here and only here: each streamed line and each whole
    body is scrubbed of the key (`Provider.scrub`) before it is parsed, quoted or cut.
    The answer is read within `bounds`: its first byte, the gaps in a stream and its size.
    """
    limit = bounds.max_bytes(request.max_tokens)
    wait = bounds.first_byte if request.stream else math.inf
    # One scope bounds the next read: first the head (and a stream's first line), then the
    # gap to each next chunk. Its deadline moves on as data arrives.
    with trio.CancelScope(deadline=trio.current_time() + wait) as reading:
        try:
            async with http.stream(
                "POST",
                request.url,
                headers=request.headers,
                json=request.body,
                timeout=timeout,
                extensions={"trace": call.trace},
            ) as response:
                call.status_code = response.status_code
                if response.status_code >= 400:
                    text, cut = await _read_text(response, _ERROR_BODY_LIMIT)
                    raise _status_error(provider, retry, call, response, text, cut=cut)
                if request.stream:
                    await _read_stream(provider, response, progress, reading, bounds, limit)
                else:
                    text, cut = await _read_text(response, limit)
                    if cut:
                        raise _too_large(provider, limit)
                    body = provider.scrub(text)
                    provider.format.read_body(load_json(body, what="response body"), progress)
        except httpx.TimeoutException as exc:
            raise ProviderTimeoutError(
                f"{provider.name}: {_describe(provider, exc)}; "
                "raise that phase of `timeout=httpx.Timeout(...)` if the model is slow"
            ) from exc
        except httpx.TransportError as exc:
            raise ProviderConnectionError(
                f"{provider.name}: {_describe(provider, exc)}; "
                f"check that {provider.base_url} is reachable"
            ) from exc
        except httpx.HTTPError as exc:
            raise ProviderResponseError(f"{provider.name}: {_describe(provider, exc)}") from exc
    if reading.cancelled_caught:
        if progress.received:
            phase = f"no data for {bounds.between_chunks} s (`AnswerBounds.between_chunks`)"
        else:
            phase = f"no answer within {bounds.first_byte} s (`AnswerBounds.first_byte`)"
        raise ProviderTimeoutError(
            f"{provider.name}: {phase}; raise it with `LLMClient(bounds=AnswerBounds(...))` "
            "if the model is that slow"
        )
    if not progress.done:
        raise ProviderConnectionError(
            f"{provider.name}: the answer ended before its final event (connection cut short)"
        )


async def _read_text(response: httpx.Response, limit: int) -> tuple[str, bool]:
    """Read at most `limit` bytes of the body; return its text and whether it was cut there."""
    chunks: list[bytes] = []
    size = 0
    with trio.CancelScope() as stop:
        async for chunk in response.aiter_bytes():
            if size > limit:
                continue
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                _stop_reading(stop)
    data = b"".join(chunks)
    return data[:limit].decode("utf-8", errors="replace"), size > limit


def _stop_reading(stop: trio.CancelScope) -> None:
    # Leaving the loop (break, raise) would abandon httpx's and httpcore's nested async
    # generators to the garbage collector, and trio warns of each. Cancelling ends them
    # properly: the loop carries on to the next read, where `trio.Cancelled` unwinds them.
    # The response, unfinished, then closes its connection.
    stop.cancel()


async def _read_stream(
    provider: Provider,
    response: httpx.Response,
    progress: Progress,
    reading: trio.CancelScope,
    bounds: AnswerBounds,
    limit: int,
) -> None:
    content_type = response.headers.get("content-type", "")
    if content_type.startswith(("text/html", "application/xhtml")):
        raise _not_a_stream(provider, f"a page of {content_type.split(';')[0]}")
    text = codecs.getincrementaldecoder("utf-8")(errors="replace")
    lines = LineSplitter()
    decoder = provider.format.stream_decoder()
    failure: ProviderResponseError | None = None
    with trio.CancelScope() as stop:
        async for chunk in response.aiter_bytes():
            if failure is not None:
                continue
            progress.received += len(chunk)
            reading.deadline = trio.current_time() + bounds.between_chunks
            if progress.received > limit:
                failure = _too_large(provider, limit)
            elif not progress.done:
                # After the final event, read on to the end (within the bounds) so the
                # connection can be reused.
                try:
                    for line in lines.feed(text.decode(chunk)):
                        _read_line(provider, provider.scrub(line), decoder, progress)
                        if progress.done:
                            break
                except ProviderResponseError as exc:
                    failure = exc
            if failure is not None:
                _stop_reading(stop)
    if failure is not None:
        raise failure
    if not progress.done:
        _read_end(provider, lines, decoder, progress)


def _read_end(
    provider: Provider, lines: LineSplitter, decoder: StreamDecoder, progress: Progress
) -> None:
    rest = lines.flush()
    try:
        if rest is not None:
            _read_line(provider, provider.scrub(rest), decoder, progress)
        last = decoder.flush()
        if last is not None and not progress.done:
            provider.format.read_event(last, progress)
    except ProviderResponseError:
        if rest is None:
            raise
        # The answer ended inside a line that does not read: a stream cut short, like one
        # cut between events (the caller raises `ProviderConnectionError`).


def _read_line(provider: Provider, line: str, decoder: StreamDecoder, progress: Progress) -> None:
    if not progress.started and isinstance(decoder, SSEDecoder):
        if not line.strip():
            return
        # An HTML page or a JSON body is not an event stream: say so at its first line,
        # rather than read it all and report a stream cut short.
        field = line.partition(":")[0]
        if not line.startswith(":") and field not in _SSE_FIELDS:
            raise _not_a_stream(provider, f"text starting {line[:80]!r}")
    progress.started = True
    event = decoder.feed(line)
    if event is not None:
        provider.format.read_event(event, progress)


def _not_a_stream(provider: Provider, what: str) -> ProviderResponseError:
    return ProviderResponseError(
        f"{provider.name}: {provider.base_url} answered a streamed request with {what}, "
        f"not an event stream: that base URL does not speak {provider.format.name}; check "
        "`base_url` (an OpenAI-compatible server's usually ends in `/v1`)"
    )


def _too_large(provider: Provider, limit: int) -> ProviderResponseError:
    return ProviderResponseError(
        f"{provider.name}: the answer passed {limit:,} bytes, more than `max_tokens` "
        "allows (`AnswerBounds.max_bytes`); it was not read further. Check the base URL, or "
        "raise `AnswerBounds.bytes_per_token` if the provider's framing is that large"
    )


def _status_error(
    provider: Provider,
    retry: RetryPolicy,
    call: CallState,
    response: httpx.Response,
    text: str,
    *,
    cut: bool,
) -> ProviderHTTPError:
    status = response.status_code
    # Scrubbed before it is parsed or cut to 300 characters.
    text = provider.scrub(text, cut=cut)
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    message = provider.format.error_message(data) or text[:300] or "(no body)"
    call.retry_after = retry_after(response)
    retryable = retry.is_retryable_status(status)
    hint = _STATUS_HINTS.get(status, "retried" if retryable else "")
    return ProviderHTTPError(
        f"{provider.name} answered {status} {response.reason_phrase}: {message}"
        + (f" ({hint})" if hint else ""),
        status=status,
        provider_message=message,
        retryable=retryable,
    )


def retry_after(response: httpx.Response) -> float | None:
    """Return the delay `response` asks for (`retry-after-ms` or `Retry-After`), or `None`."""
    headers = response.headers
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    # Wall-clock time only as the reference for an HTTP date when the response has no Date.
    return parse_retry_after(headers.get("retry-after"), date=headers.get("date"), now=time.time())


def _describe(provider: Provider, exc: httpx.HTTPError) -> str:
    return f"{type(exc).__name__} ({provider.scrub(str(exc)) or 'no detail'})"
