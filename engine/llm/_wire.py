"""The wire-format protocol: what a provider's API must do, and what a response has delivered.

A wire format turns one call into a request (URL, headers, JSON body), applies an API key to
headers, and reads answers into a `Progress`: a whole body, or a stream's lines through the
format's `StreamDecoder`. The client does the HTTP, retries, limits and accounting, identically
for every format. `OpenAIFormat` (`_openai.py`) and `AnthropicFormat` (`_anthropic.py`) are the
two shipped; a new API is one module with a class that has these methods, handed to
`Provider(name=..., format=MyFormat(), base_url=...)`.

A format is stateless (the same object serves every call at once) and never holds the key: the
provider passes it to `authorization` when it builds a request, and nowhere else.
"""

from __future__ import annotations

import inspect
import json
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import trio

from ._errors import LLMConfigError, ProviderResponseError
from ._messages import ToolCall
from ._usage import Usage, estimate_tokens

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._messages import Message
    from ._sse import ServerSentEvent
    from ._toolspec import OutputSchema, ToolSpec

__all__ = ["Progress", "StreamDecoder", "WireFormat", "check_body_takes", "load_json"]


@attrs.define(eq=False)
class Progress:
    """What one attempt's response has delivered so far; a wire format writes into it.

    Attributes:
        parts: The text received, in pieces (add with `add_text`).
        chars: Characters received.
        input_tokens: The prompt's tokens as the provider reported them (`None`: not yet).
        output_tokens: The generated tokens as the provider reported them (`None`: not yet).
        finish_reason: Why generation stopped, as the provider said (`"stop"`, `"length"`).
        done: Whether the answer's final event (or the whole body) has been read; an answer
            that ends without it is a connection cut short.
        first_token_at: `trio.current_time()` when the first text arrived.
        started: Whether a stream's first line has arrived and reads as an event stream.
        received: Bytes of the answer received (after content decoding).
        tool_parts: The tool calls received so far, by the index the provider gave them
            (add with `add_tool_call`; read with `tool_calls`).
    """

    parts: list[str] = attrs.field(factory=list)
    chars: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None
    done: bool = False
    first_token_at: float | None = None
    started: bool = False
    received: int = 0
    tool_parts: dict[int, _ToolCallParts] = attrs.field(factory=dict)

    def add_tool_call(
        self, index: int, *, id: str | None = None, name: str | None = None, arguments: str = ""
    ) -> None:
        """Add to tool call `index`: its id and name when they arrive, and argument text.

        A stream sends a call's id and name once and its JSON arguments in pieces; a whole
        body sends everything at once. Both land here.
        """
        parts = self.tool_parts.setdefault(index, _ToolCallParts())
        if id:
            parts.id = id
        if name:
            parts.name = name
        if arguments:
            if self.first_token_at is None:
                self.first_token_at = trio.current_time()
            parts.arguments.append(arguments)
            self.chars += len(arguments)

    def tool_calls(self) -> tuple[ToolCall, ...]:
        """Return the tool calls received, in the provider's order."""
        return tuple(
            ToolCall(id=parts.id, name=parts.name, arguments_json="".join(parts.arguments))
            for _, parts in sorted(self.tool_parts.items())
        )

    def add_text(self, text: str) -> None:
        """Append generated `text` (empty text is ignored)."""
        if not text:
            return
        if self.first_token_at is None:
            self.first_token_at = trio.current_time()
        self.parts.append(text)
        self.chars += len(text)

    def report_usage(self, *, input_tokens: object, output_tokens: object) -> None:
        """Take the token counts a provider sent; a count that is not an int is ignored.

        Args:
            input_tokens: The prompt's tokens, as found in the answer (may be missing/`None`).
            output_tokens: The generated tokens, as found in the answer.
        """
        if isinstance(input_tokens, int) and not isinstance(input_tokens, bool):
            self.input_tokens = input_tokens
        if isinstance(output_tokens, int) and not isinstance(output_tokens, bool):
            self.output_tokens = output_tokens

    def text(self) -> str:
        """Return the text received so far."""
        return "".join(self.parts)

    def usage(self, prompt_estimate: int, *, partial: bool) -> Usage:
        """Return the usage to bill, estimating what the provider did not report.

        Args:
            prompt_estimate: The client's estimate of the prompt's tokens.
            partial: Whether the answer was cut short (then the text received bounds the
                output from below).

        Returns:
            The usage, marked `estimated` if any count is the client's.
        """
        estimated = False
        input_tokens = self.input_tokens
        if input_tokens is None:
            input_tokens = prompt_estimate
            estimated = True
        output_tokens = self.output_tokens
        if output_tokens is None or partial:
            # A stream cut short may carry a stale count (Anthropic sends its count at the
            # start and the end); the text received is then the better lower bound.
            # Tool-call arguments are generated tokens too.
            arguments = "".join("".join(p.arguments) for p in self.tool_parts.values())
            from_text = estimate_tokens(self.text() + arguments)
            if output_tokens is None or from_text > output_tokens:
                output_tokens = from_text
                estimated = True
        return Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            partial=partial,
            estimated=estimated,
        )


@attrs.define(eq=False)
class _ToolCallParts:
    id: str = ""
    name: str = ""
    arguments: list[str] = attrs.field(factory=list)


class StreamDecoder(Protocol):
    """Cuts a streamed answer, fed one line at a time, into events (`SSEDecoder` is one)."""

    def feed(self, line: str) -> ServerSentEvent | None:
        """Take one line (without its line ending); return the event it completes, if any."""
        ...

    def flush(self) -> ServerSentEvent | None:
        """Return an event left incomplete when the stream ended, if any."""
        ...


class WireFormat(Protocol):
    """One provider API: how to build its requests and read its answers.

    Implementations must be stateless and must not keep the API key they are given.
    """

    @property
    def name(self) -> str:
        """The API's name, for messages (`"OpenAI Chat Completions"`)."""
        ...

    def url(self, base_url: str) -> str:
        """Return the completion endpoint under `base_url`."""
        ...

    def headers(self) -> dict[str, str]:
        """Return the request headers without authentication (content type, API version)."""
        ...

    def authorization(self, api_key: str) -> dict[str, str]:
        """Return the headers that carry `api_key` (`{"authorization": "Bearer ..."}`)."""
        ...

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
        """Return the JSON request body for one call.

        The client passes `tools` and `output` only to calls that use them, so a format that
        supports neither may leave them out of its signature.

        Args:
            messages: The prompt.
            model: The model asked for.
            max_tokens: The cap on generated tokens.
            stream: Whether to ask for a streamed answer.
            temperature: The sampling temperature (`None`: the provider's default).
            tools: The tools the model may call (read its calls into `Progress.add_tool_call`).
            output: The schema the answer must fit, asked for in the API's own way.

        Returns:
            The body, sent as JSON.
        """
        ...

    def stream_decoder(self) -> StreamDecoder:
        """Return a fresh decoder for one streamed answer's lines."""
        ...

    def read_body(self, data: Any, progress: Progress) -> None:
        """Read a whole (non-streamed) response body into `progress` and set `progress.done`.

        Raises:
            ProviderResponseError: The body is not what the format promises.
        """
        ...

    def read_event(self, event: ServerSentEvent, progress: Progress) -> None:
        """Read one stream event into `progress`; set `progress.done` at the stream's end.

        Raises:
            ProviderResponseError: The event is malformed or carries an error.
        """
        ...

    def read_usage(self, usage: Any, progress: Progress) -> None:
        """Read a usage object of the format (from a body or an event) into `progress`."""
        ...

    def error_message(self, data: Any) -> str | None:
        """Return the provider's own message from an error body, if it has one."""
        ...


def load_json(text: str, *, what: str) -> Any:
    """Parse `text` as JSON, or raise `ProviderResponseError` naming `what` it was.

    Args:
        text: The text to parse.
        what: What the text is, for the message (`"stream chunk"`).

    Returns:
        The parsed value.

    Raises:
        ProviderResponseError: `text` is not JSON.
    """
    try:
        return json.loads(text)
    except ValueError as exc:
        # `text` was scrubbed where it entered the library, so quoting its start is safe.
        raise ProviderResponseError(
            f"the {what} is not JSON ({text[:80]!r}); check the base URL points at the API"
        ) from exc


def check_body_takes(wire: WireFormat, names: Sequence[str]) -> None:
    """Refuse a call that needs body arguments (`tools`, `output`) its format does not take.

    Raises:
        LLMConfigError: Naming the format and the arguments it lacks.
    """
    parameters = inspect.signature(wire.body).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    missing = [name for name in names if name not in parameters]
    if missing:
        listed = ", ".join(f"`{name}`" for name in missing)
        raise LLMConfigError(
            f"the {wire.name} format does not take {listed}: its `body` has no such argument;"
            " add it (see `WireFormat.body`) or call without it"
        )
