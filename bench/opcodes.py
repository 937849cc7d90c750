"""Where the engine's per-step overhead is, in Python bytecodes: `bench/overhead.py`'s shapes
run once under `sys.settrace` with opcode events, counted by function.

The count needs no timing and no valgrind, and it hardly moves: three runs of each shape
agreed to 0.03% (trio's scheduler may reverse a batch). So it names the function that grew
when `bench/instructions.py` says a step got dearer. Opcodes are not
instructions: trio's C-level work (allocation, dict lookups, frames) is not in them, and an
opcode costs some tens of instructions; compare counts of one shape and side only.
`--planner A|B` counts a seed-000 planner run on that path instead (`bench/concurrency.py`'s
planners, speculative, every sleep zero), against the same planner written by hand in trio,
per run (the mean of `--runs` runs). Path B's count repeats to 0.01%; Path A's moves by up to
3% from one process to the next, with how far the speculated branch gets before Discovery
cancels it (trio may reverse a batch).
Run: `python bench/opcodes.py [--shape fan-out|chain|map] [--mode ...] [--steps N]
[--planner A|B] [--runs N] [--top K]`; a few seconds.
"""

from __future__ import annotations

import argparse
import collections
import sys
from functools import partial
from typing import TYPE_CHECKING, Any

import concurrency  # the planners (a script's folder is on its path)
import overhead  # the same shapes, flows and bare bodies
import trio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import FrameType

    Body = Callable[[], Awaitable[Any]]


def count(body: Body) -> collections.Counter[str]:
    """Opcodes executed per function in one run of `body` (after one run to warm up)."""
    counts: collections.Counter[str] = collections.Counter()

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        if event == "opcode":
            code = frame.f_code
            counts[f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_qualname}"] += 1
        return tracer

    async def twice() -> None:
        await body()
        sys.settrace(tracer)
        try:
            await body()
        finally:
            sys.settrace(None)

    trio.run(twice)
    return counts


async def planner_runs(planner: concurrency.Planner, request: str, runs: int) -> None:
    """`runs` planner runs, one after another."""
    for _run in range(runs):
        await planner(request)


def report(sides: dict[str, Body], per: int, unit: str, top: int) -> dict[str, float]:
    """Print each side's count per `unit` (`per` of them in one body), its top functions."""
    totals = {}
    for side, body in sides.items():
        counts = count(body)
        totals[side] = sum(counts.values()) / per
        print(f"{side}: {totals[side]:.1f} opcodes per {unit}")
        for name, got in counts.most_common(top):
            print(f"  {got / per:8.2f}  {name}")
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=tuple(overhead.BASELINES), default="fan-out")
    parser.add_argument("--mode", choices=overhead.MODES, default="parallel")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--planner", choices=tuple(concurrency.REQUESTS), help="count a planner")
    parser.add_argument("--runs", type=int, default=100, help="planner runs counted (100)")
    parser.add_argument("--top", type=int, default=15, help="functions to list per side (15)")
    args = parser.parse_args()
    if args.steps < 1 or args.runs < 1:
        parser.error(f"`--steps` and `--runs` must be >= 1, got {args.steps}, {args.runs}")
    if args.planner is not None:
        planners = concurrency.planners(0.0)
        request = concurrency.REQUESTS[args.planner]
        sides = {
            name: partial(planner_runs, planners[implementation], request, args.runs)
            for name, implementation in (("engine", "specroute"), ("by hand", "trio"))
        }
        totals = report(sides, args.runs, "run", args.top)
        ratio = totals["engine"] / totals["by hand"]
        print(
            f"planner path {args.planner}: engine {totals['engine']:.0f}, by hand in trio "
            f"{totals['by hand']:.0f} opcodes per run, ratio {ratio:.3f}"
        )
        return
    x = list(range(args.steps)) if args.shape == "map" else 0
    sides = {
        "engine": partial(overhead.build(args.shape, args.steps).run, x=x, mode=args.mode),
        "bare": partial(overhead._bare, args.shape, args.steps),
    }
    totals = report(sides, args.steps, "step", args.top)
    print(
        f"{args.shape} {args.mode}: engine {totals['engine']:.1f}, bare nursery "
        f"{totals['bare']:.1f} opcodes per step, ratio {totals['engine'] / totals['bare']:.3f}"
    )


if __name__ == "__main__":
    main()
