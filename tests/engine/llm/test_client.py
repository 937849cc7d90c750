"""`LLMClient` and `open_llm_client`: one way to make a client, and what a call returns."""

from __future__ import annotations

import ast
import inspect
from typing import TYPE_CHECKING

import httpx
import pytest
import trio
from llm_mocks import API_KEY, MakeClient, openai_answer, sse
from specroute.engine import llm as llm_package
from specroute.engine.llm import (
    DEFAULT_PRICES,
    SIMULATED_PRICES,
    AnswerBounds,
    CallStatus,
    Completion,
    ModelPrice,
    Provider,
    RetryBudgetExceededError,
    SimulatedModel,
    SimulatedTransport,
    UnknownModelPriceWarning,
    Usage,
    UsageMeter,
    open_llm_client,
)

if TYPE_CHECKING:
    from trio.testing import MockClock

seen: list[httpx.Request] = []


async def answers_ok(request: httpx.Request) -> httpx.Response:
    seen.append(request)
    return httpx.Response(200, json=openai_answer("ok", prompt_tokens=4, completion_tokens=1))


async def test_a_simulated_provider_is_opened_like_any_other(autojump_clock: MockClock) -> None:
    transport = SimulatedTransport(SimulatedModel(output_tokens=3))
    async with open_llm_client(Provider.simulated(transport)) as llm:
        completion = await llm.complete("abcd", model="sim-small", max_tokens=10)
    assert completion.text == "the cat sat "
    assert completion.provider == "simulated"
    assert llm.prices is SIMULATED_PRICES
    assert completion.cost is not None
    assert transport.statistics().completed == 1


async def test_a_transport_passed_in_overrides_the_providers() -> None:
    seen.clear()
    provider = Provider.simulated()
    async with open_llm_client(provider, transport=httpx.MockTransport(answers_ok)) as llm:
        completion = await llm.complete("hi", model="sim-small", max_tokens=5)
    assert completion.text == "ok"
    assert len(seen) == 1
    assert isinstance(provider.transport, SimulatedTransport)
    assert provider.transport.statistics().requests == 0


async def test_prices_default_to_the_providers_and_can_be_overridden() -> None:
    provider = Provider.openai(api_key=API_KEY, base_url="http://test/v1")
    mock = httpx.MockTransport(answers_ok)
    async with open_llm_client(provider, transport=mock) as default:
        assert default.prices is DEFAULT_PRICES
    dear = ModelPrice(input_per_million=1e6, output_per_million=0)
    dearer = DEFAULT_PRICES.with_prices({"m": dear})
    async with open_llm_client(provider, transport=mock, prices=dearer) as priced:
        completion = await priced.complete("hi", model="m", max_tokens=5)
    assert completion.cost == pytest.approx(4.0)


async def test_a_completion_describes_the_call(make_client: MakeClient) -> None:
    meter = UsageMeter()
    client = make_client(answers_ok)
    completion = await client.complete("hi", model="gpt-4o-mini", max_tokens=5, meter=meter)
    assert isinstance(completion, Completion)
    assert (completion.text, completion.model) == ("ok", "gpt-4o-mini")
    assert completion.provider == "openai"
    assert completion.usage == Usage(input_tokens=4, output_tokens=1)
    assert completion.finish_reason == "stop"
    assert [a.number for a in completion.attempts] == [1]
    assert completion.duration == completion.finished - completion.started
    [record] = meter.records()
    assert record.status is CallStatus.COMPLETED
    assert client.meter.records() == (record,)


@pytest.mark.parametrize(
    ("max_tokens", "stream", "streamed"),
    [(255, None, False), (256, None, True), (5000, False, False), (5, True, True)],
)
async def test_long_generations_stream_unless_told(
    make_client: MakeClient, max_tokens: int, stream: bool | None, streamed: bool
) -> None:
    async def records_stream_flag(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if b'"stream": true' in request.content or b'"stream":true' in request.content:
            chunks = b'data: {"choices":[{"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\n'
            return httpx.Response(200, content=chunks + b"data: [DONE]\n\n")
        return await answers_ok(request)

    client = make_client(records_stream_flag)
    completion = await client.complete("hi", model="gpt-4o", max_tokens=max_tokens, stream=stream)
    assert completion.streamed is streamed
    assert completion.text == "ok"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [({"model": ""}, "`model` must be a non-empty"), ({"max_tokens": 0}, "`max_tokens` must be")],
)
async def test_invalid_arguments_say_which(
    make_client: MakeClient, arguments: dict[str, object], message: str
) -> None:
    call: dict[str, object] = {"model": "gpt-4o", "max_tokens": 5, **arguments}
    with pytest.raises(ValueError, match=message):
        await make_client(answers_ok).complete("hi", **call)


@pytest.mark.parametrize("module", ["_client", "_exchange", "_embedder"])
def test_the_client_reaches_the_provider_only_through_its_public_api(module: str) -> None:
    source = inspect.getsource(getattr(llm_package, module))
    private = [
        ast.unparse(node)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and "provider" in ast.unparse(node.value)
    ]
    assert private == []


async def test_the_calls_deadline_follows_max_tokens(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    async def never_answers(request: httpx.Request) -> httpx.Response:
        await trio.sleep(10_000)
        raise AssertionError("unreachable")

    client = make_client(never_answers)
    client.bounds = AnswerBounds(first_byte=5.0, seconds_per_token=0.5)
    start = trio.current_time()
    with pytest.raises(RetryBudgetExceededError, match=r"deadline \(15.0 s\).*seconds_per_token"):
        await client.complete("hi", model="gpt-4o", max_tokens=20, stream=False)
    assert trio.current_time() - start == pytest.approx(15.0)  # 5 s + 20 * 0.5 s
    # The retry policy's deadline wins when it is sooner (the default: 300 s).
    client.bounds = AnswerBounds(first_byte=5.0, seconds_per_token=100.0)
    with pytest.raises(RetryBudgetExceededError, match=r"deadline \(300.0 s\).*RetryPolicy"):
        await client.complete("hi", model="gpt-4o", max_tokens=20, stream=False)


async def test_a_key_the_model_spells_in_pieces_is_scrubbed(make_client: MakeClient) -> None:
    async def spells_the_key(request: httpx.Request) -> httpx.Response:
        pieces = [API_KEY[:5], API_KEY[5:]]
        chunks = [{"choices": [{"delta": {"content": piece}}]} for piece in pieces]
        return httpx.Response(200, content=sse(*chunks, "[DONE]"))

    client = make_client(spells_the_key)
    completion = await client.complete("hi", model="gpt-4o", max_tokens=5, stream=True)
    assert completion.text == "[redacted]"


async def test_unpriced_is_not_free(make_client: MakeClient) -> None:
    price = ModelPrice(input_per_million=1.0, output_per_million=2.0)
    provider = Provider.openai(api_key=API_KEY, base_url="http://test/v1", prices={"mine": price})
    client = make_client(answers_ok, provider=provider)
    priced = await client.complete("hi", model="mine", max_tokens=5)
    assert priced.cost == pytest.approx((4 * 1.0 + 1 * 2.0) / 1e6)
    with pytest.warns(UnknownModelPriceWarning, match=r"unpriced, not \$0.*prices=\{'theirs'"):
        unpriced = await client.complete("hi", model="theirs", max_tokens=5)
    assert unpriced.cost is None
    [_, record] = client.meter.records()
    assert record.cost is None
    statistics = client.meter.statistics()
    assert (statistics.unpriced_calls, statistics.cost) == (1, priced.cost)
