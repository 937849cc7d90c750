"""A provider: an API endpoint, its key, its wire format and its limits, shared process-wide.

Create one `Provider` per account and endpoint, once, at start-up, and hand it to every
client, embedder and run that uses it: its cap on requests in flight and its per-minute
budgets then hold across all of them. (Two `Provider` objects for one account would each
allow the full limits.) Nothing is global: a provider lives as long as you keep it.

The key stays inside the provider: clients ask it to `authorize` request headers and to
`scrub` provider text, and never read the key itself. Provider text is scrubbed once, where it
enters the library (`_exchange.py`: each streamed line, each whole body), before anything
parses, quotes or cuts it; the scrub also finds the key written with JSON escapes
(`\\u0073k-...`), so no value parsed from a scrubbed text can hold it.
"""

from __future__ import annotations

import os
import re
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import attrs

from ._anthropic import DEFAULT_ANTHROPIC_BASE_URL, AnthropicFormat
from ._errors import LLMConfigError
from ._limits import DEFAULT_LIMITS, ProviderLimits, ProviderStatistics, Throttle
from ._openai import DEFAULT_OPENAI_BASE_URL, OpenAIFormat
from ._prices import DEFAULT_PRICES, ModelPrice, PriceTable
from ._simulated import SIMULATED_BASE_URL, SIMULATED_PRICES, SimulatedTransport

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    import httpx

    from ._hedge import Hedge
    from ._shared_limits import SharedLimits
    from ._wire import WireFormat

__all__ = ["Provider"]

_REDACTED = "[redacted]"
# Keys shorter than this are placeholders for local servers (`EMPTY`, `ollama`), not
# secrets; scrubbing them from raw JSON could break its structure (a key `k` in `"tokens"`).
_MIN_SECRET = 8
# The longest JSON spelling of one character (`\\u0073`): a cut text's last
# `_MAX_ESCAPE * len(key)` characters may hold part of a key.
_MAX_ESCAPE = 6
# What `Provider` checks a format has: the `WireFormat` protocol's members.
_WIRE_FORMAT_MEMBERS = (
    "name",
    "url",
    "headers",
    "authorization",
    "body",
    "stream_decoder",
    "read_body",
    "read_event",
    "read_usage",
    "error_message",
)


def _as_prices(value: PriceTable | Mapping[str, ModelPrice]) -> PriceTable:
    # A mapping adds the user's own models to the built-in table, in one line.
    if isinstance(value, PriceTable):
        return value
    return DEFAULT_PRICES.with_prices(value)


def _key_pattern(key: str) -> re.Pattern[str]:
    """Return a pattern matching `key` in JSON text, each character plain or escaped."""
    units = []
    for char in key:
        forms = [re.escape(char)]
        if ord(char) < 0x10000:
            digits = "".join(
                f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in f"{ord(char):04x}"
            )
            forms.append(r"\\u" + digits)
        if char in '"\\/':
            forms.append(re.escape("\\" + char))
        units.append("(?:" + "|".join(forms) + ")")
    return re.compile("".join(units))


def _non_empty(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise LLMConfigError(f"`{attribute.name}` must be a non-empty string, got {value!r}")


def _wire_format(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    missing = [member for member in _WIRE_FORMAT_MEMBERS if not hasattr(value, member)]
    if missing:
        raise LLMConfigError(
            f"`{attribute.name}` must implement the `WireFormat` protocol; "
            f"{type(value).__name__} lacks {', '.join(f'`{m}`' for m in missing)}"
        )


@attrs.define(eq=False, kw_only=True)
class Provider:
    """One API endpoint with its wire format, key, prices and shared limits.

    Build it with `Provider.openai(...)`, `Provider.anthropic(...)` or `Provider.simulated()`,
    or, for another API, with its format: `Provider(name="mine", format=MyFormat(),
    base_url=..., api_key=...)`. The key never appears in the provider's repr, in errors or
    in records.

    Args:
        name: The name records and errors use (`"openai"`, `"anthropic"` or yours).
        format: The API's `WireFormat` (`OpenAIFormat()`, `AnthropicFormat()` or yours).
        base_url: Where requests go.
        api_key: The key, applied to requests by `authorize` (`None`: send none).
        limits: The limits shared by every client using this provider.
        prices: What its models cost; clients use it unless given other prices. A mapping
            (`{"my-model": ModelPrice(...)}`) adds to `DEFAULT_PRICES`.
        transport: An httpx transport clients use instead of the network (`None`: the
            network); `Provider.simulated()` sets a `SimulatedTransport`.
        hedge: Hedge every call to this provider whose client and call say nothing
            (`None`: no hedging).
        shared: Limits shared with other worker processes through Redis, enforced beside
            `limits` (`None`: this process's limits only).

    Raises:
        LLMConfigError: `name` or `base_url` is empty, or `format` is not a `WireFormat`.
    """

    name: str = attrs.field(validator=_non_empty)
    format: WireFormat = attrs.field(validator=_wire_format)
    base_url: str = attrs.field(validator=_non_empty)
    _api_key: str | None = attrs.field(alias="api_key", default=None, repr=False)
    limits: ProviderLimits = DEFAULT_LIMITS
    prices: PriceTable = attrs.field(default=DEFAULT_PRICES, converter=_as_prices, repr=False)
    transport: httpx.AsyncBaseTransport | None = attrs.field(default=None, repr=False)
    hedge: Hedge | None = None
    shared: SharedLimits | None = attrs.field(default=None, repr=False)
    _throttle: Throttle = attrs.field(init=False, repr=False)
    _key_pattern: re.Pattern[str] | None = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._throttle = Throttle(self.limits)
        key = self._api_key
        self._key_pattern = _key_pattern(key) if key and len(key) >= _MIN_SECRET else None

    @classmethod
    def openai(
        cls,
        *,
        api_key: str | None = None,
        base_url: str = DEFAULT_OPENAI_BASE_URL,
        limits: ProviderLimits = DEFAULT_LIMITS,
        name: str = "openai",
        prices: PriceTable | Mapping[str, ModelPrice] = DEFAULT_PRICES,
        shared: SharedLimits | None = None,
    ) -> Provider:
        """Return a provider speaking OpenAI Chat Completions.

        Args:
            api_key: The key; default `OPENAI_API_KEY` from the environment. Optional for
                other base URLs (a local vLLM or llama.cpp server needs none).
            base_url: The API root, `/chat/completions` is appended (`http://host:8000/v1`).
            limits: The account's limits.
            name: The name records and errors use.
            prices: What its models cost: a `PriceTable`, or a mapping of your own models'
                prices added to `DEFAULT_PRICES` (`{"my-model": ModelPrice(...)}`). A model
                with no price costs `None` ("unpriced"), never $0.
            shared: Limits shared with other workers through Redis (`SharedLimits`).

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
        return cls(
            name=name,
            format=OpenAIFormat(),
            base_url=base_url,
            limits=limits,
            api_key=key,
            prices=prices,
            shared=shared,
        )

    @classmethod
    def anthropic(
        cls,
        *,
        api_key: str | None = None,
        base_url: str = DEFAULT_ANTHROPIC_BASE_URL,
        limits: ProviderLimits = DEFAULT_LIMITS,
        name: str = "anthropic",
        prices: PriceTable | Mapping[str, ModelPrice] = DEFAULT_PRICES,
        shared: SharedLimits | None = None,
    ) -> Provider:
        """Return a provider speaking Anthropic Messages.

        Args:
            api_key: The key; default `ANTHROPIC_API_KEY` from the environment. Optional for
                other base URLs (a proxy that adds its own).
            base_url: The API root; `/v1/messages` is appended.
            limits: The account's limits.
            name: The name records and errors use.
            prices: What its models cost: a `PriceTable`, or a mapping of your own models'
                prices added to `DEFAULT_PRICES` (`{"my-model": ModelPrice(...)}`). A model
                with no price costs `None` ("unpriced"), never $0.
            shared: Limits shared with other workers through Redis (`SharedLimits`).

        Returns:
            The provider.

        Raises:
            LLMConfigError: If the base URL is Anthropic's and no key is given or set.
        """
        key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY")
        if key is None and base_url == DEFAULT_ANTHROPIC_BASE_URL:
            raise LLMConfigError("no Anthropic API key: set ANTHROPIC_API_KEY or pass `api_key=`")
        return cls(
            name=name,
            format=AnthropicFormat(),
            base_url=base_url,
            limits=limits,
            api_key=key,
            prices=prices,
            shared=shared,
        )

    @classmethod
    def simulated(
        cls,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        limits: ProviderLimits = DEFAULT_LIMITS,
        name: str = "simulated",
    ) -> Provider:
        """Return an offline provider: no key, any model name, answered in-process.

        Its requests go to `transport`, which answers like an OpenAI-compatible server, so
        a simulated call runs the very client code a real one does. Its prices are
        `SIMULATED_PRICES` (`sim-small` and `sim-large` are priced).

        Args:
            transport: The simulated server (keep it to read its `statistics()`); a new
                `SimulatedTransport()` if `None`. Any transport that speaks Chat Completions
                works, such as one that wraps a `SimulatedTransport` to inject failures.
            limits: The provider's limits.
            name: The name records and errors use.

        Returns:
            The provider; open a client with `open_llm_client(provider)`.
        """
        return cls(
            name=name,
            format=OpenAIFormat(),
            base_url=SIMULATED_BASE_URL,
            limits=limits,
            prices=SIMULATED_PRICES,
            transport=SimulatedTransport() if transport is None else transport,
        )

    def authorize(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Return a copy of `headers` with the API key applied as the wire format says.

        Args:
            headers: The request's other headers.

        Returns:
            The headers to send; unchanged (copied) when the provider has no key.
        """
        authorized = dict(headers)
        if self._api_key:
            authorized.update(self.format.authorization(self._api_key))
        return authorized

    @asynccontextmanager
    async def acquire(self, tokens: int) -> AsyncIterator[None]:
        """Wait for the per-minute budgets and a request slot; hold the slot for the block.

        Args:
            tokens: The request's token reservation (prompt estimate plus `max_tokens`).

        Yields:
            Nothing; send the request inside the block.

        Raises:
            LLMConfigError: If `tokens` exceeds the whole per-minute token budget (or the
                shared one).
        """
        async with self._throttle.request(tokens):
            if self.shared is None:
                yield
            else:
                async with self.shared.request(tokens):
                    yield

    def refund(self, tokens: int) -> None:
        """Return reserved tokens a request did not use to the per-minute token budget."""
        self._throttle.give_back_tokens(tokens)

    def statistics(self) -> ProviderStatistics:
        """Return the state of the provider's limits now (call inside `trio.run`)."""
        return self._throttle.statistics()

    def scrub(self, text: str, *, cut: bool = False) -> str:
        """Return `text` with the API key, plain or JSON-escaped, replaced by `[redacted]`.

        Scrub provider text where it enters the library, before anything quotes or cuts it.
        A key shorter than 8 characters is a placeholder (`EMPTY`, `ollama`), not a secret,
        and is left alone.

        Args:
            text: Text from the provider (a streamed line, a whole body).
            cut: Whether `text` is the start of a longer text that was not read; its end,
                which may hold the start of a key, is then dropped.

        Returns:
            The scrubbed text.
        """
        key = self._api_key
        if not key or self._key_pattern is None:
            return text
        if cut:
            text = text[: max(0, len(text) - _MAX_ESCAPE * len(key))]
        if "\\" in text:
            return self._key_pattern.sub(_REDACTED, text)
        return text.replace(key, _REDACTED)
