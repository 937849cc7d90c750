"""API keys never appear in reprs, errors, records or logs."""

from __future__ import annotations

import logging

import httpx
import pytest
from llm_mocks import API_KEY, MakeClient
from specroute.engine.llm import LLMConfigError, Provider, ProviderHTTPError


@pytest.mark.parametrize("api", ["openai", "anthropic"])
async def test_key_is_nowhere_but_the_request(
    make_client: MakeClient, api: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def echoes_the_key(request: httpx.Request) -> httpx.Response:
        sent = request.headers.get("authorization") or request.headers["x-api-key"]
        assert API_KEY in sent
        error = {"message": f"Incorrect API key provided: {API_KEY}"}
        return httpx.Response(401, json={"type": "error", "error": error})

    client = make_client(echoes_the_key, api=api)  # type: ignore[arg-type]
    with pytest.raises(ProviderHTTPError) as caught:
        await client.complete("hi", model="gpt-4o", max_tokens=5)

    assert "Incorrect API key provided: [redacted]" in str(caught.value)
    places = [
        repr(client),
        repr(client.provider),
        str(caught.value),
        repr(caught.value),
        caught.value.provider_message,
        repr(client.meter.records()),
        caplog.text,
    ]
    assert [API_KEY in place for place in places] == [False] * len(places)


def test_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "ak-env")
    assert Provider.openai().authorize({}) == {"authorization": "Bearer sk-env"}
    assert Provider.anthropic().authorize({}) == {"x-api-key": "ak-env"}
    explicit = Provider.openai(api_key="sk-explicit")
    assert explicit.authorize({}) == {"authorization": "Bearer sk-explicit"}


def test_missing_key_says_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(LLMConfigError, match="set OPENAI_API_KEY or pass `api_key=`"):
        Provider.openai()
    with pytest.raises(LLMConfigError, match="set ANTHROPIC_API_KEY"):
        Provider.anthropic()
    # A local server needs no key, and then no authorization header is sent.
    local = Provider.openai(base_url="http://localhost:8000/v1")
    assert "authorization" not in local.authorize(local.format.headers())
