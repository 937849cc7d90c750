"""Resumable maps: each finished item's result is written to a folder, and a later run over
the same list reads it back instead of running the item again.

An item is known by a digest of its value (the cache's canonical encoding, so equal items
have one digest in every process) and the map's name: `<folder>/<digest>.json` holds
`{"schema": 1, "map": ..., "index": ..., "result": ...}`. A file is written whole under a
temporary name and then renamed, so a crash leaves either the whole result or nothing;
a damaged or foreign file is ignored (the item runs again). Results must be JSON data, and
come back as JSON data (a tuple as a list). Files are read and written in worker threads,
never on the event loop; a map writes each result as its item ends, through one writer task.
"""

from __future__ import annotations

import json
import math
import os
from typing import TYPE_CHECKING, Any

import attrs
import trio
from specroute.cache import make_key

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

__all__ = ["SCHEMA", "Checkpoint", "Saved"]

SCHEMA = 1


@attrs.frozen
class Saved:
    """One finished item on its way to the folder."""

    index: int
    key: str
    result: Any


@attrs.frozen
class Checkpoint:
    """The folder one map's finished items go to."""

    folder: Path
    map: str

    def key(self, item: Any) -> str:
        """The item's file name stem; `UnencodableInputError` names an item with no digest."""
        return make_key(f"map:{self.map}", str(SCHEMA), "default", {"item": item}).digest

    async def load(self, keys: Sequence[str]) -> dict[int, Any]:
        """Index -> the saved result of every item already done."""
        return await trio.to_thread.run_sync(self._load, keys)

    def _load(self, keys: Sequence[str]) -> dict[int, Any]:
        try:
            present = set(os.listdir(self.folder))
        except FileNotFoundError:
            return {}
        found: dict[int, Any] = {}
        for index, key in enumerate(keys):
            name = f"{key}.json"
            if name not in present:
                continue
            try:
                data = json.loads((self.folder / name).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # damaged: the item runs again
            if isinstance(data, dict) and data.get("schema") == SCHEMA and "result" in data:
                found[index] = data["result"]
        return found

    def _save(self, saved: Saved) -> None:
        record = {"schema": SCHEMA, "map": self.map, "index": saved.index, "result": saved.result}
        try:
            text = json.dumps(record, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"map {self.map!r}: the result of item {saved.index} cannot be written to "
                f"{str(self.folder)!r} ({exc}); a resumable map's results must be JSON data"
            ) from None
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / f"{saved.key}.json"
        partial = self.folder / f".{saved.key}.{os.getpid()}.tmp"
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, final)

    async def save(self, saved: Saved) -> None:
        """Write one result (in a worker thread)."""
        await trio.to_thread.run_sync(self._save, saved)


class Writer:
    """Results handed over synchronously (as items end) and written by one task.

    `run` ends when the writer is closed and everything handed over is written, even when
    the map is cancelled; the first failure to write stops it and is kept in `error`, and
    `stop` (the enclosing nursery's cancel) is called so the map stops too."""

    __slots__ = ("checkpoint", "error", "receive", "send", "stop")

    def __init__(self, checkpoint: Checkpoint, stop: trio.CancelScope) -> None:
        self.checkpoint = checkpoint
        self.stop = stop
        self.send, self.receive = trio.open_memory_channel[Saved](math.inf)
        self.error: Exception | None = None

    def put(self, saved: Saved) -> None:
        if self.error is None:
            self.send.send_nowait(saved)

    async def run(self) -> None:
        # Shielded: a result handed over before the map was cancelled is still written
        # (the map closes `send` as it leaves, cancelled or not, which ends this loop).
        with trio.CancelScope(shield=True):
            async with self.receive:
                async for saved in self.receive:
                    try:
                        await self.checkpoint.save(saved)
                    except Exception as exc:  # noqa: BLE001 -- becomes the map step's failure
                        self.error = exc
                        self.stop.cancel()
                        return
