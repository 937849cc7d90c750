"""Speculation policies on the planner in virtual time: never, always, predictive, oracle.

Mixes: 70% Path B (the seed's assumption), 30%, 10% (speculation does not pay), and a drift
from 10% to 90%. The predictive policy uses route statistics, or a semantic predictor of a
set accuracy. Targets (issue 8): predictive within 10% of the oracle's mean latency at no
more than half of always-speculate's waste on the 70% mix, and near-zero waste where
speculation does not pay.

    python bench/policy.py [--count 400]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))  # the planner and its mix runner, not copies

from _policy_mix import measure, mix  # noqa: E402

POLICIES = ["never", "always", "predictive", "oracle"]
SCENARIOS: list[tuple[str, float | tuple[float, float], float | None]] = [
    ("70% B, statistics", 0.7, None),
    ("70% B, semantic 90%", 0.7, 0.9),
    ("30% B, semantic 90%", 0.3, 0.9),
    ("10% B, statistics", 0.1, None),
    ("drift 10%->90% B, statistics", (0.1, 0.9), None),
]


def verdict(rows: list[dict[str, Any]]) -> str:
    by = {row["policy"]: row for row in rows}
    close = by["predictive"]["mean_ms"] <= 1.1 * by["oracle"]["mean_ms"]
    thrifty = by["predictive"]["wasted_step_s"] <= 0.5 * by["always"]["wasted_step_s"]
    return f"within 10% of oracle: {close}; <= half of always' waste: {thrifty}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400)
    args = parser.parse_args()
    console = Console()
    results = {}
    for title, share, accuracy in SCENARIOS:
        rows = measure(POLICIES, mix(share, args.count), accuracy)
        results[title] = rows
        table = Table(title=f"{title} ({args.count} requests)", caption=verdict(rows))
        for column in rows[0]:
            table.add_column(column, justify="left" if column == "policy" else "right")
        for row in rows:
            table.add_row(*(str(value) for value in row.values()))
        console.print(table)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "policy.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
