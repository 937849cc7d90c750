"""The server-sent events decoder."""

from __future__ import annotations

from specroute.engine.llm._sse import ServerSentEvent, SSEDecoder


def feed(*lines: str) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [event for line in lines if (event := decoder.feed(line)) is not None]
    last = decoder.flush()
    return [*events, last] if last is not None else events


def test_events_fields_comments_and_line_endings() -> None:
    assert feed(
        ": keep-alive",
        "event: message_start",
        'data: {"a":',
        "data:1}\r",
        "",
        "",
        "data: [DONE]",
        "",
    ) == [
        ServerSentEvent(event="message_start", data='{"a":\n1}'),
        ServerSentEvent(event="message", data="[DONE]"),
    ]


def test_unterminated_event_is_flushed() -> None:
    assert feed("id: 3", "data: tail") == [ServerSentEvent(event="message", data="tail")]
