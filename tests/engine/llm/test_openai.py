"""The OpenAI Chat Completions wire format, against `httpx.MockTransport` handlers."""

from __future__ import annotations

import json

import httpx
import pytest
from llm_mocks import API_KEY, MakeClient, openai_answer, paced, sse
from specroute.engine.llm import (
    Message,
    ProviderHTTPError,
    ProviderResponseError,
    RetryBudgetExceededError,
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
