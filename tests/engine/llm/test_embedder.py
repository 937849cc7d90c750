"""HTTPEmbedder: its wire format, the provider's key, retries and limits, over mock handlers."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest
import trio
from specroute.cache import Embedder, EmbeddingError
from specroute.engine.llm import HTTPEmbedder, Provider, ProviderLimits, RetryPolicy

if TYPE_CHECKING:
    from trio.testing import MockClock

SECRET = "sk-test-secret-key-1234"
BASE_URL = "http://embeddings.test/v1"

seen: list[httpx.Request] = []


def returns_two_vectors(request: httpx.Request) -> httpx.Response:
    seen.append(request)
    # Out of order on purpose: rows must be put back in `index` order.
    data = [
        {"object": "embedding", "index": 1, "embedding": [0.0, 1.0, 0.0]},
        {"object": "embedding", "index": 0, "embedding": [1.0, 0.0, 0.0]},
    ]
    return httpx.Response(200, json={"object": "list", "data": data, "model": "m"})


def always_401(request: httpx.Request) -> httpx.Response:
    seen.append(request)
    message = f"Incorrect API key provided: {SECRET}"
    return httpx.Response(401, json={"error": {"message": message}})


def always_503(request: httpx.Request) -> httpx.Response:
    seen.append(request)
    return httpx.Response(503, json={"error": {"message": "overloaded"}})


def busy_once_then_two_vectors(request: httpx.Request) -> httpx.Response:
    if not seen:
        seen.append(request)
        return httpx.Response(429, headers={"retry-after": "3"}, json={"error": "slow down"})
    return returns_two_vectors(request)


def returns_one_vector_for_two_texts(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"data": [{"index": 0, "embedding": [1.0]}]})


def returns_html(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, text="<html>gateway</html>")


def refuses_connection(request: httpx.Request) -> httpx.Response:
    seen.append(request)
    raise httpx.ConnectError(f"connection refused (key {SECRET})", request=request)


def provider(**kwargs: Any) -> Provider:
    return Provider.openai(api_key=kwargs.pop("api_key", SECRET), base_url=BASE_URL, **kwargs)


def embedder(handler: Any, *, provider: Provider | None = None, **kwargs: Any) -> HTTPEmbedder:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    chosen = globals()["provider"]() if provider is None else provider
    return HTTPEmbedder(model="text-embedding-3-small", provider=chosen, client=client, **kwargs)


@pytest.fixture(autouse=True)
def _clear_seen() -> None:
    seen.clear()


def test_it_is_a_cache_embedder() -> None:
    assert isinstance(embedder(returns_two_vectors), Embedder)


async def test_posts_model_and_input_and_reads_rows_in_index_order() -> None:
    vectors = await embedder(returns_two_vectors).embed(["first", "second"])
    np.testing.assert_array_equal(vectors, [[1, 0, 0], [0, 1, 0]])
    assert vectors.dtype == np.float32
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "http://embeddings.test/v1/embeddings"
    assert json.loads(request.content) == {
        "model": "text-embedding-3-small",
        "input": ["first", "second"],
    }
    assert request.headers["authorization"] == f"Bearer {SECRET}"


async def test_the_key_is_the_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    await embedder(returns_two_vectors, provider=Provider.openai(base_url=BASE_URL)).embed(
        ["a", "b"]
    )
    assert seen[0].headers["authorization"] == "Bearer sk-from-env"


async def test_no_key_sends_no_authorization(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    await embedder(returns_two_vectors, provider=Provider.openai(base_url=BASE_URL)).embed(
        ["a", "b"]
    )
    assert "authorization" not in seen[0].headers


async def test_the_key_is_never_in_the_repr_or_errors() -> None:
    subject = embedder(always_401)
    assert SECRET not in repr(subject)
    with pytest.raises(EmbeddingError) as info:
        await subject.embed(["a"])
    assert SECRET not in str(info.value)
    assert "[redacted]" in str(info.value)
    assert "401" in str(info.value)
    assert "check the provider's API key" in str(info.value)
    assert len(seen) == 1, "a 401 is not retried"


async def test_a_transport_error_is_retried_then_an_embedding_error_without_the_key(
    autojump_clock: MockClock,
) -> None:
    subject = embedder(refuses_connection, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(EmbeddingError, match="gave up after 3 attempt") as info:
        await subject.embed(["a"])
    assert SECRET not in str(info.value)
    assert len(seen) == 3
    assert isinstance(info.value.__cause__, EmbeddingError)
    assert isinstance(info.value.__cause__.__cause__, httpx.ConnectError)


async def test_retry_after_is_honoured(autojump_clock: MockClock) -> None:
    start = trio.current_time()
    vectors = await embedder(busy_once_then_two_vectors).embed(["a", "b"])
    assert vectors.shape == (2, 3)
    assert trio.current_time() - start == pytest.approx(3.0)


async def test_the_retry_deadline_bounds_the_waits(autojump_clock: MockClock) -> None:
    policy = RetryPolicy(max_attempts=100, base_delay=1.0, max_delay=1.0, deadline=2.5)
    start = trio.current_time()
    with pytest.raises(EmbeddingError, match="deadline"):
        await embedder(always_503, retry=policy).embed(["a"])
    assert trio.current_time() - start <= 2.5


async def test_requests_count_against_the_providers_limits(autojump_clock: MockClock) -> None:
    shared = provider(limits=ProviderLimits(max_in_flight=1, requests_per_minute=2))
    subject = embedder(returns_two_vectors, provider=shared)
    start = trio.current_time()
    for _ in range(3):
        await subject.embed(["a", "b"])
    # Two requests a minute, the bucket starting full: the third waits 60 s / 2 for a refill.
    assert trio.current_time() - start == pytest.approx(30.0)
    assert shared.statistics().in_flight == 0


async def test_a_request_larger_than_the_token_budget_says_so() -> None:
    shared = provider(limits=ProviderLimits(tokens_per_minute=5))
    with pytest.raises(EmbeddingError, match="tokens_per_minute"):
        await embedder(returns_two_vectors, provider=shared).embed(["a long text " * 10])
    assert seen == []


@pytest.mark.parametrize(
    ("handler", "message"),
    [(returns_one_vector_for_two_texts, "shape"), (returns_html, "not an embeddings response")],
)
async def test_malformed_replies_are_embedding_errors(handler: Any, message: str) -> None:
    with pytest.raises(EmbeddingError, match=message):
        await embedder(handler).embed(["a", "b"])


async def test_no_texts_makes_no_request() -> None:
    vectors = await embedder(returns_two_vectors).embed([])
    assert vectors.shape[0] == 0
    assert seen == []


async def test_an_owned_client_is_closed_and_a_passed_one_is_not() -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(returns_two_vectors))
    async with HTTPEmbedder(model="m", provider=provider(), client=client):
        pass
    assert not client.is_closed
    await client.aclose()
    async with HTTPEmbedder(model="m", provider=provider()) as owning:
        pass
    assert owning._client is not None
    assert owning._client.is_closed


async def test_an_owned_client_uses_the_providers_transport() -> None:
    transported = Provider(
        name="local",
        format=provider().format,
        base_url=BASE_URL,
        transport=httpx.MockTransport(returns_two_vectors),
    )
    async with HTTPEmbedder(model="m", provider=transported) as owning:
        vectors = await owning.embed(["a", "b"])
    assert vectors.shape == (2, 3)
