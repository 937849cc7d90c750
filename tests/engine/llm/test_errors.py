"""The LLM client's errors (`engine/llm/_errors.py`): one root, and what each one carries."""

from __future__ import annotations

import pytest
from specroute.engine.llm import (
    Attempt,
    LLMConfigError,
    LLMError,
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderResponseError,
    ProviderTimeoutError,
    RetryBudgetExceededError,
)
from specroute.routes import RunError, SpecrouteError

ALL = (
    LLMConfigError,
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderResponseError,
    ProviderTimeoutError,
    RetryBudgetExceededError,
)


@pytest.mark.parametrize("error", ALL)
def test_every_llm_error_is_under_llm_error_and_the_root(error: type[Exception]) -> None:
    assert issubclass(error, LLMError)
    assert issubclass(LLMError, SpecrouteError)
    assert not issubclass(error, RunError)


def test_http_error_carries_status_message_and_retryable() -> None:
    error = ProviderHTTPError(
        "openai answered 429", status=429, provider_message="slow down", retryable=True
    )
    assert (error.status, error.provider_message, error.retryable) == (429, "slow down", True)
    assert str(error) == "openai answered 429"


def test_retry_budget_error_carries_every_attempt() -> None:
    attempts = (
        Attempt(number=1, started=0.0, finished=1.0, status_code=503),
        Attempt(number=2, started=1.5, finished=2.0, status_code=503),
    )
    error = RetryBudgetExceededError("gave up after 2 attempts", attempts=attempts)
    assert error.attempts == attempts
    assert [attempt.number for attempt in error.attempts] == [1, 2]


def test_timeout_and_connection_errors_are_siblings() -> None:
    assert not issubclass(ProviderTimeoutError, ProviderConnectionError)
    assert not issubclass(ProviderConnectionError, ProviderTimeoutError)
    assert not issubclass(LLMConfigError, ProviderResponseError)
