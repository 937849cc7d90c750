"""Prices: lookup by model and family, overrides, and no made-up figure for unknown models."""

from __future__ import annotations

import httpx
import pytest
from llm_mocks import MakeClient, openai_answer
from specroute.engine.llm import (
    DEFAULT_PRICES,
    ModelPrice,
    PriceTable,
    UnknownModelPriceWarning,
    Usage,
)

MILLION = Usage(input_tokens=1_000_000, output_tokens=1_000_000)


def test_exact_and_family_prices() -> None:
    assert DEFAULT_PRICES.cost("gpt-4o", MILLION) == pytest.approx(12.50)
    assert DEFAULT_PRICES.cost("gpt-4o-2024-08-06", MILLION) == pytest.approx(12.50)
    assert DEFAULT_PRICES.cost("gpt-4o-mini-2024-07-18", MILLION) == pytest.approx(0.75)
    assert DEFAULT_PRICES.cost("claude-3-5-haiku-latest", MILLION) == pytest.approx(4.80)
    assert DEFAULT_PRICES.cost("gpt-4oo", MILLION) is None
    assert DEFAULT_PRICES.cost("llama-3", MILLION) is None


def test_overrides() -> None:
    table = DEFAULT_PRICES.with_prices(
        {"gpt-4o": ModelPrice(input_per_million=1, output_per_million=1)}
    )
    assert table.cost("gpt-4o", MILLION) == 2.0
    assert DEFAULT_PRICES.cost("gpt-4o", MILLION) == pytest.approx(12.50)


def test_validation() -> None:
    with pytest.raises(ValueError, match="`input_per_million` must be a number >= 0, got -1"):
        ModelPrice(input_per_million=-1, output_per_million=0)
    with pytest.raises(TypeError, match="must map model names to `ModelPrice`"):
        PriceTable(prices={"m": 1.0})  # type: ignore[dict-item]


async def test_unknown_model_costs_none_and_warns_once(make_client: MakeClient) -> None:
    async def answers_ok(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=openai_answer("ok"))

    client = make_client(answers_ok)
    with pytest.warns(UnknownModelPriceWarning, match="no price for model 'my-local-llama'"):
        completion = await client.complete("hi", model="my-local-llama", max_tokens=5)
    assert completion.cost is None
    # Once per model: the second call would raise here (warnings are errors in tests).
    again = await client.complete("hi", model="my-local-llama", max_tokens=5)
    assert again.cost is None
    assert client.meter.statistics().unpriced_calls == 2
