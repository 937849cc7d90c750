"""The planner-map example (issue 17) reproduces its figures in virtual time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "planner_map.py"


def record(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), *args, "--json"], capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "wall_ms", "repairs", "validated"),
    [
        # plan 800 + research and draft of 4 sub-tasks (5800 one by one, 1500 at once)
        # + generate 1000 + validate 400 + two repairs of 700 + 400
        (("--mode", "sequential"), 10200, 2, True),
        (("--mode", "parallel"), 5900, 2, True),
        (("--mode", "parallel", "--max-parallel", "1"), 10200, 2, True),
        # each repair starts when the version it repairs exists, beside the validator:
        # the two repairs end 400 ms sooner each (the third, speculated, is cancelled)
        (("--mode", "speculative"), 5100, 2, True),
        # rejected every time: one generation and three repairs, then the last, flagged
        (("--mode", "parallel", "--rejections", "5"), 7000, 3, False),
        (("--mode", "speculative", "--rejections", "5"), 5800, 3, False),
    ],
)
def test_planner_map_figures(
    args: tuple[str, ...], wall_ms: float, repairs: int, validated: bool
) -> None:
    result = record(*args)
    assert result["wall_ms"] == wall_ms
    assert result["result"]["repairs"] == repairs
    assert result["result"]["validated"] is validated
    branches = {step["branch"] for step in result["steps"]}
    assert {"drafts[0]", "drafts[3]", "checked#1", f"checked#{repairs + 1}"} <= branches
