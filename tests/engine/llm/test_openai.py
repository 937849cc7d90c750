"""The OpenAI Chat Completions wire format, against `httpx.MockTransport` handlers."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio
from llm_mocks import API_KEY, MakeClient, openai_answer, paced, sse
from specroute.engine.llm import (
    CallStatus,
    Message,
    OutputSchema,
    ProviderHTTPError,
    ProviderResponseError,
    RetryBudgetExceededError,
    ToolCall,
    ToolSpec,
    Usage,
)

PROMPT = [Message.system("Be brief."), Message.user("Name a colour.")]


async def test_request_body_and_headers_without_streaming(make_client: MakeClient) -> None:
    seen: list[httpx.Request] = []

    async def records_request_and_answers(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=openai_answer("Blue."))

    client = make_client(records_request_and_answers)
    await client.complete(PROMPT, model="gpt-4o-mini", max_tokens=20, temperature=0.5)

    [request] = seen
    assert request.method == "POST"
    assert str(request.url) == "http://test/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Name a colour."},
        ],
        "max_tokens": 20,
        "stream": False,
        "temperature": 0.5,
    }


async def test_streamed_request_asks_for_usage(make_client: MakeClient) -> None:
    bodies: list[dict[str, object]] = []

    async def records_body_and_streams(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, content=sse({"choices": [], "usage": None}, "[DONE]"))

    client = make_client(records_body_and_streams)
    await client.complete("hi", model="gpt-4o", max_tokens=5, stream=True)

    assert bodies[0]["stream"] is True
    assert bodies[0]["stream_options"] == {"include_usage": True}
    assert "temperature" not in bodies[0]


async def test_whole_answer_is_parsed(make_client: MakeClient) -> None:
    async def answers_blue(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json=openai_answer("Blue.", prompt_tokens=12, completion_tokens=2)
        )

    completion = await make_client(answers_blue).complete(
        PROMPT, model="gpt-4o-mini", max_tokens=20
    )

    assert completion.text == "Blue."
    assert completion.usage == Usage(input_tokens=12, output_tokens=2)
    assert completion.cost == pytest.approx((12 * 0.15 + 2 * 0.60) / 1e6)
    assert completion.finish_reason == "stop"
    assert completion.streamed is False
    assert [a.status_code for a in completion.attempts] == [200]


async def test_stream_of_three_chunks_and_a_usage_chunk(
    make_client: MakeClient, autojump_clock: object
) -> None:
    async def streams_three_chunks_with_usage(request: httpx.Request) -> httpx.Response:
        chunks = [
            sse({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
            sse({"choices": [{"index": 0, "delta": {"content": "Deep "}}]}),
            sse({"choices": [{"index": 0, "delta": {"content": "sea "}}]}),
            sse(
                {"choices": [{"index": 0, "delta": {"content": "blue."}, "finish_reason": "stop"}]}
            ),
            sse({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}}),
            sse("[DONE]"),
        ]
        return httpx.Response(200, content=paced(chunks, every=0.1))

    client = make_client(streams_three_chunks_with_usage)
    completion = await client.complete(PROMPT, model="gpt-4o", max_tokens=300)

    assert completion.streamed is True  # max_tokens >= DEFAULT_STREAM_MIN_TOKENS
    assert completion.text == "Deep sea blue."
    assert completion.usage == Usage(input_tokens=9, output_tokens=4)
    assert completion.finish_reason == "stop"
    assert completion.first_token_at == pytest.approx(completion.started + 0.2)
    assert completion.duration == pytest.approx(0.6)


async def test_stream_without_usage_is_estimated_from_text(make_client: MakeClient) -> None:
    async def streams_without_usage(request: httpx.Request) -> httpx.Response:
        body = sse({"choices": [{"index": 0, "delta": {"content": "12345678"}}]}, "[DONE]")
        return httpx.Response(200, content=body)

    completion = await make_client(streams_without_usage).complete(
        "abcd", model="gpt-4o", max_tokens=5, stream=True
    )

    # 8 characters -> 2 tokens; the prompt: 1 token of text + 4 of framing.
    assert completion.usage == Usage(input_tokens=5, output_tokens=2, estimated=True)


async def test_error_body_becomes_a_clear_error_at_once(make_client: MakeClient) -> None:
    requests = 0

    async def rejects_unknown_model(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        error = {"message": "The model `gpt-9` does not exist", "type": "invalid_request_error"}
        return httpx.Response(404, json={"error": error})

    with pytest.raises(ProviderHTTPError) as caught:
        await make_client(rejects_unknown_model).complete("hi", model="gpt-9", max_tokens=5)

    assert requests == 1
    assert caught.value.status == 404
    assert caught.value.retryable is False
    assert caught.value.provider_message == "The model `gpt-9` does not exist"
    assert str(caught.value) == (
        "openai answered 404 Not Found: The model `gpt-9` does not exist "
        "(check the model name and the base URL)"
    )


async def test_error_without_json_keeps_the_body_start(
    make_client: MakeClient, autojump_clock: object
) -> None:
    async def answers_html_502(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>Bad gateway</html>")

    client = make_client(answers_html_502)
    with pytest.raises(RetryBudgetExceededError) as caught:
        await client.complete("hi", model="gpt-4o", max_tokens=5)

    cause = caught.value.__cause__
    assert isinstance(cause, ProviderHTTPError)
    assert cause.provider_message == "<html>Bad gateway</html>"


async def test_error_inside_a_stream(make_client: MakeClient) -> None:
    async def streams_an_error(request: httpx.Request) -> httpx.Response:
        body = sse({"error": {"message": "context length exceeded"}})
        return httpx.Response(200, content=body)

    with pytest.raises(ProviderResponseError, match="context length exceeded"):
        await make_client(streams_an_error).complete(
            "hi", model="gpt-4o", max_tokens=5, stream=True
        )


async def test_answer_that_is_not_json(make_client: MakeClient) -> None:
    async def answers_plain_text(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="hello")

    with pytest.raises(ProviderResponseError, match="not JSON"):
        await make_client(answers_plain_text).complete("hi", model="gpt-4o", max_tokens=5)


async def test_answer_without_choices(make_client: MakeClient) -> None:
    async def answers_without_choices(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"object": "chat.completion"})

    with pytest.raises(ProviderResponseError, match=r"choices\[0\]"):
        await make_client(answers_without_choices).complete("hi", model="gpt-4o", max_tokens=5)


# Tool calls and structured output (issue 18).

LOOKUP = ToolSpec(
    name="lookup_price",
    description="Return an article's price.",
    parameters={"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]},
)
ANSWER_SCHEMA = OutputSchema(
    name="Answer",
    schema={
        "type": "object",
        "properties": {"colour": {"type": "string"}},
        "required": ["colour"],
        "additionalProperties": False,
    },
)


def openai_tool_answer(*calls: tuple[str, str, str]) -> dict[str, Any]:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
            for i, n, a in calls
        ],
    }
    return {
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 12},
    }


async def test_tools_schema_and_tool_turns_in_the_request_body(make_client: MakeClient) -> None:
    bodies: list[dict[str, Any]] = []

    async def records_body_and_answers(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=openai_answer('{"colour": "blue"}'))

    call = ToolCall(id="call_1", name="lookup_price", arguments_json='{"sku": "A1"}')
    conversation = [
        Message.user("Price of A1?"),
        Message(role="assistant", content="", tool_calls=[call]),
        Message.tool_result(call, "12.5"),
    ]
    client = make_client(records_body_and_answers)
    await client.complete(
        conversation, model="gpt-4o-mini", max_tokens=50, tools=[LOOKUP], output=ANSWER_SCHEMA
    )

    [body] = bodies
    assert body["messages"] == [
        {"role": "user", "content": "Price of A1?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup_price", "arguments": '{"sku": "A1"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "12.5"},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "lookup_price",
                "description": "Return an article's price.",
                "parameters": dict(LOOKUP.parameters),
            },
        }
    ]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Answer", "schema": dict(ANSWER_SCHEMA.schema), "strict": True},
    }


async def test_a_call_without_tools_or_schema_sends_neither(make_client: MakeClient) -> None:
    bodies: list[dict[str, Any]] = []

    async def records_body_and_answers(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=openai_answer("Blue."))

    await make_client(records_body_and_answers).complete("hi", model="gpt-4o", max_tokens=5)

    assert "tools" not in bodies[0]
    assert "response_format" not in bodies[0]


async def test_whole_answer_with_tool_calls(make_client: MakeClient) -> None:
    async def calls_two_tools(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json=openai_tool_answer(
                ("call_1", "lookup_price", '{"sku": "A1"}'),
                ("call_2", "lookup_price", '{"sku": "B2"}'),
            ),
        )

    completion = await make_client(calls_two_tools).complete(
        "Prices?", model="gpt-4o-mini", max_tokens=50, tools=[LOOKUP]
    )

    assert completion.text == ""
    assert completion.finish_reason == "tool_calls"
    assert completion.tool_calls == (
        ToolCall(id="call_1", name="lookup_price", arguments_json='{"sku": "A1"}'),
        ToolCall(id="call_2", name="lookup_price", arguments_json='{"sku": "B2"}'),
    )
    assert completion.tool_calls[1].arguments() == {"sku": "B2"}
    assert completion.usage == Usage(input_tokens=30, output_tokens=12)


def tool_delta(
    index: int, *, id: str | None = None, name: str | None = None, args: str = ""
) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": args}}
    if id is not None:
        call["id"] = id
        call["type"] = "function"
        call["function"]["name"] = name
    return {"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}


async def test_streamed_tool_calls_are_assembled_from_their_pieces(make_client: MakeClient) -> None:
    async def streams_two_calls_in_pieces(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            content=sse(
                tool_delta(0, id="call_1", name="lookup_price"),
                tool_delta(0, args='{"sk'),
                tool_delta(1, id="call_2", name="lookup_price", args='{"sku": '),
                tool_delta(0, args='u": "A1"}'),
                tool_delta(1, args='"B2"}'),
                {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
                {"choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 14}},
                "[DONE]",
            ),
        )

    completion = await make_client(streams_two_calls_in_pieces).complete(
        "Prices?", model="gpt-4o-mini", max_tokens=50, tools=[LOOKUP], stream=True
    )

    assert [(c.id, c.arguments()) for c in completion.tool_calls] == [
        ("call_1", {"sku": "A1"}),
        ("call_2", {"sku": "B2"}),
    ]
    assert completion.finish_reason == "tool_calls"
    assert completion.usage == Usage(input_tokens=30, output_tokens=14)


async def test_a_streamed_tool_call_without_index_is_a_response_error(
    make_client: MakeClient,
) -> None:
    async def streams_a_call_without_index(request: httpx.Request) -> httpx.Response:
        bad = {"choices": [{"index": 0, "delta": {"tool_calls": [{"id": "c", "function": {}}]}}]}
        return httpx.Response(200, content=sse(bad, "[DONE]"))

    with pytest.raises(ProviderResponseError, match="without an `index`"):
        await make_client(streams_a_call_without_index).complete(
            "x", model="gpt-4o", max_tokens=5, stream=True
        )


async def test_a_tool_call_cut_short_is_billed_for_its_arguments(
    make_client: MakeClient, autojump_clock: object
) -> None:
    pieces = [
        sse(tool_delta(0, id="call_1", name="lookup_price")),
        *[sse(tool_delta(0, args="x" * 40)) for _ in range(5)],
        sse("[DONE]"),
    ]

    async def streams_arguments_slowly(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=paced(pieces, every=1.0))

    client = make_client(streams_arguments_slowly)
    with trio.move_on_after(3.5):
        await client.complete("x", model="gpt-4o", max_tokens=500, tools=[LOOKUP], stream=True)

    [record] = client.meter.records()
    assert record.status is CallStatus.CANCELLED
    # Two 40-character pieces arrived before the cancel: 80 characters, 20 tokens.
    assert record.usage.output_tokens == 20
    assert record.usage.partial
