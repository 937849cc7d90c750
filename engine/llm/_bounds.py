"""How long to wait for an answer, and how much of one to read, derived from `max_tokens`.

A provider (or a wrong base URL, or a proxy in between) can hang, trickle, or send without
end. Each attempt is bounded three ways, all by `AnswerBounds`:

- **the first byte**: the response head, and a streamed answer's first line, must arrive
  within `first_byte` seconds of sending (a whole, non-streamed answer is only sent once it
  is generated, so it waits under the call's deadline instead);
- **between chunks**: once a stream has started, each chunk must follow the last within
  `between_chunks` seconds;
- **the answer's size**: at most `max_bytes(max_tokens)` bytes are read (after content
  decoding). A token is a few characters of text, but each one travels in its own stream
  event with some 100-300 bytes of JSON framing, so the bound allows `bytes_per_token`
  (1 KiB) per token plus a flat `bytes_margin` (1 MiB) for the head, usage and error
  events. An answer past the bound fails with `ProviderResponseError`; its reading stops
  there, so a misbehaving server cannot fill memory nor run up a bill of millions of tokens.

The whole call (every attempt and wait) ends by `deadline(max_tokens)`: `first_byte` plus
`seconds_per_token` (0.2 s: the slowest generation accepted is 5 tokens a second) per token
allowed, or sooner if `RetryPolicy.deadline` says so. With the defaults, a call allowing 64
tokens ends within 72.8 s, one allowing 1024 within 264.8 s, and every call within the
retry policy's 300 s.
"""

from __future__ import annotations

import attrs

from ._checks import at_least_one, positive

__all__ = ["DEFAULT_BOUNDS", "AnswerBounds"]


@attrs.frozen(kw_only=True)
class AnswerBounds:
    """Time and size bounds of one call's answer; see the module docstring for the defaults.

    Attributes:
        first_byte: Seconds to wait for the response head and a stream's first line.
        between_chunks: Seconds a started stream may stay silent.
        seconds_per_token: Seconds allowed per token of `max_tokens` in the call's deadline.
        bytes_per_token: Bytes of answer read per token of `max_tokens`.
        bytes_margin: Bytes of answer read on top of `bytes_per_token * max_tokens`.
    """

    first_byte: float = attrs.field(default=60.0, validator=positive)
    between_chunks: float = attrs.field(default=30.0, validator=positive)
    seconds_per_token: float = attrs.field(default=0.2, validator=positive)
    bytes_per_token: int = attrs.field(default=1024, validator=at_least_one)
    bytes_margin: int = attrs.field(default=1 << 20, validator=at_least_one)

    def max_bytes(self, max_tokens: int) -> int:
        """Return the most bytes read of an answer allowing `max_tokens` tokens.

        Args:
            max_tokens: The call's `max_tokens`.

        Returns:
            `bytes_per_token * max_tokens + bytes_margin`.
        """
        return self.bytes_per_token * max_tokens + self.bytes_margin

    def deadline(self, max_tokens: int) -> float:
        """Return the seconds a whole call allowing `max_tokens` tokens may take.

        Args:
            max_tokens: The call's `max_tokens`.

        Returns:
            `first_byte + seconds_per_token * max_tokens`.
        """
        return self.first_byte + self.seconds_per_token * max_tokens


#: The bounds clients use unless given others.
DEFAULT_BOUNDS = AnswerBounds()
