"""HTTPEmbedder wire format, over httpx.MockTransport handlers named for what they do."""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np
import pytest
from specroute.cache import EmbeddingError, HTTPEmbedder

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
    message = f"Incorrect API key provided: {SECRET}"
    return httpx.Response(401, json={"error": {"message": message}})


def returns_one_vector_for_two_texts(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"data": [{"index": 0, "embedding": [1.0]}]})


def returns_html(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, text="<html>gateway</html>")


def refuses_connection(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError(f"connection refused (key {SECRET})", request=request)


def embedder(handler: Any, **kwargs: Any) -> HTTPEmbedder:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return HTTPEmbedder(model="text-embedding-3-small", base_url=BASE_URL, client=client, **kwargs)


async def test_posts_model_and_input_and_reads_rows_in_index_order() -> None:
    seen.clear()
    vectors = await embedder(returns_two_vectors, api_key=SECRET).embed(["first", "second"])
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


async def test_api_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    seen.clear()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    await embedder(returns_two_vectors).embed(["a", "b"])
    assert seen[0].headers["authorization"] == "Bearer sk-from-env"


async def test_no_key_sends_no_authorization(monkeypatch: pytest.MonkeyPatch) -> None:
    seen.clear()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    await embedder(returns_two_vectors).embed(["a", "b"])
    assert "authorization" not in seen[0].headers


async def test_the_key_is_never_in_the_repr_or_errors() -> None:
    subject = embedder(always_401, api_key=SECRET)
    assert SECRET not in repr(subject)
    with pytest.raises(EmbeddingError) as info:
        await subject.embed(["a"])
    assert SECRET not in str(info.value)
    assert "401" in str(info.value)
    assert "OPENAI_API_KEY" in str(info.value)


async def test_a_transport_error_is_an_embedding_error_without_the_key() -> None:
    with pytest.raises(EmbeddingError, match="ConnectError") as info:
        await embedder(refuses_connection, api_key=SECRET).embed(["a"])
    assert SECRET not in str(info.value)
    assert isinstance(info.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize(
    ("handler", "message"),
    [(returns_one_vector_for_two_texts, "shape"), (returns_html, "not an embeddings response")],
)
async def test_malformed_replies_are_embedding_errors(handler: Any, message: str) -> None:
    with pytest.raises(EmbeddingError, match=message):
        await embedder(handler).embed(["a", "b"])


async def test_no_texts_makes_no_request() -> None:
    seen.clear()
    vectors = await embedder(returns_two_vectors).embed([])
    assert vectors.shape[0] == 0
    assert seen == []


async def test_an_owned_client_is_closed_and_a_passed_one_is_not() -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(returns_two_vectors))
    async with HTTPEmbedder(model="m", base_url=BASE_URL, client=client):
        pass
    assert not client.is_closed
    await client.aclose()
    async with HTTPEmbedder(model="m", base_url=BASE_URL) as owning:
        pass
    assert owning._client is not None
    assert owning._client.is_closed
