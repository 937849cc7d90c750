"""What a wire format provides, and what a response has delivered so far.

A wire format (`_openai.py`, `_anthropic.py`) builds a request and reads answers into a
`Progress`; the client does the HTTP, retries and accounting, identically for both.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import trio

from ._errors import ProviderResponseError
from ._usage import Usage, estimate_tokens

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._messages import Message
    from ._sse import ServerSentEvent

__all__ = ["Progress", "WireFormat", "load_json"]


@attrs.define(eq=False)
class Progress:
    """What one attempt's response has delivered: text, counts the provider sent, the end."""

    parts: list[str] = attrs.field(factory=list)
    chars: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None
    done: bool = False
    first_token_at: float | None = None

    def add_text(self, text: str) -> None:
        if not text:
            return
        if self.first_token_at is None:
            self.first_token_at = trio.current_time()
        self.parts.append(text)
        self.chars += len(text)

    def text(self) -> str:
        return "".join(self.parts)

    def usage(self, prompt_estimate: int, *, partial: bool) -> Usage:
        """Return the usage to bill, estimating what the provider did not report."""
        estimated = False
        input_tokens = self.input_tokens
        if input_tokens is None:
            input_tokens = prompt_estimate
            estimated = True
        output_tokens = self.output_tokens
        if output_tokens is None or partial:
            # A stream cut short may carry a stale count (Anthropic sends its count at the
            # start and the end); the text received is then the better lower bound.
            from_text = estimate_tokens(self.text())
            if output_tokens is None or from_text > output_tokens:
                output_tokens = from_text
                estimated = True
        return Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            partial=partial,
            estimated=estimated,
        )


class WireFormat(Protocol):
    """One provider API: request building and response reading."""

    @property
    def name(self) -> str:
        """The API's name, for messages."""

    def url(self, base_url: str) -> str:
        """Return the completion endpoint under `base_url`."""

    def headers(self, api_key: str | None) -> dict[str, str]:
        """Return the request headers, authentication included."""

    def body(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        max_tokens: int,
        stream: bool,
        temperature: float | None,
    ) -> dict[str, Any]:
        """Return the JSON request body."""

    def read_body(self, data: Any, progress: Progress) -> None:
        """Read a whole (non-streamed) response body into `progress`."""

    def read_event(self, event: ServerSentEvent, progress: Progress) -> None:
        """Read one stream event into `progress`; set `progress.done` at the stream's end."""

    def error_message(self, data: Any) -> str | None:
        """Return the provider's message from an error body, if it has one."""


def load_json(text: str, *, what: str) -> Any:
    """Parse `text` as JSON, or raise `ProviderResponseError` naming `what` it was."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ProviderResponseError(
            f"the {what} is not JSON ({text[:80]!r}); check the base URL points at the API"
        ) from exc
