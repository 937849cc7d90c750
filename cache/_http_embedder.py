"""`HTTPEmbedder`: embeddings from any OpenAI-compatible `/v1/embeddings` endpoint."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import attrs
import httpx
import numpy as np

from ._errors import EmbeddingError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

    from numpy.typing import NDArray

__all__ = ["DEFAULT_EMBEDDINGS_BASE_URL", "DEFAULT_EMBEDDINGS_TIMEOUT", "HTTPEmbedder"]

DEFAULT_EMBEDDINGS_BASE_URL = "https://api.openai.com/v1"
DEFAULT_EMBEDDINGS_TIMEOUT = 30.0
_API_KEY_VARIABLE = "OPENAI_API_KEY"
# Enough of an error reply to see what went wrong, not a whole HTML page.
_BODY_EXCERPT = 200


@attrs.define(eq=False)
class HTTPEmbedder:
    """Embeds texts with a remote model behind an OpenAI-compatible embeddings endpoint.

    It posts `{"model": ..., "input": [...]}` to `{base_url}/embeddings` and reads the
    `data[i].embedding` rows back in `index` order. Use it as `async with` when it owns its
    client, or pass a client you close yourself. The API key never appears in its repr or
    in any error.

    Args:
        model: The model name the endpoint expects.
        base_url: The API root, up to and including `/v1`.
        api_key: The bearer token (default: the `OPENAI_API_KEY` environment variable; with
            neither, no `Authorization` header is sent, as local servers expect).
        client: An `httpx.AsyncClient` to use; when `None`, the embedder makes and owns one.
        timeout: Seconds for the request when the embedder owns its client.
    """

    _model: str = attrs.field(alias="model")
    _base_url: str = attrs.field(alias="base_url", default=DEFAULT_EMBEDDINGS_BASE_URL)
    _api_key: str | None = attrs.field(alias="api_key", default=None, repr=False)
    _client: httpx.AsyncClient | None = attrs.field(alias="client", default=None, repr=False)
    _timeout: float = attrs.field(alias="timeout", default=DEFAULT_EMBEDDINGS_TIMEOUT)
    _owns_client: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        if self._api_key is None:
            self._api_key = os.environ.get(_API_KEY_VARIABLE)
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
            self._owns_client = True

    @property
    def url(self) -> str:
        """The URL embeddings are posted to."""
        return self._base_url.rstrip("/") + "/embeddings"

    async def __aenter__(self) -> HTTPEmbedder:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client if this embedder made it; a client passed in is left open."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed each text with one request.

        Args:
            texts: The texts, in order.

        Returns:
            A float32 array of shape `(len(texts), dimension)`.

        Raises:
            EmbeddingError: The request failed, the endpoint answered with an error status,
                or the reply is not a well-formed embeddings response for these texts.
        """
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        assert self._client is not None  # set in __attrs_post_init__
        headers = {}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        payload = {"model": self._model, "input": list(texts)}
        try:
            response = await self._client.post(self.url, json=payload, headers=headers)
        except httpx.HTTPError as exc:
            raise EmbeddingError(
                f"POST {self.url} failed: {type(exc).__name__}: {self._scrub(str(exc))}"
            ) from exc
        if response.status_code >= 400:
            excerpt = self._scrub(response.text[:_BODY_EXCERPT])
            raise EmbeddingError(
                f"POST {self.url} answered {response.status_code}: {excerpt!r}"
                + (
                    "; check the API key (argument or OPENAI_API_KEY)"
                    if response.status_code in (401, 403)
                    else ""
                )
            )
        return self._parse(response, len(texts))

    def _parse(self, response: httpx.Response, count: int) -> NDArray[np.float32]:
        try:
            body: Any = response.json()
            rows = sorted(body["data"], key=lambda item: item["index"])
            vectors = np.array([row["embedding"] for row in rows], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError(
                f"POST {self.url} returned a reply that is not an embeddings response: {exc!r}"
            ) from exc
        if vectors.ndim != 2 or vectors.shape[0] != count or vectors.shape[1] == 0:
            raise EmbeddingError(
                f"POST {self.url} returned vectors of shape {vectors.shape} for {count}"
                " texts; expected one non-empty vector per text"
            )
        return vectors

    def _scrub(self, text: str) -> str:
        if self._api_key:
            return text.replace(self._api_key, "***")
        return text
