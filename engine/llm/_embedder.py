"""`HTTPEmbedder`: embeddings from an OpenAI-compatible `/embeddings` endpoint of a `Provider`.

It satisfies `specroute.cache.Embedder`, so it can back a semantic cache, and it goes through
the same provider as the LLM calls: the provider applies the key (`authorize`) and scrubs it
from provider text, its limits (requests in flight, per-minute budgets) count embedding
requests too, and failures are retried by a `RetryPolicy` (statuses, full-jitter backoff,
`Retry-After`, the deadline) exactly as a completion's are.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import attrs
import httpx
import numpy as np
import trio
from specroute.cache import EmbeddingError

from ._errors import LLMConfigError
from ._exchange import retry_after
from ._retry import DEFAULT_RETRY, RetryPolicy
from ._usage import estimate_tokens

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

    from numpy.typing import NDArray

    from ._provider import Provider

__all__ = ["DEFAULT_EMBEDDINGS_TIMEOUT", "HTTPEmbedder"]

#: Per-phase limits of an embeddings request when the embedder owns its HTTP client.
DEFAULT_EMBEDDINGS_TIMEOUT = httpx.Timeout(30.0)
# Enough of an error reply to see what went wrong, not a whole HTML page.
_BODY_EXCERPT = 200


@attrs.define(eq=False, kw_only=True)
class HTTPEmbedder:
    """Embeds texts with a remote model behind a provider's OpenAI-compatible embeddings API.

    It posts `{"model": ..., "input": [...]}` to `{provider.base_url}/embeddings` and reads
    the `data[i].embedding` rows back in `index` order::

        provider = Provider.openai()  # shared with the LLM client: one set of limits
        async with HTTPEmbedder(model="text-embedding-3-small", provider=provider) as embedder:
            async with open_cache(embedder=embedder) as cache: ...

    Use it as `async with` when it owns its HTTP client, or pass a client you close yourself.
    The API key stays in the provider: it is in no repr and no error.

    Args:
        model: The model name the endpoint expects.
        provider: Where requests go, with its key and limits (`Provider.openai(...)`).
        retry: When and how long to retry a failed request.
        timeout: Per-phase HTTP timeouts when the embedder owns its client.
        client: An `httpx.AsyncClient` to use; when `None`, the embedder makes and owns one
            (over `provider.transport`, if the provider has one).
        rng: Randomness for backoff jitter; seed it for reproducible waits.
    """

    model: str
    provider: Provider
    retry: RetryPolicy = DEFAULT_RETRY
    timeout: httpx.Timeout = DEFAULT_EMBEDDINGS_TIMEOUT
    rng: random.Random = attrs.field(factory=random.Random, repr=False)
    _client: httpx.AsyncClient | None = attrs.field(alias="client", default=None, repr=False)
    _owns_client: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        if not self.model:
            raise LLMConfigError(f"`model` must be a non-empty model name, got {self.model!r}")
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout, transport=self.provider.transport
            )
            self._owns_client = True

    @property
    def url(self) -> str:
        """The URL embeddings are posted to."""
        return self.provider.base_url.rstrip("/") + "/embeddings"

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
        """Close the HTTP client if this embedder made it; a client passed in is left open."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed each text with one request (retried as `retry` says).

        Args:
            texts: The texts, in order.

        Returns:
            A float32 array of shape `(len(texts), dimension)`.

        Raises:
            EmbeddingError: The request failed and retries could not fix it, the endpoint
                answered with a non-retryable error status, the reply is not a well-formed
                embeddings response for these texts, or the request can never fit the
                provider's token budget.
        """
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        headers = self.provider.authorize(
            {"content-type": "application/json", "accept": "application/json"}
        )
        payload = {"model": self.model, "input": list(texts)}
        # What providers count against a token budget: the input; nothing is generated.
        reserve = sum(estimate_tokens(text) for text in texts)
        started = trio.current_time()
        deadline = self.retry.deadline
        failure: EmbeddingError | None = None
        with trio.move_on_at(started + deadline if deadline is not None else float("inf")):
            for number in range(1, self.retry.max_attempts + 1):
                outcome = await self._attempt(headers, payload, reserve)
                if outcome.response is not None:
                    return self._parse(outcome.response, len(texts))
                failure = outcome.failure
                await trio.sleep(self._delay(outcome, number, started))
        raise EmbeddingError(
            f"POST {self.url}: the deadline ({deadline} s) passed; raise `RetryPolicy.deadline`"
        ) from failure

    async def _attempt(self, headers: dict[str, str], payload: Any, reserve: int) -> _Outcome:
        assert self._client is not None  # set in __attrs_post_init__
        try:
            async with self.provider.acquire(reserve):
                try:
                    response = await self._client.post(self.url, json=payload, headers=headers)
                except httpx.HTTPError as exc:
                    failure = EmbeddingError(
                        f"POST {self.url} failed: {type(exc).__name__}: "
                        f"{self.provider.scrub(str(exc))}"
                    )
                    failure.__cause__ = exc
                    retryable = isinstance(exc, httpx.TransportError)
                    return _Outcome(failure=failure, retryable=retryable)
        except LLMConfigError as exc:
            raise EmbeddingError(f"POST {self.url}: {exc} (or embed fewer texts per call)") from exc
        status = response.status_code
        if status < 400:
            return _Outcome(response=response)
        excerpt = self.provider.scrub(response.text[:_BODY_EXCERPT])
        hint = "; check the provider's API key" if status in (401, 403) else ""
        return _Outcome(
            failure=EmbeddingError(f"POST {self.url} answered {status}: {excerpt!r}{hint}"),
            retryable=self.retry.is_retryable_status(status),
            retry_after=retry_after(response),
        )

    def _delay(self, outcome: _Outcome, number: int, started: float) -> float:
        failure = outcome.failure
        assert failure is not None, "only a failed attempt waits"
        if not outcome.retryable:
            raise failure
        if number == self.retry.max_attempts:
            raise EmbeddingError(
                f"POST {self.url}: gave up after {number} attempt(s); the last: {failure}; "
                "raise `RetryPolicy.max_attempts` to keep trying"
            ) from failure
        asked = outcome.retry_after
        delay = asked if asked is not None else self.retry.backoff(number, self.rng)
        deadline = self.retry.deadline
        if deadline is not None and trio.current_time() + delay > started + deadline:
            raise EmbeddingError(
                f"POST {self.url}: the next attempt would start {delay:.3g} s from now, past "
                f"the deadline ({deadline} s); the last: {failure}"
            ) from failure
        return delay

    def _parse(self, response: httpx.Response, count: int) -> NDArray[np.float32]:
        try:
            body: Any = response.json()
            rows = sorted(body["data"], key=lambda item: item["index"])
            vectors = np.array([row["embedding"] for row in rows], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError(
                f"POST {self.url} returned a reply that is not an embeddings response: "
                f"{self.provider.scrub(repr(exc))}"
            ) from exc
        if vectors.ndim != 2 or vectors.shape[0] != count or vectors.shape[1] == 0:
            raise EmbeddingError(
                f"POST {self.url} returned vectors of shape {vectors.shape} for {count}"
                " texts; expected one non-empty vector per text"
            )
        return vectors


@attrs.frozen(kw_only=True)
class _Outcome:
    """One attempt's end: a response to parse, or a failure and whether to retry it."""

    response: httpx.Response | None = None
    failure: EmbeddingError | None = None
    retryable: bool = False
    retry_after: float | None = None
