"""The Anthropic Messages wire format."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from ._errors import ProviderResponseError
from ._sse import SSEDecoder
from ._wire import Progress, load_json

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._messages import Message
    from ._sse import ServerSentEvent

__all__ = ["ANTHROPIC_VERSION", "DEFAULT_ANTHROPIC_BASE_URL", "AnthropicFormat"]

#: Anthropic's own API; `/v1/messages` is appended.
DEFAULT_ANTHROPIC_BASE_URL = "https://api.anthropic.com"
#: The `anthropic-version` header sent with every request.
ANTHROPIC_VERSION = "2023-06-01"


@attrs.frozen
class AnthropicFormat:
    """The `WireFormat` of Messages: `POST {base_url}/v1/messages`, an `x-api-key` header,
    a typed `event:` stream, system messages joined into the top-level `system` field.

    Attributes:
        name: The API's name, for messages.
    """

    name: str = "Anthropic Messages"

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/v1/messages"

    def headers(self) -> dict[str, str]:
        return {
            "content-type": "application/json",
            "accept": "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
        }

    def authorization(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key}

    def body(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        max_tokens: int,
        stream: bool,
        temperature: float | None,
    ) -> dict[str, Any]:
        # Anthropic takes instructions as a top-level field, not as a message.
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens,
            "messages": [
                {"role": m.role, "content": m.content} for m in messages if m.role != "system"
            ],
            "stream": stream,
        }
        if system:
            body["system"] = system
        if temperature is not None:
            body["temperature"] = temperature
        return body

    def read_body(self, data: Any, progress: Progress) -> None:
        try:
            for block in data["content"]:
                if block.get("type") == "text":
                    progress.add_text(block["text"])
            progress.finish_reason = data.get("stop_reason")
        except (KeyError, TypeError, AttributeError) as exc:
            raise ProviderResponseError(
                f"a Messages response without `content` blocks: {str(data)[:200]}"
            ) from exc
        self.read_usage(data.get("usage"), progress)
        progress.done = True

    def stream_decoder(self) -> SSEDecoder:
        return SSEDecoder()

    def read_event(self, event: ServerSentEvent, progress: Progress) -> None:
        if event.event == "ping":
            return
        data = load_json(event.data, what="stream event")
        if not isinstance(data, dict):
            raise ProviderResponseError(
                f"a stream event that is not an object: {event.data[:200]!r}"
            )
        kind = data.get("type", event.event)
        if kind == "message_start":
            message = data.get("message") or {}
            self.read_usage(message.get("usage"), progress)
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                progress.add_text(delta.get("text") or "")
        elif kind == "message_delta":
            progress.finish_reason = (data.get("delta") or {}).get("stop_reason")
            self.read_usage(data.get("usage"), progress)
        elif kind == "message_stop":
            progress.done = True
        elif kind == "error":
            message = self.error_message(data) or str(data)[:200]
            raise ProviderResponseError(f"the stream carried an error: {message}")

    def read_usage(self, usage: Any, progress: Progress) -> None:
        if isinstance(usage, dict):
            progress.report_usage(
                input_tokens=usage.get("input_tokens"), output_tokens=usage.get("output_tokens")
            )

    def error_message(self, data: Any) -> str | None:
        if isinstance(data, dict):
            error = data.get("error")
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                return str(error["message"])
        return None
