"""The planner (seed 000) over a request mix, per mode: mean latency and waste, in virtual time.

Each request is Path A (a saved workflow is reused) or Path B (a workflow is generated); the
mix has `--share-b` of Path B (0.7 by default, as the seed assumes), shuffled with a fixed
seed. Every request runs in each mode: sequential, parallel-start (ParameterDiscovery beside
Discovery, the seed's option 1) and speculative (all of Path B beside Discovery). The seed's
own figures (Path A 800 ms; Path B 4200 ms sequential, 3800 ms parallel-start) are mixed
the same way for comparison. The planner is imported from examples/planner.py, not copied.
Run: `python bench/speculation.py [--requests N] [--share-b F] [--json]`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
from pathlib import Path
from typing import Any

import trio
import trio.testing
from rich.console import Console
from rich.table import Table
from specroute.engine.report import RunRecord, log_line, summarize

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "speculation.json"
# The seed's figures, ms: Path A, and Path B per mode (speculation is not in the seed).
SEED_A_MS = 800
SEED_B_MS = {"sequential": 4200, "parallel-start": 3800}


def load_planner() -> Any:
    """examples/planner.py as a module (it is a script, not a package)."""
    path = ROOT / "examples" / "planner.py"
    spec = importlib.util.spec_from_file_location("planner_example", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def mix(requests: int, share_b: float, seed: int) -> list[str]:
    """`requests` paths, round(requests x share_b) of them B, shuffled with `seed`."""
    count_b = round(requests * share_b)
    paths = ["B"] * count_b + ["A"] * (requests - count_b)
    random.Random(seed).shuffle(paths)
    return paths


def measure(planner: Any, paths: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Run every request in every mode on a virtual clock; the runs as log lines."""
    lines: dict[str, list[dict[str, Any]]] = {mode: [] for mode in planner.MODES}

    async def main() -> None:
        for mode in planner.MODES:
            for path in paths:
                result = await planner.run_planner(path, mode)
                lines[mode].append(log_line(result, label=mode))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return lines


def rows(lines: dict[str, list[dict[str, Any]]], share_b: float) -> list[dict[str, Any]]:
    """One row per mode: the summary's figures beside the seed's mixed the same way."""
    out = []
    for mode, runs in lines.items():
        summary = summarize([RunRecord.from_json(line) for line in runs])
        seed_b = SEED_B_MS.get(mode)
        seed = None if seed_b is None else (1 - share_b) * SEED_A_MS + share_b * seed_b
        out.append({
            "mode": mode,
            "runs": summary.runs,
            "mean_ms": round(summary.wall.mean, 1),
            "p50_ms": round(summary.wall.p50, 1),
            "p95_ms": round(summary.wall.p95, 1),
            "seed_mean_ms": None if seed is None else round(seed, 1),
            "sequential_mean_ms": round(summary.sequential.mean, 1),
            "saved_ms": round(summary.saved_ms, 1),
            "saved_pct": round(summary.saved_pct * 100, 1),
            "wasted_ms": round(summary.wasted_ms / max(1, summary.runs), 1),
            "wasted_dollars": round(summary.wasted_cost / max(1, summary.runs), 6),
            "speculation_right_pct": None if summary.speculation.right_rate is None
            else round(summary.speculation.right_rate * 100, 1),
            "speedup": round(summary.speedup, 3),
        })  # fmt: skip
    return out


def render(table_rows: list[dict[str, Any]], requests: int, share_b: float) -> Table:
    """The rich table."""
    title = f"Planner over {requests} requests, {share_b:.0%} Path B (virtual time, mean per run)"
    caption = (
        f"seed: Path A {SEED_A_MS} ms; Path B {SEED_B_MS['sequential']} ms sequential, "
        f"{SEED_B_MS['parallel-start']} ms parallel-start, mixed the same way. Waste is step "
        "time in branches that lost (the planner makes no LLM calls: $0)"
    )
    table = Table(title=title, caption=caption)
    for name in ("mode", "mean ms", "seed ms", "p95 ms", "saved ms", "saved",
                 "wasted ms", "right", "speed-up"):  # fmt: skip
        table.add_column(name, justify="left" if name == "mode" else "right", no_wrap=True)
    for row in table_rows:
        seed = "" if row["seed_mean_ms"] is None else f"{row['seed_mean_ms']:,.0f}"
        right = (
            "" if row["speculation_right_pct"] is None else f"{row['speculation_right_pct']:.0f}%"
        )
        table.add_row(
            row["mode"], f"{row['mean_ms']:,.0f}", seed, f"{row['p95_ms']:,.0f}",
            f"{row['saved_ms']:,.0f}", f"{row['saved_pct']:.0f}%", f"{row['wasted_ms']:,.0f}",
            right, f"{row['speedup']:.2f}x",
        )  # fmt: skip
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100, help="requests in the mix (100)")
    parser.add_argument("--share-b", type=float, default=0.7, help="share of Path B (0.7)")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed (0)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args()
    if args.requests < 1:
        parser.error(f"`--requests` must be >= 1, got {args.requests}")
    if not 0 <= args.share_b <= 1:
        parser.error(f"`--share-b` must be between 0 and 1, got {args.share_b}")
    planner = load_planner()
    paths = mix(args.requests, args.share_b, args.seed)
    table_rows = rows(measure(planner, paths), args.share_b)
    result = {
        "requests": args.requests, "share_b": args.share_b, "seed": args.seed,
        "clock": "virtual", "seed_ms": {"A": SEED_A_MS, "B": SEED_B_MS},
        "python": sys.version.split()[0], "trio": trio.__version__, "rows": table_rows,
    }  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        # Wide enough for every column even when piped (rich assumes 80 then).
        Console(width=max(Console().width, 110)).print(
            render(table_rows, args.requests, args.share_b)
        )
        print(f"results: {RESULTS}")


if __name__ == "__main__":
    main()
