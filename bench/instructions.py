"""Per-step overhead counted in instructions: `bench/overhead.py`'s shapes under callgrind.

Wall time on a shared machine swings by 25% from one minute to the next. The number of
instructions a run executes moves by less than 0.2%, beside a busy test suite too: the
engine counted 61,607 per step of fan-out idle and 61,672 under load, the bare nursery
47,918 to 47,968 in three runs. That takes a fixed hash seed, address randomization off
(`setarch -R`: trio keeps tasks in sets, which hash by address), the cyclic collector off
(`bench/overhead.py` measures with it on), and numpy's OpenBLAS held to one thread: its idle
threads spin after import, callgrind counts the spin for as long as its scheduler lets it
run, and with them counts moved by 2-5%. So it tells a change of 1% from noise, which wall
time cannot.
Each figure is (count of 2R runs - count of R runs) / (R x steps), so start-up and imports
cancel out. Instructions are not time: an engine step and a bare nursery's task differ in
memory traffic too (`--cache`), so `bench/overhead.py`'s wall ratio runs higher than this.
`--planner A|B` counts `bench/concurrency.py`'s batch instead, with every sleep zero: R
batches of `--batch` (1000) concurrent seed-000 planner runs, specroute against the planner
by hand in trio, per run, each batch in its own `trio.run` after `gc.collect()` and with the
cyclic collector on, as `bench/concurrency.py` times it (the collector's passes over the runs
in flight are part of a batch's cost). The wall ratio of a batch swings by a third on this
machine; this count hardly does, so it tells whether a change made a batch cheaper. Compare
counts made with the same R: when the collector's full passes fall depends on every batch
before, so a count moves with R (Path B, 993k instructions a run at R=1 and 995k from 1 and
3 batches; Path A, 778k and 925k).
Needs `valgrind` (not installed by the Makefile). Run: `python bench/instructions.py
[--shape fan-out|chain|map] [--mode parallel|speculative|sequential] [--runs R] [--cache]
[--planner A|B [--batch N]]`; about two minutes (`--cache`: first-level data cache misses
too, from cachegrind's simulation, about four; `--planner`, about eight at R=1).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import re
import shutil
import subprocess
import sys
from functools import partial
from typing import TYPE_CHECKING, Any

import concurrency  # the planners
import overhead  # the same shapes, flows and bare bodies (a script's folder is on its path)
import trio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

STEPS = 1000
# What each valgrind tool prints: callgrind its instruction count, cachegrind (with its cache
# simulation) instructions and the first-level data cache's read and write misses.
PATTERNS = {
    "callgrind": {"instructions": re.compile(r"Collected : (\d+)")},
    "cachegrind": {
        "instructions": re.compile(r"I\s+refs:\s+([\d,]+)"),
        "D1 misses": re.compile(r"D1\s+misses:\s+([\d,]+)"),
    },
}


def planner_child(side: str, path: str, runs: int, batch: int) -> None:
    """Run `runs` batches of `batch` concurrent zero-sleep planner runs of one side."""
    planner = concurrency.planners(0.0)["specroute" if side == "engine" else "trio"]
    for _ in range(runs):
        trio.run(concurrency.timed_batch, planner, concurrency.REQUESTS[path], batch)


def child(side: str, shape: str, mode: str, runs: int) -> None:
    """Run `runs` runs of one side of a shape (in the process callgrind watches)."""
    x = list(range(STEPS)) if shape == "map" else 0
    body: Callable[[], Awaitable[Any]]
    if side == "engine":
        body = partial(overhead.build(shape, STEPS).run, x=x, mode=mode)
    else:
        body = partial(overhead._bare, shape, STEPS)

    async def many() -> None:
        for _ in range(runs):
            await body()

    gc.disable()
    trio.run(many)


def counts(side: str, workload: list[str], runs: int, tool: str) -> dict[str, int]:
    """What `tool` counts in a child process running `runs` runs of `workload` (its
    arguments: a shape and mode, or a planner path and batch)."""
    command = ["setarch", platform.machine(), "-R"] if shutil.which("setarch") else []
    command += ["valgrind", f"--tool={tool}", f"--{tool}-out-file=/dev/null"]
    command += ["--cache-sim=yes"] if tool == "cachegrind" else []
    command += [sys.executable, __file__, "--child", side, *workload, "--runs", str(runs)]
    # numpy's OpenBLAS threads spin for a while after import, and callgrind counts a spin
    # that lasts as long as the scheduler lets it: with them, counts moved by 2-5%.
    environment = {**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=environment)
    found = {}
    for name, pattern in PATTERNS[tool].items():
        match = pattern.search(done.stderr)
        if match is None:
            raise SystemExit(f"{tool} printed no {name}:\n{done.stderr[-2000:]}")
        found[name] = int(match.group(1).replace(",", ""))
    return found


def per_unit(side: str, workload: list[str], runs: int, units: int, tool: str) -> dict[str, float]:
    """Counts per step (or planner run): the difference between 2R and R runs of
    `workload`, over R x `units` (its steps, or the runs in its batch)."""
    once = counts(side, workload, runs, tool)
    twice = counts(side, workload, 2 * runs, tool)
    return {name: (twice[name] - once[name]) / (runs * units) for name in once}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=tuple(overhead.BASELINES), default="fan-out")
    parser.add_argument("--mode", choices=overhead.MODES, default="parallel")
    parser.add_argument(
        "--runs", type=int, help="R: runs (batches) of the shorter child (5; with --planner, 1)"
    )
    parser.add_argument(
        "--cache",
        action="store_true",
        help="also count first-level data cache misses (cachegrind's simulation; slower)",
    )
    parser.add_argument(
        "--planner",
        choices=tuple(concurrency.REQUESTS),
        help="count a batch of concurrent zero-sleep planner runs on this path instead",
    )
    parser.add_argument("--batch", type=int, default=1000, help="planner runs a batch (1000)")
    parser.add_argument("--child", choices=("engine", "bare"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runs is None:
        args.runs = 5 if args.planner is None else 1
    if args.runs < 1 or args.batch < 1:
        parser.error(f"`--runs` and `--batch` must be >= 1, got {args.runs}, {args.batch}")
    if args.child is not None:
        if args.planner is not None:
            planner_child(args.child, args.planner, args.runs, args.batch)
        else:
            child(args.child, args.shape, args.mode, args.runs)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("bench/instructions.py needs valgrind (apt-get install valgrind)")
    tool = "cachegrind" if args.cache else "callgrind"
    if args.planner is not None:
        workload = ["--planner", args.planner, "--batch", str(args.batch)]
        units, what, unit, bare_name = args.batch, f"planner path {args.planner}", "run", "trio"
    else:
        workload = ["--shape", args.shape, "--mode", args.mode]
        units, what, unit, bare_name = STEPS, f"{args.shape} {args.mode}", "step", "nursery"
    engine = per_unit("engine", workload, args.runs, units, tool)
    bare = per_unit("bare", workload, args.runs, units, tool)
    for name in engine:
        print(
            f"{what}: {name} per {unit}: engine {engine[name]:,.0f}, bare {bare_name} "
            f"{bare[name]:,.0f}, ratio {engine[name] / bare[name]:.3f}"
        )


if __name__ == "__main__":
    main()
