"""Token usage of a call, and how tokens are estimated when the provider never said.

Providers report usage at the end of an answer (OpenAI's last stream chunk) or in pieces
(Anthropic's `message_start` and `message_delta` events). A call cut short may never get that
report, yet the provider bills it: the prompt was read and the tokens sent so far were
generated. The client then estimates, with the rule of thumb OpenAI documents for English: one
token per 4 characters (rounded up), plus 4 tokens of framing per chat message. Estimated usage
says so (`Usage.estimated`), so a report can tell measured from guessed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._messages import Message

__all__ = [
    "CHARS_PER_TOKEN",
    "TOKENS_PER_MESSAGE",
    "Usage",
    "estimate_prompt_tokens",
    "estimate_tokens",
]

#: Characters per token assumed when a provider sent no count (OpenAI's English average).
CHARS_PER_TOKEN = 4
#: Tokens of role and separator framing assumed per chat message.
TOKENS_PER_MESSAGE = 4

_count = [attrs.validators.instance_of(int), attrs.validators.ge(0)]


@attrs.frozen(kw_only=True)
class Usage:
    """Tokens a call used, as the provider bills them.

    Attributes:
        input_tokens: Prompt tokens.
        output_tokens: Generated tokens.
        partial: The call was cut short (cancelled, failed mid-stream): these are the tokens
            sent and received before it stopped, which the provider bills even though no
            answer came back.
        estimated: At least one count is estimated from text (see `estimate_tokens`) because
            the provider sent no count.
    """

    input_tokens: int = attrs.field(default=0, validator=_count)
    output_tokens: int = attrs.field(default=0, validator=_count)
    partial: bool = False
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        """Return the sum; partial or estimated if either part is."""
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            partial=self.partial or other.partial,
            estimated=self.estimated or other.estimated,
        )


def estimate_tokens(text: str) -> int:
    """Return an estimate of the tokens in `text`: one per `CHARS_PER_TOKEN` characters, rounded up.

    Args:
        text: Any text.

    Returns:
        The estimate; 0 for an empty string.
    """
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_prompt_tokens(messages: Iterable[Message]) -> int:
    """Return an estimate of a prompt's tokens: each message's text plus `TOKENS_PER_MESSAGE`.

    Args:
        messages: The prompt's messages.

    Returns:
        The estimate.
    """
    return sum(estimate_tokens(message.content) + TOKENS_PER_MESSAGE for message in messages)
