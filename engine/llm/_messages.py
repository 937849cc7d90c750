"""Chat messages: the provider-neutral input of every call, tool calls and results included."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TypeAlias, cast

import attrs

__all__ = ["Message", "MessageLike", "Role", "ToolCall", "as_messages"]

#: Who speaks in a message. Anthropic takes `system` messages as its top-level `system` field;
#: a `tool` message carries a tool's result back to the model.
Role: TypeAlias = Literal["system", "user", "assistant", "tool"]

_ROLES: frozenset[str] = frozenset(("system", "user", "assistant"))
_ALL_ROLES: frozenset[str] = _ROLES | {"tool"}


@attrs.frozen(kw_only=True)
class ToolCall:
    """One tool call the model made.

    Attributes:
        id: The provider's id for the call; the tool's result is sent back under it.
        name: The tool called.
        arguments_json: The arguments as the model wrote them (JSON text, possibly invalid:
            `arguments()` parses it).
    """

    id: str
    name: str
    arguments_json: str

    def arguments(self) -> Any:
        """Return the arguments parsed from JSON (`{}` for an empty string).

        Raises:
            ValueError: The model wrote arguments that are not JSON.
        """
        text = self.arguments_json.strip()
        return json.loads(text) if text else {}


def _tuple_of_calls(calls: Iterable[ToolCall]) -> tuple[ToolCall, ...]:
    return tuple(calls)


@attrs.frozen(kw_only=True)
class Message:
    """One chat message.

    Attributes:
        role: `"system"`, `"user"`, `"assistant"` or `"tool"`.
        content: The message text.
        tool_calls: The tool calls of an assistant message (the model's earlier turn).
        tool_call_id: The call a `tool` message answers.
        is_error: A `tool` message reports the tool's failure.
    """

    role: Role = attrs.field(validator=attrs.validators.in_(_ALL_ROLES))
    content: str = attrs.field(validator=attrs.validators.instance_of(str))
    tool_calls: tuple[ToolCall, ...] = attrs.field(default=(), converter=_tuple_of_calls)
    tool_call_id: str | None = None
    is_error: bool = False

    def __attrs_post_init__(self) -> None:
        if self.tool_calls and self.role != "assistant":
            raise ValueError(f"only an assistant message has `tool_calls`, got role {self.role!r}")
        if (self.role == "tool") != (self.tool_call_id is not None):
            raise ValueError(
                "a `tool` message needs the `tool_call_id` it answers, and only it has one;"
                " make it with `Message.tool_result(call, text)`"
            )

    @classmethod
    def system(cls, content: str) -> Message:
        """Return a system message (instructions for the model)."""
        return cls(role="system", content=content)

    @classmethod
    def user(cls, content: str) -> Message:
        """Return a user message."""
        return cls(role="user", content=content)

    @classmethod
    def assistant(cls, content: str) -> Message:
        """Return an assistant message (an earlier answer of the model)."""
        return cls(role="assistant", content=content)

    @classmethod
    def tool_result(cls, call: ToolCall, content: str, *, is_error: bool = False) -> Message:
        """Return the message that sends a tool's result (or failure) back to the model.

        Args:
            call: The model's call that the result answers.
            content: The result, as text (JSON, usually).
            is_error: The tool failed and `content` says how.

        Returns:
            The message.
        """
        return cls(role="tool", content=content, tool_call_id=call.id, is_error=is_error)


#: What `complete` accepts: a `Message` or an OpenAI-style `{"role": ..., "content": ...}`.
MessageLike: TypeAlias = Message | Mapping[str, str]


def as_messages(messages: str | Sequence[MessageLike]) -> tuple[Message, ...]:
    """Return `messages` as a tuple of `Message`; a plain string is one user message.

    Args:
        messages: A string, or a sequence of `Message` or role/content mappings.

    Returns:
        The messages, validated.

    Raises:
        ValueError: If there is no message, or a mapping lacks `role` or `content`.
    """
    if isinstance(messages, str):
        return (Message.user(messages),)
    result: list[Message] = []
    for item in messages:
        if isinstance(item, Message):
            result.append(item)
            continue
        if "role" not in item or "content" not in item:
            raise ValueError(
                f"each message must be a `Message` or have `role` and `content`, got {item!r}"
            )
        role = item["role"]
        if role not in _ROLES:
            raise ValueError(f"`role` must be one of {sorted(_ROLES)}, got {role!r}")
        result.append(Message(role=cast("Role", role), content=item["content"]))
    if not result:
        raise ValueError("`messages` must hold at least one message, got none")
    return tuple(result)
