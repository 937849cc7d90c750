"""Streams between steps: one producer's items, read live by any number of readers.

A streamed step (an `async def` that yields) publishes each item to a `Stream`. The
stream keeps every item: the step's whole value is made from them when it ends, and a
reader that starts late (it waited on another input) replays what it missed, then reads
live. Each reader has its own cursor; the producer may run at most `buffer` items ahead
of the slowest reader that is *iterating* (backpressure). A reader that has not started
iterating, or has finished (its step ended), never holds the producer back, so no
combination of readers can deadlock: the producer waits only on readers inside an
`async for` over the stream, and they wait on nothing but the producer.

A stream ends complete (`finish`) or not at all: a producer that fails or is cancelled
`abort`s it, and every reader then raises `StreamAbortedError` at the point it reached,
never seeing a truncated stream as complete.
"""

from __future__ import annotations

import contextlib
import functools
from typing import TYPE_CHECKING, Any

import trio
from specroute.routes import RunError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

__all__ = [
    "DEFAULT_STREAM_BUFFER",
    "STREAM_WAITS",
    "Stream",
    "StreamAbortedError",
    "StreamReader",
    "reading_streams",
    "stream_name",
]

DEFAULT_STREAM_BUFFER = 64
"""Items a streamed step may run ahead of its slowest iterating reader."""

# Seconds each task's reading step spent waiting for stream items, left here by the step
# (`reading_streams`) for the engine to record: a reader's own work is its time less this.
STREAM_WAITS: dict[trio.lowlevel.Task, float] = {}


def stream_name(value: str) -> str:
    """The internal name a streamed step's live stream is written under (not an identifier,
    so it never clashes with a value a user names)."""
    return f"{value}:stream"


class StreamAbortedError(RunError):
    """The stream a step was reading ended without completing: its producer failed or was
    cancelled. The reader's own step fails with it (never with a truncated stream)."""


class Stream:
    """The live items of one streamed step execution (the engine's side)."""

    __slots__ = (
        "buffer",
        "done",
        "error",
        "first_at",
        "items",
        "more",
        "positions",
        "room",
        "step",
    )

    def __init__(self, step: str, buffer: int = DEFAULT_STREAM_BUFFER) -> None:
        self.step = step
        self.buffer = buffer
        self.items: list[Any] = []
        self.first_at: float | None = None  # when the first item came
        self.done = False
        self.error: BaseException | None = None
        # Made only while someone waits: readers for an item or the end (`more`), the
        # producer for the slowest reader to move on (`room`).
        self.more: trio.Event | None = None
        self.room: trio.Event | None = None
        # Cursor -> how many items it has taken, for the cursors now iterating.
        self.positions: dict[object, int] = {}

    @classmethod
    def complete(cls, step: str, items: Sequence[Any]) -> Stream:
        """A stream that is already over: a replay (a cache hit, a fallback)."""
        stream = cls(step)
        stream.items = list(items)
        stream.first_at = trio.current_time() if stream.items else None
        stream.done = True
        return stream

    def _wake_readers(self) -> None:
        if self.more is not None:
            self.more.set()
            self.more = None

    def wake_producer(self) -> None:
        if self.room is not None:
            self.room.set()
            self.room = None

    async def wait_for_more(self) -> None:
        if self.more is None:
            self.more = trio.Event()
        await self.more.wait()

    async def publish(self, item: Any) -> None:
        """Add an item; wait while the slowest iterating reader is `buffer` items behind."""
        if not self.items:
            self.first_at = trio.current_time()
        self.items.append(item)
        self._wake_readers()
        # Let readers that just became ready start iterating before the next item: a
        # producer that never waits on anything else must still feel their pace.
        await trio.lowlevel.checkpoint()
        while self.positions and len(self.items) - min(self.positions.values()) > self.buffer:
            if self.room is None:
                self.room = trio.Event()
            await self.room.wait()

    def finish(self) -> None:
        self.done = True
        self._wake_readers()

    def abort(self, error: BaseException) -> None:
        if not self.done and self.error is None:
            self.error = error
            self._wake_readers()

    def reader(self) -> StreamReader:
        return StreamReader(self)


class StreamReader:
    """What a step that reads a stream is given: `async for item in reader`, from the
    stream's first item, as many times as it likes. Its cursors stop counting for
    backpressure when the reader's step ends.

    Attributes:
        step: The name of the step producing the stream.
    """

    __slots__ = ("_cursors", "_stream", "waited")

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._cursors: list[_Cursor] = []
        self.waited = 0.0  # seconds its cursors spent waiting for the producer

    @property
    def step(self) -> str:
        return self._stream.step

    def __aiter__(self) -> AsyncIterator[Any]:
        cursor = _Cursor(self._stream, self)
        self._cursors.append(cursor)
        return cursor

    def close(self) -> None:
        """Stop counting this reader's cursors (its step ended)."""
        for cursor in self._cursors:
            cursor.drop()
        self._cursors = []


class _Cursor:
    """One `async for` over a stream: where it is, counted for backpressure while it runs."""

    __slots__ = ("reader", "stream", "taken")

    def __init__(self, stream: Stream, reader: StreamReader) -> None:
        self.stream = stream
        self.reader = reader
        self.taken = 0
        stream.positions[self] = 0

    def __aiter__(self) -> _Cursor:
        return self

    async def __anext__(self) -> Any:
        stream = self.stream
        while True:
            if self.taken < len(stream.items):
                item = stream.items[self.taken]
                self.taken += 1
                if self in stream.positions:
                    stream.positions[self] = self.taken
                    stream.wake_producer()  # it may be waiting for this reader
                await trio.lowlevel.checkpoint()
                return item
            if stream.error is not None:
                self.drop()
                raise StreamAbortedError(
                    f"the stream of step {stream.step!r} ended without completing, after "
                    f"{len(stream.items)} items: {type(stream.error).__name__}"
                ) from stream.error
            if stream.done:
                self.drop()
                raise StopAsyncIteration
            began = trio.current_time()
            try:
                await stream.wait_for_more()
            finally:
                self.reader.waited += trio.current_time() - began

    def drop(self) -> None:
        if self.stream.positions.pop(self, None) is not None:
            self.stream.wake_producer()


def reading_streams(fn: Callable[..., Any], names: Sequence[str], streamed: bool) -> Any:
    """`fn` as a step calls it: each input in `names` arrives as its stream (under the
    stream's name) and is handed over as a `StreamReader`, closed when the step ends."""
    renamed = {stream_name(name): name for name in names}

    def note_waits(readers: list[StreamReader]) -> None:
        waited = 0.0
        for reader in readers:
            reader.close()
            waited += reader.waited
        task = trio.lowlevel.current_task()
        STREAM_WAITS[task] = STREAM_WAITS.get(task, 0.0) + waited

    def open_readers(values: dict[str, Any]) -> list[StreamReader]:
        readers = []
        for internal, name in renamed.items():
            if internal in values:
                reader = values.pop(internal).reader()
                readers.append(reader)
                values[name] = reader
        return readers

    if streamed:

        @functools.wraps(fn)
        async def read_and_stream(**values: Any) -> AsyncIterator[Any]:
            readers = open_readers(values)
            try:
                async with contextlib.aclosing(fn(**values)) as items:
                    async for item in items:
                        yield item
            finally:
                note_waits(readers)

        return read_and_stream

    @functools.wraps(fn)
    async def read(**values: Any) -> Any:
        readers = open_readers(values)
        try:
            return await fn(**values)
        finally:
            note_waits(readers)

    return read
