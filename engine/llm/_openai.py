"""The OpenAI Chat Completions wire format (OpenAI, vLLM, llama.cpp server, Ollama, ...)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import attrs

from ._errors import ProviderResponseError
from ._sse import SSEDecoder
from ._wire import Progress, load_json

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._messages import Message
    from ._sse import ServerSentEvent
    from ._toolspec import OutputSchema, ToolSpec

__all__ = ["DEFAULT_OPENAI_BASE_URL", "OpenAIFormat"]

#: OpenAI's own API; any server with `/chat/completions` under its base URL works.
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"


@attrs.frozen
class OpenAIFormat:
    """The `WireFormat` of Chat Completions: `POST {base_url}/chat/completions`, a bearer key,
    `data:` chunks ending with `[DONE]`, usage asked for with `stream_options.include_usage`.
    Tools are `function` tools; an output schema is `response_format: json_schema`.

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
        tools: Sequence[ToolSpec] = (),
        output: OutputSchema | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": [_message(m) for m in messages],
            "max_tokens": max_tokens,
            "stream": stream,
        }
        if stream:
            # Without this, a stream carries no token counts at all.
            body["stream_options"] = {"include_usage": True}
        if temperature is not None:
            body["temperature"] = temperature
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": dict(tool.parameters),
                    },
                }
                for tool in tools
            ]
        if output is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": output.name,
                    "schema": dict(output.schema),
                    "strict": output.strict,
                },
            }
        return body

    def read_body(self, data: Any, progress: Progress) -> None:
        try:
            choice = data["choices"][0]
            progress.add_text(choice["message"].get("content") or "")
            for index, call in enumerate(choice["message"].get("tool_calls") or ()):
                function = call["function"]
                progress.add_tool_call(
                    index,
                    id=call["id"],
                    name=function["name"],
                    arguments=function.get("arguments") or "",
                )
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
            for call in delta.get("tool_calls") or ():
                _read_tool_delta(call, progress)
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


def _message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    data: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        # An assistant turn that only called tools has no text: OpenAI wants `null` there.
        data["content"] = message.content or None
        data["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json},
            }
            for call in message.tool_calls
        ]
    return data


def _read_tool_delta(call: Any, progress: Progress) -> None:
    if not isinstance(call, dict) or not isinstance(call.get("index"), int):
        raise ProviderResponseError(
            f"a streamed tool call without an `index`: {json.dumps(call)[:200]}"
        )
    function = call.get("function") or {}
    progress.add_tool_call(
        call["index"],
        id=call.get("id"),
        name=function.get("name"),
        arguments=function.get("arguments") or "",
    )
