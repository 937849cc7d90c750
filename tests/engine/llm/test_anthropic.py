"""The Anthropic Messages wire format, against `httpx.MockTransport` handlers."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from llm_mocks import API_KEY, MakeClient, sse
from specroute.engine.llm import (
    Message,
    OutputSchema,
    ProviderHTTPError,
    ProviderResponseError,
    RetryBudgetExceededError,
    RetryPolicy,
    ToolCall,
    ToolSpec,
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


# Tool calls and structured output (issue 18).

LOOKUP = ToolSpec(
    name="lookup_price",
    description="Return an article's price.",
    parameters={"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]},
)
ANSWER_SCHEMA = OutputSchema(
    name="Answer",
    schema={"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]},
    strict=False,
)


def tool_use_answer(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": list(blocks),
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 40, "output_tokens": 15},
    }


async def test_tools_and_tool_turns_in_the_request_body(make_client: MakeClient) -> None:
    bodies: list[dict[str, Any]] = []

    async def records_body_and_answers(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=anthropic_answer("12.5 and 3."))

    first = ToolCall(id="toolu_1", name="lookup_price", arguments_json='{"sku": "A1"}')
    second = ToolCall(id="toolu_2", name="lookup_price", arguments_json='{"sku": "B2"}')
    conversation = [
        Message.system("Be brief."),
        Message.user("Prices of A1 and B2?"),
        Message(role="assistant", content="Looking up.", tool_calls=[first, second]),
        Message.tool_result(first, "12.5"),
        Message.tool_result(second, "KeyError: 'B2'", is_error=True),
    ]
    client = make_client(records_body_and_answers, api="anthropic")
    await client.complete(
        conversation, model="claude-3-5-haiku-latest", max_tokens=50, tools=[LOOKUP]
    )

    [body] = bodies
    assert body["system"] == "Be brief."
    assert body["messages"] == [
        {"role": "user", "content": "Prices of A1 and B2?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Looking up."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "lookup_price",
                    "input": {"sku": "A1"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_2",
                    "name": "lookup_price",
                    "input": {"sku": "B2"},
                },
            ],
        },
        # Both results in one user turn: Messages turns must alternate.
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "12.5"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": "KeyError: 'B2'",
                    "is_error": True,
                },
            ],
        },
    ]
    assert body["tools"] == [
        {
            "name": "lookup_price",
            "description": "Return an article's price.",
            "input_schema": dict(LOOKUP.parameters),
        }
    ]
    assert "tool_choice" not in body


async def test_an_output_schema_is_a_forced_tool(make_client: MakeClient) -> None:
    bodies: list[dict[str, Any]] = []

    async def records_body_and_answers(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        block = {"type": "tool_use", "id": "toolu_9", "name": "Answer", "input": {"colour": "red"}}
        return httpx.Response(200, json=tool_use_answer(block))

    client = make_client(records_body_and_answers, api="anthropic")
    completion = await client.complete(
        "Colour?", model="claude-3-5-haiku-latest", max_tokens=50, output=ANSWER_SCHEMA
    )

    [body] = bodies
    assert body["tool_choice"] == {"type": "tool", "name": "Answer"}
    assert body["tools"][0]["name"] == "Answer"
    assert body["tools"][0]["input_schema"] == dict(ANSWER_SCHEMA.schema)
    [call] = completion.tool_calls
    assert (call.name, call.arguments()) == ("Answer", {"colour": "red"})
    assert completion.finish_reason == "tool_use"


async def test_an_output_schema_beside_tools_lets_the_model_call_any_tool(
    make_client: MakeClient,
) -> None:
    bodies: list[dict[str, Any]] = []

    async def records_body_and_answers(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=anthropic_answer("ok"))

    client = make_client(records_body_and_answers, api="anthropic")
    await client.complete(
        "x", model="claude-3-5-haiku-latest", max_tokens=5, tools=[LOOKUP], output=ANSWER_SCHEMA
    )

    assert bodies[0]["tool_choice"] == {"type": "any"}
    assert [t["name"] for t in bodies[0]["tools"]] == ["lookup_price", "Answer"]


async def test_whole_answer_with_text_and_tool_use(make_client: MakeClient) -> None:
    async def answers_text_then_tool_use(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json=tool_use_answer(
                {"type": "text", "text": "Let me look."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "lookup_price",
                    "input": {"sku": "A1"},
                },
            ),
        )

    client = make_client(answers_text_then_tool_use, api="anthropic")
    completion = await client.complete("x", model="claude-3-5-haiku-latest", max_tokens=50)

    assert completion.text == "Let me look."
    assert completion.tool_calls == (
        ToolCall(id="toolu_1", name="lookup_price", arguments_json='{"sku": "A1"}'),
    )
    assert completion.usage == Usage(input_tokens=40, output_tokens=15)


async def test_streamed_tool_use_is_assembled_from_json_deltas(make_client: MakeClient) -> None:
    tool_block = {"type": "tool_use", "id": "toolu_1", "name": "lookup_price", "input": {}}
    final_usage = {"output_tokens": 17}

    def json_delta(piece: str) -> dict[str, Any]:
        delta = {"type": "input_json_delta", "partial_json": piece}
        return {"type": "content_block_delta", "index": 1, "delta": delta}

    events = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 40, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hm."}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": tool_block},
        json_delta('{"sku"'),
        {"type": "ping"},
        json_delta(': "A1"}'),
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": final_usage},
        {"type": "message_stop"},
    ]

    async def streams_tool_use(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=sse(*events, named=True))

    client = make_client(streams_tool_use, api="anthropic")
    completion = await client.complete(
        "x", model="claude-3-5-haiku-latest", max_tokens=50, stream=True, tools=[LOOKUP]
    )

    assert completion.text == "Hm."
    [call] = completion.tool_calls
    assert (call.id, call.name, call.arguments()) == ("toolu_1", "lookup_price", {"sku": "A1"})
    assert completion.finish_reason == "tool_use"
    assert completion.usage == Usage(input_tokens=40, output_tokens=17)


async def test_a_content_block_without_index_is_a_response_error(make_client: MakeClient) -> None:
    events = [
        {
            "type": "content_block_start",
            "content_block": {"type": "tool_use", "id": "t", "name": "n"},
        },
        {"type": "message_stop"},
    ]

    async def streams_a_block_without_index(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=sse(*events, named=True))

    client = make_client(streams_a_block_without_index, api="anthropic")
    with pytest.raises(ProviderResponseError, match="without an `index`"):
        await client.complete("x", model="claude-3-5-haiku-latest", max_tokens=5, stream=True)
