"""One attempt's exchange (`engine/llm/_exchange.py`): answers read, failures made errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest
from llm_mocks import API_KEY, openai_answer, sse
from specroute.engine.llm import (
    DEFAULT_RETRY,
    Provider,
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderResponseError,
    ProviderTimeoutError,
)
from specroute.engine.llm._call import CallState
from specroute.engine.llm._exchange import Request, exchange, retry_after

if TYPE_CHECKING:
    from specroute.engine.llm._wire import Progress

PROVIDER = Provider.openai(api_key=API_KEY, base_url="http://test/v1")


def request(*, stream: bool) -> Request:
    return Request(
        url="http://test/v1/chat/completions",
        headers={"authorization": f"Bearer {API_KEY}"},
        body={"model": "m", "messages": [], "stream": stream},
        stream=stream,
        reserve=10,
        max_tokens=5,
    )


async def run(handler: Any, *, stream: bool = False) -> tuple[Progress, CallState]:
    call = CallState(prompt_estimate=5, started=0.0)
    progress = call.open_attempt()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        await exchange(
            http,
            PROVIDER,
            request(stream=stream),
            call=call,
            progress=progress,
            timeout=httpx.Timeout(5.0),
            retry=DEFAULT_RETRY,
        )
    return progress, call


def answers_ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=openai_answer("fine", prompt_tokens=7, completion_tokens=1))


def streams_two_chunks(request: httpx.Request) -> httpx.Response:
    chunk = {"choices": [{"delta": {"content": "he"}}]}
    last = {"choices": [{"delta": {"content": "y"}, "finish_reason": "stop"}]}
    return httpx.Response(200, content=sse(chunk, last, "[DONE]"))


def stream_cut_short(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=sse({"choices": [{"delta": {"content": "he"}}]}))


def stream_with_error_event(request: httpx.Request) -> httpx.Response:
    chunk = {"choices": [{"delta": {"content": "he"}}]}
    return httpx.Response(200, content=sse(chunk, {"error": {"message": "overloaded"}}, "[DONE]"))


def rejects_the_key(request: httpx.Request) -> httpx.Response:
    body = {"error": {"message": f"Incorrect API key provided: {API_KEY}"}}
    return httpx.Response(401, json=body)


def busy_with_retry_after_ms(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503, text="busy", headers={"retry-after-ms": "1500"})


def refuses_connections(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused")


def times_out_reading(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("read timed out")


async def test_a_body_is_read_into_progress() -> None:
    progress, call = await run(answers_ok)
    assert progress.text() == "fine"
    assert progress.done
    assert (progress.input_tokens, progress.output_tokens) == (7, 1)
    assert call.status_code == 200


async def test_a_stream_is_read_to_its_final_event() -> None:
    progress, _ = await run(streams_two_chunks, stream=True)
    assert progress.text() == "hey"
    assert progress.finish_reason == "stop"
    assert progress.done


async def test_a_stream_without_its_final_event_is_a_connection_cut_short() -> None:
    with pytest.raises(ProviderConnectionError, match=r"ended before its final event"):
        await run(stream_cut_short, stream=True)


async def test_an_error_event_is_raised_after_the_stream_is_read() -> None:
    with pytest.raises(ProviderResponseError, match=r"overloaded"):
        await run(stream_with_error_event, stream=True)


async def test_an_error_status_carries_the_scrubbed_message_and_a_hint() -> None:
    with pytest.raises(ProviderHTTPError) as info:
        await run(rejects_the_key)
    error = info.value
    assert error.status == 401
    assert not error.retryable
    assert "check the API key" in str(error)
    assert API_KEY not in str(error)
    assert API_KEY not in error.provider_message
    assert "[redacted]" in error.provider_message


async def test_a_retryable_status_records_the_delay_it_asks_for() -> None:
    call = CallState(prompt_estimate=5, started=0.0)
    with pytest.raises(ProviderHTTPError, match=r"503.*busy \(retried\)") as info:
        async with httpx.AsyncClient(
            transport=httpx.MockTransport(busy_with_retry_after_ms)
        ) as http:
            await exchange(
                http,
                PROVIDER,
                request(stream=False),
                call=call,
                progress=call.open_attempt(),
                timeout=httpx.Timeout(5.0),
                retry=DEFAULT_RETRY,
            )
    assert info.value.retryable
    assert call.retry_after == 1.5
    assert call.status_code == 503


async def test_transport_failures_become_connection_and_timeout_errors() -> None:
    with pytest.raises(ProviderConnectionError, match=r"check that http://test/v1 is reachable"):
        await run(refuses_connections)
    with pytest.raises(ProviderTimeoutError, match=r"ReadTimeout.*raise that phase"):
        await run(times_out_reading)


@pytest.mark.parametrize(
    ("headers", "delay"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "2"}, 2.0),
        ({"retry-after-ms": "-40"}, 0.0),
        ({}, None),
    ],
)
def test_retry_after_prefers_milliseconds(headers: dict[str, str], delay: float | None) -> None:
    assert retry_after(httpx.Response(429, headers=headers)) == delay
