"""Fixtures for the LLM client's unit tests: clients over `httpx.MockTransport` handlers."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Literal

import httpx
import pytest
from llm_mocks import API_KEY, Handler, MakeClient
from specroute.engine.llm import (
    DEFAULT_RETRY,
    LLMClient,
    Provider,
    ProviderLimits,
    RetryPolicy,
    UsageMeter,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    """A factory of clients over a mock handler; their HTTP clients close after the test."""
    opened: list[httpx.AsyncClient] = []

    def make(
        handler: Handler,
        *,
        api: Literal["openai", "anthropic"] = "openai",
        provider: Provider | None = None,
        limits: ProviderLimits | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        seed: int = 0,
        meter: UsageMeter | None = None,
    ) -> LLMClient:
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        opened.append(http)
        if provider is None:
            factory = Provider.openai if api == "openai" else Provider.anthropic
            provider = factory(
                api_key=API_KEY,
                base_url="http://test/v1" if api == "openai" else "http://test",
                limits=limits or ProviderLimits(),
            )
        return LLMClient(
            provider=provider,
            http=http,
            retry=retry,
            rng=random.Random(seed),
            meter=UsageMeter() if meter is None else meter,
        )

    yield make
    for http in opened:
        await http.aclose()
