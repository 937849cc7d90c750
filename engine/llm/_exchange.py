"""One attempt's HTTP exchange: send the request, read the answer, turn failures into errors.

The answer is read inside `async with http.stream(...)`, so however the block is left (a
cancellation included) httpx closes the response: a finished one returns its connection to the
pool, an unfinished one closes its connection, and the server sees the disconnect.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import attrs
import httpx

from ._errors import (
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderResponseError,
    ProviderTimeoutError,
)
from ._retry import parse_retry_after
from ._wire import load_json

if TYPE_CHECKING:
    from ._call import CallState
    from ._provider import Provider
    from ._retry import RetryPolicy
    from ._wire import Progress

__all__ = ["Request", "exchange", "retry_after"]

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
    headers: dict[str, str]
    body: dict[str, Any]
    stream: bool
    reserve: int


async def exchange(
    http: httpx.AsyncClient,
    provider: Provider,
    request: Request,
    *,
    call: CallState,
    progress: Progress,
    timeout: httpx.Timeout,
    retry: RetryPolicy,
) -> None:
    """Send `request` and read the answer into `progress`; raise a `Provider*Error` on failure."""
    wire = provider.format
    try:
        async with http.stream(
            "POST", request.url, headers=request.headers, json=request.body, timeout=timeout
        ) as response:
            call.status_code = response.status_code
            if response.status_code >= 400:
                await response.aread()
                raise _status_error(provider, retry, call, response)
            if request.stream:
                decoder = wire.stream_decoder()
                failure: ProviderResponseError | None = None
                # Read to the end, even past an error event: leaving httpx's nested line
                # iterators half-read abandons them to the garbage collector, and reading on
                # lets the connection be reused. (Cancellation ends them properly.)
                async for line in response.aiter_lines():
                    event = decoder.feed(line)
                    if event is None or progress.done or failure is not None:
                        continue
                    try:
                        wire.read_event(event, progress)
                    except ProviderResponseError as exc:
                        failure = exc
                last = decoder.flush()
                if last is not None and not progress.done and failure is None:
                    wire.read_event(last, progress)
                if failure is not None:
                    raise failure
            else:
                await response.aread()
                wire.read_body(load_json(response.text, what="response body"), progress)
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
    if not progress.done:
        raise ProviderConnectionError(
            f"{provider.name}: the answer ended before its final event (connection cut short)"
        )


def _status_error(
    provider: Provider, retry: RetryPolicy, call: CallState, response: httpx.Response
) -> ProviderHTTPError:
    status = response.status_code
    text = response.text
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    message = provider.format.error_message(data) or text[:300] or "(no body)"
    message = provider.scrub(message)
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
