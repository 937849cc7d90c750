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
    ("args", "wall_ms", "repairs", "validated", "guessed"),
    [
        # plan 800 + research and draft of 4 sub-tasks (5800 one by one, 1500 at once)
        # + generate 1000 + validate 400 + two repairs of 700 + 400 + announce 500
        (("--mode", "sequential"), 10700, 2, True, "-"),
        (("--mode", "parallel"), 6400, 2, True, "-"),
        (("--mode", "parallel", "--max-parallel", "1"), 10700, 2, True, "-"),
        # each repair starts when the version it repairs exists, beside the validator:
        # the two repairs end 400 ms sooner each (the third, speculated, is cancelled); the
        # announcement started on a predicted valid is cancelled by the first rejection
        (("--mode", "speculative"), 5600, 2, True, "refuted"),
        # accepted at once: the announcement, started beside the validator, is kept
        (("--mode", "parallel", "--rejections", "0"), 4200, 0, True, "-"),
        (("--mode", "speculative", "--rejections", "0"), 3800, 0, True, "kept"),
        # rejected every time: one generation and three repairs, then the last, flagged
        (("--mode", "parallel", "--rejections", "5"), 7500, 3, False, "-"),
        (("--mode", "speculative", "--rejections", "5"), 6300, 3, False, "refuted"),
    ],
)
def test_planner_map_figures(
    args: tuple[str, ...], wall_ms: float, repairs: int, validated: bool, guessed: str
) -> None:
    result = record(*args)
    assert result["wall_ms"] == wall_ms
    assert result["guessed_valid"] == guessed
    assert result["result"]["repairs"] == repairs
    assert result["result"]["validated"] is validated
    branches = {step["branch"] for step in result["steps"]}
    assert {"drafts[0]", "drafts[3]", "checked#1", f"checked#{repairs + 1}"} <= branches
