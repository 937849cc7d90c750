"""The folder a resumable map writes to: whole files, digests per item, the writer task."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import trio
from specroute.engine._checkpoint import SCHEMA, Checkpoint, Saved, Writer

if TYPE_CHECKING:
    from pathlib import Path


def files(folder: Path) -> dict[str, object]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def test_equal_items_share_a_digest_and_maps_do_not(tmp_path: Path) -> None:
    one = Checkpoint(tmp_path, "summaries")
    assert one.key({"a": 1, "b": [2]}) == one.key({"b": [2], "a": 1})
    assert one.key(1) != one.key(1.0)
    assert one.key(1) != Checkpoint(tmp_path, "other").key(1)


async def test_what_was_handed_over_is_written_even_when_the_map_is_cancelled(
    tmp_path: Path,
) -> None:
    checkpoint = Checkpoint(tmp_path / "out", "m")
    async with trio.open_nursery() as nursery:
        writer = Writer(checkpoint, nursery.cancel_scope)
        nursery.start_soon(writer.run)
        with writer.send:
            for index in range(3):
                writer.put(Saved(index, f"k{index}", [index]))
            # Cancelled before the writer task ran at all: it still writes all three.
            nursery.cancel_scope.cancel()
    written = await trio.to_thread.run_sync(files, tmp_path / "out")
    assert written == {
        f"k{index}": {"schema": SCHEMA, "map": "m", "index": index, "result": [index]}
        for index in range(3)
    }
    assert writer.error is None


async def test_a_failed_write_stops_the_writer_and_is_kept(tmp_path: Path) -> None:
    checkpoint = Checkpoint(tmp_path, "m")
    async with trio.open_nursery() as nursery:
        writer = Writer(checkpoint, nursery.cancel_scope)
        nursery.start_soon(writer.run)
        with writer.send:
            writer.put(Saved(0, "k0", object()))
            writer.put(Saved(1, "k1", 1))
            await trio.sleep_forever()  # the failed write cancels this nursery
    assert isinstance(writer.error, TypeError)
    assert "item 0 cannot be written" in str(writer.error)
    assert await trio.to_thread.run_sync(files, tmp_path) == {}


async def test_load_reads_what_is_whole_and_skips_the_rest(tmp_path: Path) -> None:
    checkpoint = Checkpoint(tmp_path, "m")
    assert await checkpoint.load(["a"]) == {}  # no folder yet
    await checkpoint.save(Saved(0, "a", "first"))
    await checkpoint.save(Saved(1, "b", None))
    await trio.Path(tmp_path / "c.json").write_text("[1, 2]")  # not a record of ours
    await trio.Path(tmp_path / "d.json").write_text('{"schema": 99, "result": 1}')
    assert await checkpoint.load(["a", "b", "c", "d", "e"]) == {0: "first", 1: None}
