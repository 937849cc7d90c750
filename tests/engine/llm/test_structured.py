"""Structured output: the schema asked for, the answer validated, bounded retries that say why."""

from __future__ import annotations

import json
from typing import Any

import attrs
import httpx
import pytest
from llm_mocks import MakeClient, openai_answer, sse
from specroute.engine import Flow, StepFailedError, step
from specroute.engine.llm import (
    LLMConfigError,
    OutputSchema,
    StructuredOutputError,
    UsageMeter,
    output_schema,
    structured,
)


@attrs.frozen
class Colour:
    name: str
    hex: str


GOOD = '{"name": "blue", "hex": "#0000ff"}'


def answers(*texts: str, seen: list[dict[str, Any]]) -> Any:
    """An OpenAI handler that answers `texts` in turn (streamed if asked) and keeps each
    request body."""

    async def answers_in_turn(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        text = texts[len(seen) - 1]
        if not body["stream"]:
            return httpx.Response(200, json=openai_answer(text))
        chunk = {"choices": [{"index": 0, "delta": {"content": text}}]}
        usage = {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 3}}
        return httpx.Response(200, content=sse(chunk, usage, "[DONE]"))

    return answers_in_turn


async def test_a_fitting_answer_becomes_the_class(make_client: MakeClient) -> None:
    seen: list[dict[str, Any]] = []
    client = make_client(answers(GOOD, seen=seen))

    result = await structured(client, "A colour?", output=Colour, model="gpt-4o-mini")

    assert result.value == Colour(name="blue", hex="#0000ff")
    assert result.retries == 0
    assert seen[0]["response_format"]["json_schema"]["name"] == "Colour"
    assert seen[0]["response_format"]["json_schema"]["schema"] == dict(output_schema(Colour).schema)


async def test_invalid_json_is_asked_again_with_the_error(make_client: MakeClient) -> None:
    seen: list[dict[str, Any]] = []
    meter = UsageMeter()
    client = make_client(answers("blue, I think", GOOD, seen=seen))

    result = await structured(client, "A colour?", output=Colour, model="gpt-4o-mini", meter=meter)

    assert result.value.name == "blue"
    assert result.retries == 1
    assert result.usage.input_tokens == 22  # two calls of 11 prompt tokens
    assert meter.statistics().calls == 2
    retry = seen[1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": "blue, I think"}
    assert retry[-1]["role"] == "user"
    assert "does not fit the JSON schema `Colour`: $: is not JSON" in retry[-1]["content"]


async def test_a_mismatch_that_persists_names_the_field(make_client: MakeClient) -> None:
    seen: list[dict[str, Any]] = []
    wrong = '{"name": "blue", "hex": 255}'
    client = make_client(answers(wrong, wrong, wrong, wrong, seen=seen))

    with pytest.raises(StructuredOutputError) as caught:
        await structured(client, "A colour?", output=Colour, model="gpt-4o-mini", retries=2)

    error = caught.value
    assert len(seen) == 3
    assert error.schema == "Colour"
    assert [v.path for v in error.violations] == ["$.hex"]
    assert "`$.hex`" in str(error)
    assert "expected string, got 255" in str(error)
    assert "Raise `retries=`" in str(error)
    assert error.answer == wrong
    assert len(error.completions) == 3
    assert "$.hex: expected string, got 255" in seen[1]["messages"][-1]["content"]


async def test_no_retries_fails_at_the_first_mismatch(make_client: MakeClient) -> None:
    seen: list[dict[str, Any]] = []
    client = make_client(answers("{}", GOOD, seen=seen))

    with pytest.raises(StructuredOutputError, match=r"`\$\.name`, `\$\.hex`"):
        await structured(client, "x", output=Colour, model="gpt-4o-mini", retries=0)
    assert len(seen) == 1


async def test_a_plain_schema_gives_the_parsed_json(make_client: MakeClient) -> None:
    schema = OutputSchema(
        name="Tags",
        schema={"type": "array", "items": {"type": "string"}},
        strict=False,
    )
    client = make_client(answers('```json\n["a", "b"]\n```', seen=[]))

    result = await structured(client, "Tags?", output=schema, model="gpt-4o-mini")

    assert result.value == ["a", "b"]


async def test_a_streamed_answer_is_parsed_when_complete(make_client: MakeClient) -> None:
    pieces = [GOOD[:10], GOOD[10:20], GOOD[20:]]

    async def streams_json_in_pieces(request: httpx.Request) -> httpx.Response:
        chunks = [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
        usage = {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 12}}
        return httpx.Response(200, content=sse(*chunks, usage, "[DONE]"))

    client = make_client(streams_json_in_pieces)
    result = await structured(client, "x", output=Colour, model="gpt-4o-mini", stream=True)

    assert result.value == Colour(name="blue", hex="#0000ff")
    assert result.completions[0].streamed


async def test_anthropic_answers_through_the_forced_tool(make_client: MakeClient) -> None:
    seen: list[dict[str, Any]] = []
    inputs = [{"name": "blue"}, {"name": "blue", "hex": "#0000ff"}]

    async def answers_with_the_tool(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        block = {"type": "tool_use", "id": f"toolu_{len(seen)}", "name": "Colour"}
        block["input"] = inputs[len(seen) - 1]
        return httpx.Response(
            200,
            json={
                "content": [block],
                "stop_reason": "tool_use",
                "usage": {"input_tokens": 30, "output_tokens": 10},
            },
        )

    client = make_client(answers_with_the_tool, api="anthropic")
    result = await structured(
        client, "x", output=Colour, model="claude-3-5-haiku-latest", stream=False
    )

    assert result.value == Colour(name="blue", hex="#0000ff")
    assert seen[0]["tool_choice"] == {"type": "tool", "name": "Colour"}
    # The complaint answers the forced call, as Messages requires.
    [*_, call_turn, result_turn] = seen[1]["messages"]
    assert call_turn["content"][0]["type"] == "tool_use"
    [block] = result_turn["content"]
    assert block["tool_use_id"] == "toolu_1"
    assert block["is_error"] is True
    assert "$.hex: is required but missing" in block["content"]


async def test_bad_arguments_are_refused_before_any_call(make_client: MakeClient) -> None:
    seen: list[dict[str, Any]] = []
    client = make_client(answers(GOOD, seen=seen))

    with pytest.raises(LLMConfigError, match="`retries` must be an int >= 0, got -1"):
        await structured(client, "x", output=Colour, model="m", retries=-1)
    with pytest.raises(LLMConfigError, match="needs an attrs class"):
        await structured(client, "x", output=dict, model="m")
    assert seen == []


async def test_in_a_run_the_error_names_the_step_and_the_field(make_client: MakeClient) -> None:
    wrong = '{"name": "blue"}'
    client = make_client(answers(wrong, wrong, seen=[]))

    @step
    async def colour(request: str) -> Colour:
        return (
            await structured(client, request, output=Colour, model="gpt-4o-mini", retries=1)
        ).value

    with pytest.raises(StepFailedError) as caught:
        await Flow([colour]).run(request="A colour?")

    message = str(caught.value)
    assert message.startswith("step 'colour' failed: StructuredOutputError:")
    assert "`$.hex`" in message
    assert isinstance(caught.value.__cause__, StructuredOutputError)
    [entry] = caught.value.trace
    assert entry.usage is not None
    assert entry.usage.calls == 2  # the retry is billed to the step


async def test_an_answer_cut_at_max_tokens_says_so(make_client: MakeClient) -> None:
    async def cuts_the_json(request: httpx.Request) -> httpx.Response:
        answer = openai_answer('{"name": "bl')
        answer["choices"][0]["finish_reason"] = "length"
        return httpx.Response(200, json=answer)

    client = make_client(cuts_the_json)
    with pytest.raises(StructuredOutputError, match=r"cut at `max_tokens` \(length\): raise it"):
        await structured(client, "x", output=Colour, model="gpt-4o-mini", retries=0, stream=False)
