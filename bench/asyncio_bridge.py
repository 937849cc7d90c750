"""The asyncio bridge's cost: a planner run through `asyncio_portal()` beside a native trio call.

The flow is the seed-000 planner of `examples/planner.py`, Path B ("summarize open issues by
label"), speculative. Figures, each a median over `--repeat` samples taken in turns (native,
bridged, bridged, native, ...: the order flips each round, so drift hits both sides alike):

- fixed cost: every sleep zero (each still a checkpoint), as bench/overhead.py and
  bench/concurrency.py measure a run's fixed cost: `--runs` runs one after another, per run.
  Native: `await planner.run(...)` inside `trio.run`. Bridged: `await portal.run(planner,
  ...)` from an asyncio task, inside `asyncio.run` with the portal already open. Target <= 2x.
- scale 0.01: the same with the seed's latencies x 0.01 (`trio.sleep`, a 37 ms critical
  path), per run. Target: the bridge adds <= 10%.
- 1000 concurrent, in process: 1000 runs at once, the steps calling the simulated LLM
  provider through one `LLMClient` at scale 0.01: a trio nursery against `asyncio.gather` of
  `portal.run`s. Reported, no target.
- 1000 concurrent through the service: `examples/service.py` in a uvicorn subprocess (same
  provider and scale), 1000 `POST /plan` at once from httpx (64 connections), wall time
  against the 1000 concurrent native runs above. Reported, no target: it adds HTTP, JSON and
  a client sharing the machine's cores.

Results go to bench/results/asyncio_bridge.json.
Run: `python bench/asyncio_bridge.py [--runs N] [--repeat R] [--concurrent C] [--json]`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import trio
from rich.console import Console
from rich.table import Table
from specroute.engine import Provider, asyncio_portal, open_llm_client
from specroute.engine.llm import SimulatedModel, SimulatedTransport

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
import planner  # noqa: E402 -- examples/ is not a package; the bench measures its planner

if TYPE_CHECKING:
    from collections.abc import Callable

    from specroute.engine import AsyncioPortal, RunResult

    Sampler = Callable[[], float]

RESULTS = ROOT / "bench" / "results" / "asyncio_bridge.json"
FIXED_TARGET = 2.0
SCALED_TARGET = 1.10
SCALE = 0.01
# Connections the service bench opens at once (more can overflow a small accept queue).
CONNECTIONS = 64
USER_INPUT = planner.REQUESTS["B"]
MODE, POLICY = planner.MODES["speculative"]


def run_native() -> Any:
    return planner.planner.run(user_input=USER_INPUT, mode=MODE, speculate=POLICY)


def run_bridged(portal: AsyncioPortal) -> Any:
    return portal.run(planner.planner, user_input=USER_INPUT, mode=MODE, speculate=POLICY)


def native_per_run(runs: int) -> float:
    async def main() -> float:
        await run_native()  # warm-up
        gc.collect()
        start = time.perf_counter()
        for _ in range(runs):
            await run_native()
        return (time.perf_counter() - start) / runs

    return trio.run(main)


def bridged_per_run(runs: int) -> float:
    async def main() -> float:
        async with asyncio_portal() as portal:
            await run_bridged(portal)  # warm-up
            gc.collect()
            start = time.perf_counter()
            for _ in range(runs):
                await run_bridged(portal)
            return (time.perf_counter() - start) / runs

    return asyncio.run(main())


def simulated_provider() -> Provider:
    rate = planner.TOKENS_PER_SECOND / SCALE
    speed = SimulatedModel(first_token_latency=0.0, tokens_per_second=rate)
    return Provider.simulated(SimulatedTransport(speed))


def native_concurrent(count: int) -> float:
    async def main() -> float:
        async with open_llm_client(simulated_provider(), seed=0) as planner.LLM:
            await run_native()
            gc.collect()
            start = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for _ in range(count):
                    nursery.start_soon(run_native)
            return time.perf_counter() - start

    return trio.run(main)


def bridged_concurrent(count: int) -> float:
    async def main() -> float:
        async with asyncio_portal() as portal:
            planner.LLM = await portal.enter(open_llm_client(simulated_provider(), seed=0))
            await run_bridged(portal)
            gc.collect()
            start = time.perf_counter()
            results: list[RunResult] = await asyncio.gather(
                *(run_bridged(portal) for _ in range(count))
            )
            elapsed = time.perf_counter() - start
        assert {r.route for r in results} == {"generate"}
        return elapsed

    return asyncio.run(main())


def service_concurrent(count: int) -> float:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, str(ROOT / "examples" / "service.py"), "--port", str(port),
               "--scale", str(SCALE)]  # fmt: skip
    process = subprocess.Popen(command)
    try:
        return trio.run(post_all, f"http://127.0.0.1:{port}", count)
    finally:
        process.terminate()
        process.wait(timeout=15)


async def post_all(url: str, count: int) -> float:
    body = {"user_input": USER_INPUT, "mode": "speculative"}
    limits = httpx.Limits(max_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        with trio.fail_after(30):
            while True:
                try:
                    (await client.post("/plan", json=body)).raise_for_status()  # warm-up
                    break
                except httpx.TransportError:
                    await trio.sleep(0.1)

        async def one() -> None:
            response = await client.post("/plan", json=body)
            assert response.json()["route"] == "generate", response.text

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(one)
        return time.perf_counter() - start


def interleaved(native: Sampler, bridged: Sampler, repeat: int) -> dict[str, Any]:
    """Median of each side's samples, taken in turns; the ratio is bridged / native."""
    samples: dict[str, list[float]] = {"native": [], "bridged": []}
    for index in range(repeat):
        order = [("native", native), ("bridged", bridged)]
        for name, sample in order if index % 2 == 0 else order[::-1]:
            samples[name].append(sample())
    native_s = statistics.median(samples["native"])
    bridged_s = statistics.median(samples["bridged"])
    return {
        "native_ms": native_s * 1000,
        "bridged_ms": bridged_s * 1000,
        "ratio": bridged_s / native_s,
    }


def measure(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    planner.LLM = None  # steps only sleep: the seed's latencies x SCALE
    planner.SCALE = 0.0
    runs = args.runs * 10
    fixed = interleaved(lambda: native_per_run(runs), lambda: bridged_per_run(runs), args.repeat)
    rows["fixed cost (every sleep 0), per run"] = {**fixed, "target": FIXED_TARGET}
    planner.SCALE = SCALE
    runs = args.runs
    scaled = interleaved(lambda: native_per_run(runs), lambda: bridged_per_run(runs), args.repeat)
    rows[f"planner at scale {SCALE}, per run"] = {**scaled, "target": SCALED_TARGET}

    count = args.concurrent
    planner.MODEL = "sim-large"
    rounds = max(1, args.repeat // 2)
    concurrent = interleaved(
        lambda: native_concurrent(count), lambda: bridged_concurrent(count), rounds
    )
    rows[f"{count} concurrent in process, total"] = {**concurrent, "target": None}
    service_s = statistics.median(service_concurrent(count) for _ in range(rounds))
    rows[f"{count} concurrent through the service, total"] = {
        "native_ms": concurrent["native_ms"],
        "bridged_ms": service_s * 1000,
        "ratio": service_s * 1000 / concurrent["native_ms"],
        "target": None,
    }
    for row in rows.values():
        row["within_target"] = None if row["target"] is None else row["ratio"] <= row["target"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="sequential runs per sample")
    parser.add_argument("--repeat", type=int, default=5, help="samples per side")
    parser.add_argument("--concurrent", type=int, default=1000, help="runs at once")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = measure(args)
    flow = "planner, path B, speculative"
    result = {"flow": flow, "runs": args.runs, "repeat": args.repeat, "rows": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
        return
    table = Table(title=f"asyncio bridge: {flow}, through asyncio_portal() vs native trio")
    for column in ("measure", "native ms", "bridged ms", "ratio", "target", "within"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for name, row in rows.items():
        target = "" if row["target"] is None else f"<= {row['target']:.2f}x"
        within = "" if row["within_target"] is None else str(row["within_target"])
        table.add_row(name, f"{row['native_ms']:.3f}", f"{row['bridged_ms']:.3f}",
                      f"{row['ratio']:.2f}x", target, within)  # fmt: skip
    Console(width=max(Console().width, 110)).print(table)
    print(f"results: {RESULTS}")


if __name__ == "__main__":
    main()
