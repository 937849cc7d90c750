"""Speculation policies over a mix of planner requests, in virtual time.

Shared by `examples/planner.py --policy ...` and `bench/policy.py`. Each policy runs the
same requests in the same order; the predictive policy learns as it goes.
"""

from __future__ import annotations

import random
import statistics
from typing import TYPE_CHECKING, Any

import attrs
import trio
import trio.testing
from planner import DOLLARS_PER_SECOND, REQUESTS, make_planner
from specroute.engine import (
    Always,
    Branches,
    Never,
    Prediction,
    PredictivePolicy,
    RouterView,
    RouteStatistics,
    SpeculationPolicy,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

# What a second of waiting is worth: $18 an hour of a user's time.
VALUE_OF_TIME = 0.005
LABELS = {"A": "reuse", "B": "generate"}


def mix(share_b: float | tuple[float, float], count: int, seed: int = 0) -> list[str]:
    """Paths "A"/"B" for `count` requests; a pair of shares drifts from the first to the second."""
    rng = random.Random(seed)
    start, end = share_b if isinstance(share_b, tuple) else (share_b, share_b)
    shares = [start + (end - start) * i / max(1, count - 1) for i in range(count)]
    return ["B" if rng.random() < share else "A" for share in shares]


@attrs.define
class SetAccuracy:
    """A predictor right with probability `accuracy` (a semantic predictor of known quality)."""

    accuracy: float
    truth: dict[str, str] = attrs.Factory(dict)
    rng: random.Random = attrs.Factory(lambda: random.Random(1))

    async def predict(self, router: RouterView, inputs: Mapping[str, Any]) -> Prediction:
        right = self.truth[inputs["user_input"]]
        wrong = next(label for label in router.labels if label != right)
        guess = right if self.rng.random() < self.accuracy else wrong
        return Prediction(probabilities={guess: self.accuracy}, source="semantic")

    def observe(self, router: RouterView, inputs: Mapping[str, Any], label: str) -> None:
        return None


async def run_policy(name: str, paths: Sequence[str], accuracy: float | None) -> dict[str, Any]:
    """Run the requests under one policy; latency and waste figures."""
    predictor: Any = None
    if name == "predictive":
        predictor = RouteStatistics() if accuracy is None else SetAccuracy(accuracy)
    planner = make_planner(predictor)
    walls, wasted = [], 0.0
    for index, path in enumerate(paths):
        # Each request is distinct, so the predictor cannot simply remember answers.
        request = f"{REQUESTS[path]} #{index}" if path == "B" else REQUESTS[path]
        if isinstance(predictor, SetAccuracy):
            predictor.truth[request] = LABELS[path]
        policies: dict[str, SpeculationPolicy] = {
            "never": Never(),
            "always": Always(),
            "predictive": PredictivePolicy(value_of_time=VALUE_OF_TIME),
            "oracle": Branches({"discovery": ["generate"]}) if path == "B" else Never(),
        }
        policy = policies[name]
        result = await planner.run(user_input=request, speculate=policy)
        walls.append(result.wall_time * 1000)
        wasted += result.wasted_time
    walls.sort()
    return {
        "policy": name,
        "mean_ms": round(statistics.fmean(walls), 1),
        "p95_ms": round(walls[int(0.95 * (len(walls) - 1))], 1),
        "wasted_step_s": round(wasted, 2),
        "wasted_dollars": round(wasted * DOLLARS_PER_SECOND, 5),
    }


def measure(
    policies: Sequence[str], paths: Sequence[str], accuracy: float | None = None
) -> list[dict[str, Any]]:
    """Every policy over the same requests, each in a fresh virtual clock."""
    return [
        trio.run(
            run_policy, name, paths, accuracy, clock=trio.testing.MockClock(autojump_threshold=0)
        )
        for name in policies
    ]


async def compare(policies: Sequence[str], *, share_b: float, count: int) -> None:
    """Print the policies' figures over one mix (for `planner.py --policy`)."""
    from rich.console import Console
    from rich.table import Table

    paths = mix(share_b, count)
    rows = await trio.to_thread.run_sync(measure, policies, paths)
    table = Table(title=f"{count} requests, {share_b:.0%} Path B (virtual time)")
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(value) for value in row.values()))
    Console().print(table)
