"""A stream edge's cost: a streamed step and a reader in a flow, beside a bare trio memory
channel between two tasks moving the same items.

Figures, each a median over `--repeat` samples taken in turns (the order flips each round,
so drift hits both sides alike):

- per item: `--items` items through one edge, the whole run's time over the item count
  (the run's fixed cost spread over the items). Reference: a producer task sending into
  `trio.open_memory_channel(64)` and a consumer task receiving, in one nursery. Target: the
  stream edge within 2x per item.
- first item: from the producer handing over its first item to the reader holding it, on
  the real clock. Target: under 0.1 ms above the memory channel's.

Results go to bench/results/streams.json.
Run: `python bench/streams.py [--items N] [--repeat R] [--json]`.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
from rich.console import Console
from rich.table import Table
from specroute.engine import DEFAULT_STREAM_BUFFER, Flow, StreamReader, step

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

RESULTS = Path(__file__).resolve().parent / "results" / "streams.json"
PER_ITEM_TARGET = 2.0
FIRST_ITEM_TARGET_MS = 0.1


def edge_flow(items: int, marks: dict[str, float]) -> Flow:
    @step
    async def produce() -> AsyncIterator[int]:
        for index in range(items):
            if index == 0:
                marks["sent"] = time.perf_counter()
            yield index

    @step(streams=["produce"])
    async def consume(produce: StreamReader) -> int:
        total = 0
        async for value in produce:
            if "received" not in marks:
                marks["received"] = time.perf_counter()
            total += value
        return total

    return Flow([produce, consume], name="edge")


async def channel(items: int, marks: dict[str, float]) -> int:
    send, receive = trio.open_memory_channel[int](DEFAULT_STREAM_BUFFER)
    total = 0

    async def produce() -> None:
        async with send:
            for index in range(items):
                if index == 0:
                    marks["sent"] = time.perf_counter()
                await send.send(index)

    async def consume() -> None:
        nonlocal total
        async with receive:
            async for value in receive:
                if "received" not in marks:
                    marks["received"] = time.perf_counter()
                total += value

    async with trio.open_nursery() as nursery:
        nursery.start_soon(produce)
        nursery.start_soon(consume)
    return total


def sample(kind: str, items: int) -> tuple[float, float]:
    """(seconds per item, first-item delay in seconds) of one run of `kind`."""
    marks: dict[str, float] = {}
    flow = edge_flow(items, marks)

    async def main() -> None:
        if kind == "stream":
            result = await flow.run()
            assert result.values["consume"] == items * (items - 1) // 2
        else:
            assert await channel(items, marks) == items * (items - 1) // 2

    gc.collect()
    start = time.perf_counter()
    trio.run(main)
    elapsed = time.perf_counter() - start
    return elapsed / items, marks["received"] - marks["sent"]


def measure(items: int, repeat: int) -> dict[str, Any]:
    per_item: dict[str, list[float]] = {"stream": [], "channel": []}
    first: dict[str, list[float]] = {"stream": [], "channel": []}
    order = ["stream", "channel"]
    for _ in range(repeat):
        for kind in order:
            seconds, delay = sample(kind, items)
            per_item[kind].append(seconds)
            first[kind].append(delay)
        order.reverse()
    stream_item = statistics.median(per_item["stream"])
    channel_item = statistics.median(per_item["channel"])
    stream_first = statistics.median(first["stream"])
    channel_first = statistics.median(first["channel"])
    return {
        "items": items,
        "repeat": repeat,
        "stream_us_per_item": stream_item * 1e6,
        "channel_us_per_item": channel_item * 1e6,
        "per_item_ratio": stream_item / channel_item,
        "per_item_target": PER_ITEM_TARGET,
        "stream_first_item_ms": stream_first * 1e3,
        "channel_first_item_ms": channel_first * 1e3,
        "first_item_extra_ms": (stream_first - channel_first) * 1e3,
        "first_item_target_ms": FIRST_ITEM_TARGET_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = measure(args.items, args.repeat)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    table = Table(title=f"A stream edge against a memory channel ({args.items} items)")
    for column in ("figure", "stream edge", "memory channel", "ratio / extra", "target"):
        table.add_column(column)
    ratio = figures["per_item_ratio"]
    extra = figures["first_item_extra_ms"]
    table.add_row(
        "per item",
        f"{figures['stream_us_per_item']:.2f} us",
        f"{figures['channel_us_per_item']:.2f} us",
        f"{ratio:.2f}x",
        f"<= {PER_ITEM_TARGET}x {'met' if ratio <= PER_ITEM_TARGET else 'MISSED'}",
    )
    table.add_row(
        "first item",
        f"{figures['stream_first_item_ms']:.3f} ms",
        f"{figures['channel_first_item_ms']:.3f} ms",
        f"+{extra:.3f} ms",
        f"< +{FIRST_ITEM_TARGET_MS} ms {'met' if extra < FIRST_ITEM_TARGET_MS else 'MISSED'}",
    )
    Console().print(table)


if __name__ == "__main__":
    main()
