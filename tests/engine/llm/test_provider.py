"""`Provider`: its wire format, the key it applies and hides, its shared limits, its kinds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio
from specroute.engine.llm import (
    DEFAULT_PRICES,
    SIMULATED_PRICES,
    AnthropicFormat,
    LLMConfigError,
    ModelPrice,
    OpenAIFormat,
    Provider,
    ProviderLimits,
    SimulatedTransport,
)
from specroute.engine.llm._simulated import SIMULATED_BASE_URL

if TYPE_CHECKING:
    from trio.testing import MockClock

KEY = "sk-provider-SECRET"


def test_openai_and_anthropic_pick_their_format_and_apply_the_key_their_way() -> None:
    openai = Provider.openai(api_key=KEY)
    anthropic = Provider.anthropic(api_key=KEY)
    assert isinstance(openai.format, OpenAIFormat)
    assert isinstance(anthropic.format, AnthropicFormat)
    assert openai.authorize({"accept": "x"}) == {"accept": "x", "authorization": f"Bearer {KEY}"}
    assert anthropic.authorize({}) == {"x-api-key": KEY}


def test_authorize_copies_the_headers() -> None:
    headers = {"accept": "application/json"}
    authorized = Provider.openai(api_key=KEY).authorize(headers)
    assert headers == {"accept": "application/json"}
    assert authorized is not headers


def test_the_key_is_in_no_attribute_or_repr() -> None:
    provider = Provider.openai(api_key=KEY)
    assert KEY not in repr(provider)
    public = [getattr(provider, name) for name in dir(provider) if not name.startswith("_")]
    assert not any(value == KEY for value in public)


def test_scrub_redacts_the_key_and_leaves_other_text() -> None:
    provider = Provider.openai(api_key=KEY)
    assert provider.scrub(f"bad key {KEY}!") == "bad key [redacted]!"
    keyless = Provider.openai(base_url="http://localhost:8000/v1", api_key=None)
    assert keyless.scrub("nothing to hide") == "nothing to hide"


def test_a_provider_for_another_api_is_built_from_its_format() -> None:
    provider = Provider(name="proxy", format=AnthropicFormat(), base_url="http://proxy:9")
    assert provider.authorize({}) == {}
    assert provider.prices is DEFAULT_PRICES
    assert provider.transport is None
    assert provider.limits == ProviderLimits()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("name", "", "`name` must be a non-empty string"), ("base_url", "", "`base_url` must be")],
)
def test_validation_names_the_field(field: str, value: str, message: str) -> None:
    arguments = {"name": "p", "format": OpenAIFormat(), "base_url": "http://x", field: value}
    with pytest.raises(LLMConfigError, match=message):
        Provider(**arguments)  # type: ignore[arg-type]


def test_simulated_is_an_offline_openai_provider_with_simulated_prices() -> None:
    provider = Provider.simulated(limits=ProviderLimits(max_in_flight=2))
    assert provider.name == "simulated"
    assert provider.base_url == SIMULATED_BASE_URL
    assert isinstance(provider.format, OpenAIFormat)
    assert isinstance(provider.transport, SimulatedTransport)
    assert provider.prices is SIMULATED_PRICES
    assert provider.limits.max_in_flight == 2
    assert provider.authorize({}) == {}
    mine = SimulatedTransport()
    assert Provider.simulated(mine).transport is mine


async def test_acquire_holds_a_slot_and_refund_returns_tokens(autojump_clock: MockClock) -> None:
    provider = Provider.simulated(limits=ProviderLimits(max_in_flight=1, tokens_per_minute=100))
    order: list[str] = []

    async def second() -> None:
        async with provider.acquire(10):
            order.append("second")

    async with trio.open_nursery() as nursery, provider.acquire(60):
        nursery.start_soon(second)
        await trio.sleep(1)
        inside = provider.statistics()
        order.append("first done")
    assert order == ["first done", "second"]
    assert (inside.in_flight, inside.waiting_for_slot) == (1, 1)
    # 100 - 60 - 10, plus 1 s of refill at 100 a minute.
    assert provider.statistics().tokens_available == 31
    provider.refund(50)
    after = provider.statistics()
    assert (after.in_flight, after.tokens_available) == (0, 81)


async def test_acquire_refuses_what_can_never_fit() -> None:
    provider = Provider.simulated(limits=ProviderLimits(tokens_per_minute=100))
    with pytest.raises(LLMConfigError, match="can never fit `tokens_per_minute`=100"):
        async with provider.acquire(101):
            pass


def test_scrub_finds_the_key_json_escaped_and_drops_a_cut_tail() -> None:
    provider = Provider.openai(api_key=KEY, base_url="http://x/v1")
    escaped = "".join(f"\\u{ord(c):04X}" for c in KEY)
    half_escaped = KEY[:3] + escaped[6 * 3 :]
    assert provider.scrub(f'{{"m": "{escaped}"}}') == '{"m": "[redacted]"}'
    assert provider.scrub(half_escaped) == "[redacted]"
    # A text cut inside a key loses its end, where the key's start would be.
    cut = "a" * 200 + KEY[:5]
    assert KEY[:5] not in provider.scrub(cut, cut=True)
    assert provider.scrub(cut, cut=True).startswith("a" * 50)


def test_a_placeholder_key_is_not_scrubbed_out_of_json() -> None:
    # `EMPTY` or `ollama` keys for local servers are not secrets; scrubbing them would
    # change the structure of an answer ("prompt_tokens" holds a `k`).
    provider = Provider.openai(api_key="k", base_url="http://x/v1")
    assert provider.scrub('{"prompt_tokens": 1}') == '{"prompt_tokens": 1}'


def test_prices_for_your_own_models_in_one_line() -> None:
    price = ModelPrice(input_per_million=0.1, output_per_million=0.2)
    provider = Provider.openai(base_url="http://vllm:8000/v1", prices={"my-llama": price})
    assert provider.prices.price_of("my-llama") is price
    assert provider.prices.price_of("gpt-4o") == DEFAULT_PRICES.price_of("gpt-4o")
    anthropic = Provider.anthropic(api_key=KEY, prices={"my-claude": price})
    assert anthropic.prices.price_of("my-claude") is price
