"""Per-step engine overhead beside the same shape written with a bare trio nursery.

Shapes: N no-op sinks reading one run input (fan-out), and a chain (step i reads step i-1).
Each step is a plain `async def noop(<input>)`, as a flow author writes one.
A sample is `time.perf_counter` around one `trio.run` of several runs (flows built beforehand),
divided by (runs x steps). Samples are interleaved: each engine mode's sample is paired with a
bare-nursery sample taken right beside it (engine, bare, engine, bare, ...; the pair's order
flips each round), so both sides are sampled across the same stretch of the machine's
quiet and noisy spells. The ratio, which the targets judge,
is of each side's best sample: noise on a shared machine only ever adds time (here one side's
samples spread up to 2x within a minute), so the fastest sample is the best estimate of what
the code costs, as `timeit`'s documentation advises. The ratio of medians is reported beside
it, since it is what a noisy machine makes of the same code. Targets (issue 11): parallel and
speculative <= 1.5x a bare nursery, sequential (a CapacityLimiter(1)) <= 2x. The bare chain
has each task start the next in one nursery, as the engine starts a step when its input is
written (an Event per value would add waits the engine does not make).
Shape `map` (issue 17): one `map_` over a list of N items, each item a one-step body,
against a bare nursery that starts one task per item and stores its result by index;
target <= 2x per item in every mode.
Run: `python bench/overhead.py [--steps N] [--repeat R]`.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import statistics
import sys
import time
import timeit
import types
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
from rich.console import Console
from rich.table import Table
from specroute.engine import Flow, map_, step

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    Body = Callable[[], Awaitable[Any]]

RESULTS = Path(__file__).parent / "results" / "overhead.json"
TARGET = 1.5
SEQUENTIAL_TARGET = 2.0
MAP_TARGET = 2.0
WARMUPS = 2
MODES = ("parallel", "speculative", "sequential")
COLUMNS = (
    "shape", "mode", "engine_us", "bare_us", "ratio", "median_ratio", "build_ms", "within_target",
)  # fmt: skip
BASELINES = {
    "fan-out": "start_soon(noop) x N",
    "chain": "each task start_soon()s the next",
    "map": "start_soon(item) x N, results stored by index",
}


async def _noop(value: Any) -> None:
    return None


def _noop_reading(param: str) -> Callable[..., Awaitable[Any]]:
    """A no-op step reading `param`: `async def noop(<param>)`, as a flow author writes a
    step (`_noop` with its one parameter renamed; steps reading one name share one code
    object, as steps made from one `async def` do)."""
    return types.FunctionType(_noop_code(param), globals(), "noop")


@functools.cache
def _noop_code(param: str) -> types.CodeType:
    return _noop.__code__.replace(co_varnames=(param,))


def build(shape: str, steps: int) -> Flow:
    """The flow for `shape`: N sinks reading `x`, a chain `x -> v0 -> ... -> v{N-1}`, or a
    map over the list `x` (N items)."""
    if shape == "map":
        return Flow([map_(step(name="item")(_noop_reading("i")), over="x", into="out")])
    if shape == "fan-out":
        nodes = [step(name=f"s{i}")(_noop_reading("x")) for i in range(steps)]
    else:
        reads = ["x", *(f"v{i}" for i in range(steps - 1))]
        nodes = [step(name=f"v{i}")(_noop_reading(reads[i])) for i in range(steps)]
    return Flow(nodes, name=shape)


async def _bare_noop() -> None:
    return None


async def _bare_link(nursery: trio.Nursery, left: int) -> None:
    if left > 1:
        nursery.start_soon(_bare_link, nursery, left - 1)


async def _bare_item(results: list[Any], index: int, item: int) -> None:
    results[index] = await _bare_noop()


async def _bare(shape: str, steps: int) -> None:
    async with trio.open_nursery() as nursery:
        if shape == "map":
            results: list[Any] = [None] * steps
            for index in range(steps):
                nursery.start_soon(_bare_item, results, index, index)
        elif shape == "fan-out":
            for _ in range(steps):
                nursery.start_soon(_bare_noop)
        else:
            nursery.start_soon(_bare_link, nursery, steps)


def target(mode: str, shape: str = "") -> float:
    """The ratio to a bare nursery that `mode` must stay within."""
    if shape == "map":
        return MAP_TARGET
    return SEQUENTIAL_TARGET if mode == "sequential" else TARGET


def sample_us(body: Body, steps: int, runs: int) -> float:
    """One sample: us per step of `runs` runs of `body` in one `trio.run`."""

    async def many() -> None:
        for _run in range(runs):
            await body()

    gc.collect()
    start = time.perf_counter()
    trio.run(many)
    return (time.perf_counter() - start) / (runs * steps) * 1e6


def per_step_us(
    bodies: dict[str, Body], bare: Body, steps: int, runs: int, repeat: int
) -> dict[tuple[str, str], list[float]]:
    """Samples of us per step, by (body, side): its `engine` samples and the `bare` ones beside
    them, in the order taken."""
    samples: dict[tuple[str, str], list[float]] = {}
    for index in range(WARMUPS + repeat):
        for name, body in bodies.items():
            # engine, bare, engine, bare ...; flipped each round so neither always goes first.
            for side in ("engine", "bare") if index % 2 == 0 else ("bare", "engine"):
                us = sample_us(body if side == "engine" else bare, steps, runs)
                if index >= WARMUPS:
                    samples.setdefault((name, side), []).append(us)
    return samples


def median_ratio(mine: list[float], theirs: list[float]) -> float:
    """What a noisy machine makes of a ratio: median sample over median sample."""
    return statistics.median(mine) / statistics.median(theirs)


def measure(steps: int, repeat: int) -> list[dict[str, Any]]:
    """One row per (shape, mode); sequential rows (a CapacityLimiter(1)) come last."""
    runs = max(1, 10_000 // steps)
    rows = []
    for shape in BASELINES:
        flow = build(shape, steps)
        build_ms = min(timeit.repeat(partial(build, shape, steps), number=1, repeat=3)) * 1e3
        x: Any = list(range(steps)) if shape == "map" else 0
        bodies: dict[str, Body] = {mode: partial(flow.run, x=x, mode=mode) for mode in MODES}
        us = per_step_us(bodies, partial(_bare, shape, steps), steps, runs, repeat)
        for mode in MODES:
            got = {side: us[mode, side] for side in ("engine", "bare")}
            mine, bare = min(got["engine"]), min(got["bare"])
            ratio = mine / bare
            typical = median_ratio(got["engine"], got["bare"])
            numbers = (mine, bare, ratio, typical, build_ms)
            cells = (shape, mode, *(round(x, 2) for x in numbers))
            within = ratio <= target(mode, shape)
            row = dict(zip(COLUMNS, (*cells, within), strict=True))
            row["samples"] = {side: [round(x, 3) for x in values] for side, values in got.items()}
            rows.append(row)
    return sorted(rows, key=lambda row: row["mode"] == "sequential")


def render(rows: list[dict[str, Any]], steps: int, repeat: int) -> Table:
    """The rich table; sequential rows (a CapacityLimiter(1)) are dimmed: a looser target."""
    bases = "; ".join(f"{shape}: {text}" for shape, text in BASELINES.items())
    caption = (
        f"target: <= {TARGET:g}x bare (dim: sequential, <= {SEQUENTIAL_TARGET:g}x; map, "
        f"<= {MAP_TARGET:g}x per item), judged on the best samples; each side's samples are "
        f"interleaved with the other's. Bare nursery: {bases}"
    )
    title = f"Overhead: {steps} no-op steps, best of {repeat}"
    table = Table(title=title, caption=caption)
    columns = ("engine µs/step", "bare µs/step", "ratio", "ratio of medians", "build ms")
    for name in ("shape", "mode", *columns):
        table.add_column(name, justify="left" if name in ("shape", "mode") else "right")
    for row in rows:
        colour = "green" if row["within_target"] else "red"
        numbers = [f"{row[key]:.2f}" for key in COLUMNS[2:4]]
        ratio = f"[{colour}]{row['ratio']:.2f}x[/{colour}]"
        typical = f"{row['median_ratio']:.2f}x"
        cells = [row["shape"], row["mode"], *numbers, ratio, typical, f"{row['build_ms']:.1f}"]
        table.add_row(*cells, style="dim" if row["mode"] == "sequential" else None)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="steps per flow (1000)")
    parser.add_argument("--repeat", type=int, default=25, help="timed samples per cell (25)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args()
    if args.steps < 1 or args.repeat < 1:
        parser.error(f"`--steps` and `--repeat` must be >= 1, got {args.steps}, {args.repeat}")
    rows = measure(args.steps, args.repeat)
    versions = {"python": sys.version.split()[0], "trio": trio.__version__}
    result = {"steps": args.steps, "repeat": args.repeat, "unit": "us per step", **versions}
    result |= {"target_ratio": TARGET, "target_ratio_sequential": SEQUENTIAL_TARGET}
    result |= {"target_ratio_map": MAP_TARGET}
    result |= {"bare_baselines": BASELINES, "rows": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        Console().print(render(rows, args.steps, args.repeat))


if __name__ == "__main__":
    main()
