"""A provider: an API endpoint, its key, its wire format and its limits, shared process-wide.

Create one `Provider` per account and endpoint, once, at start-up, and hand it to every
client and run that uses it: its cap on requests in flight and its per-minute budgets then
hold across all of them. (Two `Provider` objects for one account would each allow the full
limits.) Nothing is global: a provider lives as long as you keep it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal

import attrs

from ._anthropic import DEFAULT_ANTHROPIC_BASE_URL, AnthropicFormat
from ._errors import LLMConfigError
from ._limits import DEFAULT_LIMITS, ProviderLimits, ProviderStatistics, Throttle
from ._openai import DEFAULT_OPENAI_BASE_URL, OpenAIFormat

if TYPE_CHECKING:
    from ._wire import WireFormat

__all__ = ["Provider"]

_REDACTED = "[redacted]"


@attrs.define(eq=False)
class Provider:
    """One API endpoint with its key, wire format and shared limits.

    Build it with `Provider.openai(...)` or `Provider.anthropic(...)`. The key never appears
    in the provider's repr, in errors or in records.

    Attributes:
        name: The name records and errors use (`"openai"`, `"anthropic"` or yours).
        api: `"openai"` (Chat Completions) or `"anthropic"` (Messages).
        base_url: Where requests go.
        limits: The limits shared by every client using this provider.
    """

    name: str
    api: Literal["openai", "anthropic"]
    base_url: str
    limits: ProviderLimits
    _api_key: str | None = attrs.field(alias="api_key", repr=False)
    _throttle: Throttle = attrs.field(init=False, repr=False)
    _format: WireFormat = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._throttle = Throttle(self.limits)
        self._format = OpenAIFormat() if self.api == "openai" else AnthropicFormat()

    @classmethod
    def openai(
        cls,
        *,
        api_key: str | None = None,
        base_url: str = DEFAULT_OPENAI_BASE_URL,
        limits: ProviderLimits = DEFAULT_LIMITS,
        name: str = "openai",
    ) -> Provider:
        """Return a provider speaking OpenAI Chat Completions.

        Args:
            api_key: The key; default `OPENAI_API_KEY` from the environment. Optional for
                other base URLs (a local vLLM or llama.cpp server needs none).
            base_url: The API root, `/chat/completions` is appended (`http://host:8000/v1`).
            limits: The account's limits.
            name: The name records and errors use.

        Returns:
            The provider.

        Raises:
            LLMConfigError: If the base URL is OpenAI's and no key is given or set.
        """
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if key is None and base_url == DEFAULT_OPENAI_BASE_URL:
            raise LLMConfigError(
                "no OpenAI API key: set OPENAI_API_KEY or pass `api_key=` "
                "(or pass `base_url=` for a local server that needs none)"
            )
        return cls(name=name, api="openai", base_url=base_url, limits=limits, api_key=key)

    @classmethod
    def anthropic(
        cls,
        *,
        api_key: str | None = None,
        base_url: str = DEFAULT_ANTHROPIC_BASE_URL,
        limits: ProviderLimits = DEFAULT_LIMITS,
        name: str = "anthropic",
    ) -> Provider:
        """Return a provider speaking Anthropic Messages.

        Args:
            api_key: The key; default `ANTHROPIC_API_KEY` from the environment. Optional for
                other base URLs (a proxy that adds its own).
            base_url: The API root; `/v1/messages` is appended.
            limits: The account's limits.
            name: The name records and errors use.

        Returns:
            The provider.

        Raises:
            LLMConfigError: If the base URL is Anthropic's and no key is given or set.
        """
        key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY")
        if key is None and base_url == DEFAULT_ANTHROPIC_BASE_URL:
            raise LLMConfigError("no Anthropic API key: set ANTHROPIC_API_KEY or pass `api_key=`")
        return cls(name=name, api="anthropic", base_url=base_url, limits=limits, api_key=key)

    def statistics(self) -> ProviderStatistics:
        """Return the state of the provider's limits now (call inside `trio.run`)."""
        return self._throttle.statistics()

    def scrub(self, text: str) -> str:
        """Return `text` with the API key replaced by `[redacted]`."""
        if self._api_key:
            return text.replace(self._api_key, _REDACTED)
        return text
