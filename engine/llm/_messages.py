"""Chat messages: the provider-neutral input of every call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, TypeAlias, cast

import attrs

__all__ = ["Message", "MessageLike", "Role", "as_messages"]

#: Who speaks in a message. Anthropic takes `system` messages as its top-level `system` field.
Role: TypeAlias = Literal["system", "user", "assistant"]

_ROLES: frozenset[str] = frozenset(("system", "user", "assistant"))


@attrs.frozen(kw_only=True)
class Message:
    """One chat message.

    Attributes:
        role: `"system"`, `"user"` or `"assistant"`.
        content: The message text.
    """

    role: Role = attrs.field(validator=attrs.validators.in_(_ROLES))
    content: str = attrs.field(validator=attrs.validators.instance_of(str))

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
