"""A server-sent events decoder, fed one line at a time.

It is synchronous on purpose: the client reads lines with `response.aiter_lines()` inside
`async with http.stream(...)`, so closing the stream (on cancellation, too) stays httpx's job
and no async generator of ours is left to finalise.
"""

from __future__ import annotations

import attrs

__all__ = ["LineSplitter", "SSEDecoder", "ServerSentEvent"]


@attrs.frozen(kw_only=True)
class ServerSentEvent:
    """One event: its `event:` name (`"message"` if none) and its `data:` lines joined."""

    event: str
    data: str


@attrs.define(eq=False)
class SSEDecoder:
    """Turns lines (without their line ending) into events, per the WHATWG rules that matter."""

    _event: str = attrs.field(init=False, default="")
    _data: list[str] = attrs.field(init=False, factory=list)

    def feed(self, line: str) -> ServerSentEvent | None:
        """Take one line; return the event a blank line completes, else `None`."""
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        return None

    def flush(self) -> ServerSentEvent | None:
        """Return an event left without its closing blank line when the stream ended."""
        return self._dispatch()

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data and not self._event:
            return None
        event = ServerSentEvent(event=self._event or "message", data="\n".join(self._data))
        self._event = ""
        self._data = []
        return event


@attrs.define(eq=False)
class LineSplitter:
    """Cuts text, fed in chunks as it arrives, into lines, per the SSE rules.

    A line ends at `\\r\\n`, `\\n` or `\\r`; the ending is dropped. A `\\r` at a chunk's end
    waits for the next chunk, which may start with its `\\n`.
    """

    # The unfinished line's pieces: joined only once a line ending arrives, so a long line
    # sent in many chunks costs linear, not quadratic, time.
    _pending: list[str] = attrs.field(init=False, factory=list)

    def feed(self, text: str) -> list[str]:
        """Take the next chunk of text; return the lines it completes."""
        if "\n" not in text and "\r" not in text:
            if text:
                self._pending.append(text)
            return []
        text = "".join(self._pending) + text
        self._pending = []
        held = ""
        if text.endswith("\r"):
            # Its `\n` may start the next chunk.
            text, held = text[:-1], "\r"
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        rest = lines.pop() + held
        if rest:
            self._pending.append(rest)
        return lines

    def flush(self) -> str | None:
        """Return the text after the last line ending, if any, when the answer has ended."""
        rest = "".join(self._pending).removesuffix("\r")
        self._pending = []
        return rest or None
