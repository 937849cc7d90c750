"""The server-sent events decoder."""

from __future__ import annotations

import pytest
from specroute.engine.llm._sse import LineSplitter, ServerSentEvent, SSEDecoder


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


@pytest.mark.parametrize("size", [1, 2, 3, 7, 100])
def test_lines_split_alike_however_the_text_is_chunked(size: int) -> None:
    text = "a\r\nb\rc\nd\r\n\r\ne"
    splitter = LineSplitter()
    lines = []
    for start in range(0, len(text), size):
        lines += splitter.feed(text[start : start + size])
    assert lines == ["a", "b", "c", "d", ""]
    assert splitter.flush() == "e"
    assert splitter.flush() is None
