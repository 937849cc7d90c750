"""The Anthropic Messages wire format."""

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

__all__ = ["ANTHROPIC_VERSION", "DEFAULT_ANTHROPIC_BASE_URL", "AnthropicFormat"]

#: Anthropic's own API; `/v1/messages` is appended.
DEFAULT_ANTHROPIC_BASE_URL = "https://api.anthropic.com"
#: The `anthropic-version` header sent with every request.
ANTHROPIC_VERSION = "2023-06-01"


@attrs.frozen
class AnthropicFormat:
    """The `WireFormat` of Messages: `POST {base_url}/v1/messages`, an `x-api-key` header,
    a typed `event:` stream, system messages joined into the top-level `system` field.
    Tool results travel as `tool_result` blocks of a user turn. Messages has no schema mode,
    so an output schema is a tool the model is made to call (`tool_choice`), whose input is
    the answer: it arrives as a `ToolCall` named after the schema.

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
        tools: Sequence[ToolSpec] = (),
        output: OutputSchema | None = None,
    ) -> dict[str, Any]:
        # Anthropic takes instructions as a top-level field, not as a message.
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens,
            "messages": _messages(messages),
            "stream": stream,
        }
        if system:
            body["system"] = system
        if temperature is not None:
            body["temperature"] = temperature
        definitions = [
            {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
            for t in tools
        ]
        if output is not None:
            definitions.append(
                {
                    "name": output.name,
                    "description": "Give your answer by calling this tool with it as input.",
                    "input_schema": dict(output.schema),
                }
            )
            # With other tools offered the model may still need them first: it must call
            # some tool, not necessarily the answer's.
            body["tool_choice"] = (
                {"type": "any"} if tools else {"type": "tool", "name": output.name}
            )
        if definitions:
            body["tools"] = definitions
        return body

    def read_body(self, data: Any, progress: Progress) -> None:
        try:
            for index, block in enumerate(data["content"]):
                if block.get("type") == "text":
                    progress.add_text(block["text"])
                elif block.get("type") == "tool_use":
                    progress.add_tool_call(
                        index,
                        id=block["id"],
                        name=block["name"],
                        arguments=json.dumps(block.get("input") or {}),
                    )
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
        elif kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                progress.add_tool_call(_index(data), id=block.get("id"), name=block.get("name"))
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                progress.add_text(delta.get("text") or "")
            elif delta.get("type") == "input_json_delta":
                progress.add_tool_call(_index(data), arguments=delta.get("partial_json") or "")
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


def _index(data: dict[str, Any]) -> int:
    index = data.get("index")
    if not isinstance(index, int):
        raise ProviderResponseError(f"a content block event without an `index`: {data!r:.200}")
    return index


def _messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The conversation as Messages wants it: tool calls as `tool_use` blocks, and each run
    of tool results as one user turn of `tool_result` blocks (turns must alternate)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": message.content,
            }
            if message.is_error:
                block["is_error"] = True
            last = out[-1] if out else None
            if last is not None and last["role"] == "user" and isinstance(last["content"], list):
                last["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif message.tool_calls:
            blocks: list[dict[str, Any]] = []
            if message.content:
                blocks.append({"type": "text", "text": message.content})
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": _input(c.arguments_json)}
                for c in message.tool_calls
            ]
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": message.role, "content": message.content})
    return out


def _input(arguments_json: str) -> Any:
    # A call the model wrote with broken JSON goes back as it was, under a key that says so.
    try:
        return json.loads(arguments_json) if arguments_json.strip() else {}
    except ValueError:
        return {"invalid_json": arguments_json}
