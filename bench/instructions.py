"""Per-step overhead counted in instructions: `bench/overhead.py`'s shapes under callgrind.

Wall time on a shared machine swings by 25% from one minute to the next; the number of
instructions a run executes moves by about 1% (the same bare nursery counted 48.4k and
48.8k per task in two runs), with a fixed hash seed, address randomization off (`setarch
-R`: trio keeps tasks in sets, which hash by address) and the cyclic collector off (its
collections shifted counts by up to 8% between two runs of one program; `bench/overhead.py`
measures with it on). Each figure is (instructions of 2R runs - instructions of R runs) /
(R x steps), so start-up and imports cancel out. Instructions are not time: an engine step
and a bare nursery's task differ in memory traffic too, so `bench/overhead.py`'s wall ratio
runs higher than this one. Use it to tell whether a change to the per-step path made it
cheaper.
Needs `valgrind` (not installed by the Makefile). Run: `python bench/instructions.py
[--shape fan-out|chain|map] [--mode parallel|speculative|sequential] [--runs R]`; about a
minute per figure.
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

import overhead  # the same shapes, flows and bare bodies (a script's folder is on its path)
import trio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

STEPS = 1000
COLLECTED = re.compile(r"Collected : (\d+)")


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


def instructions(side: str, shape: str, mode: str, runs: int) -> int:
    """Instructions callgrind counts for a child process running `runs` runs."""
    command = ["setarch", platform.machine(), "-R"] if shutil.which("setarch") else []
    command += ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [sys.executable, __file__, "--child", side, "--shape", shape, "--mode", mode]
    command += ["--runs", str(runs)]
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=environment)
    found = COLLECTED.search(done.stderr)
    if found is None:
        raise SystemExit(f"callgrind printed no count:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_step(side: str, shape: str, mode: str, runs: int) -> float:
    """Instructions per step: the difference between 2R and R runs, over R x steps."""
    once = instructions(side, shape, mode, runs)
    twice = instructions(side, shape, mode, 2 * runs)
    return (twice - once) / (runs * STEPS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=tuple(overhead.BASELINES), default="fan-out")
    parser.add_argument("--mode", choices=overhead.MODES, default="parallel")
    parser.add_argument("--runs", type=int, default=5, help="R: runs of the shorter child (5)")
    parser.add_argument("--child", choices=("engine", "bare"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"`--runs` must be >= 1, got {args.runs}")
    if args.child is not None:
        child(args.child, args.shape, args.mode, args.runs)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("bench/instructions.py needs valgrind (apt-get install valgrind)")
    engine = per_step("engine", args.shape, args.mode, args.runs)
    bare = per_step("bare", args.shape, args.mode, args.runs)
    print(
        f"{args.shape} {args.mode}: engine {engine:,.0f} instructions per step, bare nursery "
        f"{bare:,.0f}, ratio {engine / bare:.3f}"
    )


if __name__ == "__main__":
    main()
