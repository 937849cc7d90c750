"""The OpenAI Chat Completions wire format (OpenAI, vLLM, llama.cpp server, Ollama, ...)."""

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

__all__ = ["DEFAULT_OPENAI_BASE_URL", "OpenAIFormat"]

#: OpenAI's own API; any server with `/chat/completions` under its base URL works.
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"


@attrs.frozen
class OpenAIFormat:
    """The `WireFormat` of Chat Completions: `POST {base_url}/chat/completions`, a bearer key,
    `data:` chunks ending with `[DONE]`, usage asked for with `stream_options.include_usage`.

    Attributes:
        name: The API's name, for messages.
    """

    name: str = "OpenAI Chat Completions"

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/chat/completions"

    def headers(self) -> dict[str, str]:
        return {"content-type": "application/json", "accept": "application/json"}

    def authorization(self, api_key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"}

    def body(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        max_tokens: int,
        stream: bool,
        temperature: float | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_tokens,
            "stream": stream,
        }
        if stream:
            # Without this, a stream carries no token counts at all.
            body["stream_options"] = {"include_usage": True}
        if temperature is not None:
            body["temperature"] = temperature
        return body

    def read_body(self, data: Any, progress: Progress) -> None:
        try:
            choice = data["choices"][0]
            progress.add_text(choice["message"].get("content") or "")
            progress.finish_reason = choice.get("finish_reason")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ProviderResponseError(
                f"a Chat Completions response without `choices[0].message`: {str(data)[:200]}"
            ) from exc
        self.read_usage(data.get("usage"), progress)
        progress.done = True

    def stream_decoder(self) -> SSEDecoder:
        return SSEDecoder()

    def read_event(self, event: ServerSentEvent, progress: Progress) -> None:
        if event.data == "[DONE]":
            progress.done = True
            return
        data = load_json(event.data, what="stream chunk")
        if not isinstance(data, dict):
            raise ProviderResponseError(
                f"a stream chunk that is not an object: {event.data[:200]!r}"
            )
        if "error" in data:
            message = self.error_message(data) or str(data)[:200]
            raise ProviderResponseError(f"the stream carried an error: {message}")
        for choice in data.get("choices") or ():
            delta = choice.get("delta") or {}
            progress.add_text(delta.get("content") or "")
            if choice.get("finish_reason"):
                progress.finish_reason = choice["finish_reason"]
        self.read_usage(data.get("usage"), progress)

    def read_usage(self, usage: Any, progress: Progress) -> None:
        if isinstance(usage, dict):
            progress.report_usage(
                input_tokens=usage.get("prompt_tokens"),
                output_tokens=usage.get("completion_tokens"),
            )

    def error_message(self, data: Any) -> str | None:
        if isinstance(data, dict):
            error = data.get("error")
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                return str(error["message"])
            if isinstance(error, str):
                return error
        return None
