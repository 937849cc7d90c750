"""A server-sent events decoder, fed one line at a time.

It is synchronous on purpose: the client reads lines with `response.aiter_lines()` inside
`async with http.stream(...)`, so closing the stream (on cancellation, too) stays httpx's job
and no async generator of ours is left to finalise.
"""

from __future__ import annotations

import attrs

__all__ = ["SSEDecoder", "ServerSentEvent"]


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
