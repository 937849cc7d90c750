"""The errors an LLM call raises, all under `LLMError` (itself under `SpecrouteError`).

The hierarchy (each class says when it is raised)::

    SpecrouteError
    └── LLMError                       anything the LLM client raises on purpose
        ├── LLMConfigError             a client or provider that cannot work as configured
        │                              (no API key, a call larger than a token budget)
        ├── ProviderHTTPError          the provider answered with an error status; carries
        │                              the status and the provider's own message
        ├── ProviderConnectionError    no complete answer arrived: refused connection,
        │                              dropped connection, a stream cut short
        ├── ProviderTimeoutError       an `httpx.Timeout` phase (connect, write, pool) or
        │                              an `AnswerBounds` wait (first byte, between
        │                              chunks) ran out
        ├── ProviderResponseError      an answer arrived but is not what the wire format
        │                              promises (bad JSON, an error event in a stream, a
        │                              web page for a stream, more than `max_tokens` allows)
        ├── RetryBudgetExceededError   a retryable failure that retries could not fix:
        │                              attempts or the call's deadline ran out
        └── SpendCapExceededError      a call that would pass a spend cap; never sent

Only `RetryBudgetExceededError` and the non-retryable failures reach a caller of
`LLMClient.complete`: retryable failures are retried first, and each one is kept in the
call's `attempts`. A cancelled call raises `trio.Cancelled`, never one of these.

No message or attribute holds an API key: provider text is scrubbed of the key where it
enters the library (`Provider.scrub`), before any message quotes or cuts it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from specroute.routes import SpecrouteError

if TYPE_CHECKING:
    from ._meter import Attempt

__all__ = [
    "LLMConfigError",
    "LLMError",
    "ProviderConnectionError",
    "ProviderHTTPError",
    "ProviderResponseError",
    "ProviderTimeoutError",
    "RetryBudgetExceededError",
    "SpendCapExceededError",
]


class LLMError(SpecrouteError):
    """Root of every error the LLM client raises on purpose."""


class LLMConfigError(LLMError):
    """A client, provider or call that cannot work as configured; the message says the fix.

    Raised before any request is sent, unlike the `Provider*Error` classes, which report
    what a provider did.
    """


class ProviderHTTPError(LLMError):
    """The provider answered with an HTTP error status.

    Raised at once for statuses that are never retried (400, 401, 403, 404, 422...); a
    retryable status (408, 409, 429, 5xx) that retries cannot fix ends as the `__cause__` of a
    `RetryBudgetExceededError` instead.

    Attributes:
        status: The HTTP status code.
        provider_message: The provider's own explanation, from the error body (scrubbed of
            the API key), or the body's start when it has no recognisable message.
        retryable: Whether the status is one the retry policy retries.
    """

    def __init__(
        self, message: str, *, status: int, provider_message: str, retryable: bool
    ) -> None:
        super().__init__(message)
        self.status = status
        self.provider_message = provider_message
        self.retryable = retryable


class ProviderConnectionError(LLMError):
    """No complete answer arrived: the connection failed, dropped, or the stream was cut short.

    Differs from `ProviderTimeoutError` in that something broke rather than ran slow. Always
    retryable.
    """


class ProviderTimeoutError(LLMError):
    """A wait ran out: an `httpx.Timeout` phase (connect, read, write or pool), or an
    `AnswerBounds` bound (the first byte of an answer, the gap between stream chunks).

    Differs from `ProviderConnectionError` in that the server went silent rather than broke
    the connection. Always retryable.
    """


class ProviderResponseError(LLMError):
    """The provider's answer does not follow its wire format, or a stream carried an error event.

    Also raised when a streamed 200 is not an event stream at all (a web page: the base URL
    does not speak the API) and when an answer passes `AnswerBounds.max_bytes(max_tokens)`
    (it is read no further). Not retried: the same request would most likely get the same
    answer. Check the base URL and that the server speaks the chosen API (`Provider.openai`
    or `Provider.anthropic`).
    """


class RetryBudgetExceededError(LLMError):
    """Retryable failures went on until the attempts or the call's deadline ran out.

    `__cause__` is the last attempt's error; `attempts` holds every attempt. Raise
    `RetryPolicy.max_attempts` or `RetryPolicy.deadline` if the provider is slow to recover.

    Attributes:
        attempts: Every attempt of the call, in order.
    """

    def __init__(self, message: str, *, attempts: tuple[Attempt, ...]) -> None:
        super().__init__(message)
        self.attempts = attempts


class SpendCapExceededError(LLMError):
    """A call that would pass a spend cap (`SpendCap`), so it was not sent.

    The message names the cap, what was already spent and what the call might take. Unlike
    `LLMConfigError` for a call larger than a token budget, the same call may fit later
    (a windowed cap) or under a larger cap; nothing about the client is misconfigured.

    Attributes:
        cap: The name of the cap.
    """

    def __init__(self, message: str, *, cap: str) -> None:
        super().__init__(message)
        self.cap = cap
