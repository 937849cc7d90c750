"""The Anthropic Messages wire format, against `httpx.MockTransport` handlers."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from llm_mocks import API_KEY, MakeClient, sse
from specroute.engine.llm import (
    Message,
    ProviderHTTPError,
    ProviderResponseError,
    RetryBudgetExceededError,
    RetryPolicy,
    Usage,
)
from specroute.engine.llm._anthropic import ANTHROPIC_VERSION

PROMPT = [
    Message.system("Be brief."),
    Message.user("Name a colour."),
    Message.assistant("Blue."),
    Message.user("Another."),
]


def anthropic_answer(text: str) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 21, "output_tokens": 2},
    }


async def test_request_body_and_headers(make_client: MakeClient) -> None:
    seen: list[httpx.Request] = []

    async def records_request_and_answers(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=anthropic_answer("Red."))

    client = make_client(records_request_and_answers, api="anthropic")
    await client.complete(PROMPT, model="claude-3-5-haiku-latest", max_tokens=20)

    [request] = seen
    assert str(request.url) == "http://test/v1/messages"
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers["anthropic-version"] == ANTHROPIC_VERSION
    assert "authorization" not in request.headers
    assert json.loads(request.content) == {
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 20,
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": "Another."},
        ],
        "stream": False,
    }


async def test_whole_answer_is_parsed(make_client: MakeClient) -> None:
    async def answers_red(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=anthropic_answer("Red."))

    client = make_client(answers_red, api="anthropic")
    completion = await client.complete(PROMPT, model="claude-3-5-haiku-20241022", max_tokens=20)

    assert completion.text == "Red."
    assert completion.usage == Usage(input_tokens=21, output_tokens=2)
    assert completion.finish_reason == "end_turn"
    assert completion.cost == pytest.approx((21 * 0.80 + 2 * 4.00) / 1e6)


async def test_stream_with_usage_in_start_and_delta_events(make_client: MakeClient) -> None:
    async def streams_two_deltas_with_usage(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["stream"] is True
        body = sse(
            {
                "type": "message_start",
                "message": {"usage": {"input_tokens": 25, "output_tokens": 1}},
            },
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
            {"type": "ping"},
            {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Sea "}},
            {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "green."}},
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 3},
            },
            {"type": "message_stop"},
            named=True,
        )
        return httpx.Response(200, content=body)

    client = make_client(streams_two_deltas_with_usage, api="anthropic")
    completion = await client.complete(PROMPT, model="claude-sonnet-4-20250514", max_tokens=400)

    assert completion.streamed is True
    assert completion.text == "Sea green."
    assert completion.usage == Usage(input_tokens=25, output_tokens=3)
    assert completion.finish_reason == "end_turn"


async def test_invalid_request_error_body(make_client: MakeClient) -> None:
    async def rejects_max_tokens(request: httpx.Request) -> httpx.Response:
        error = {"type": "invalid_request_error", "message": "max_tokens: too large"}
        return httpx.Response(400, json={"type": "error", "error": error})

    client = make_client(rejects_max_tokens, api="anthropic")
    with pytest.raises(ProviderHTTPError, match="max_tokens: too large") as caught:
        await client.complete("hi", model="claude-opus-4", max_tokens=5)
    assert caught.value.status == 400
    assert len(client.meter.records()[0].attempts) == 1


async def test_overloaded_529_is_retried(make_client: MakeClient, autojump_clock: object) -> None:
    async def always_overloaded(request: httpx.Request) -> httpx.Response:
        error = {"type": "overloaded_error", "message": "Overloaded"}
        return httpx.Response(529, json={"type": "error", "error": error})

    client = make_client(always_overloaded, api="anthropic", retry=RetryPolicy(max_attempts=2))
    with pytest.raises(RetryBudgetExceededError, match="Overloaded"):
        await client.complete("hi", model="claude-opus-4", max_tokens=5)


async def test_error_event_inside_a_stream(make_client: MakeClient) -> None:
    async def streams_an_error_event(request: httpx.Request) -> httpx.Response:
        body = sse(
            {"type": "message_start", "message": {"usage": {"input_tokens": 3}}},
            {"type": "error", "error": {"type": "api_error", "message": "boom"}},
            named=True,
        )
        return httpx.Response(200, content=body)

    client = make_client(streams_an_error_event, api="anthropic")
    with pytest.raises(ProviderResponseError, match="boom"):
        await client.complete("hi", model="claude-opus-4", max_tokens=5, stream=True)
