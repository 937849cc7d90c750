"""A planner that decides its own shape: sub-tasks mapped in parallel, then a repair loop.

The planner (an LLM call, 800 ms) splits the request into sub-tasks; `map_` runs the
sub-task flow (research 600-1400 ms, then a 300 ms draft) once per sub-task, all at once
up to `--max-parallel`; a workflow is assembled from the drafts (1000 ms) and a validator
(400 ms) checks it. `loop` sends a rejected workflow back for repair (700 ms) at most 3
times (`max_iterations=4`: one generation, three repairs), and goes on with the last one,
flagged, if it is still rejected (`on_limit="last"`); the accepted workflow is announced
(500 ms). In speculative mode the loop speculates twice over (`speculate=True`): the next
repair starts as soon as the version it repairs exists, beside the validator, and is
cancelled if the validator accepts; and the announcement starts on a predicted "valid",
beside the first validation, kept if it passes (`--rejections 0`) and started again on the
last version if not. Offline, on the simulated provider.

    python examples/planner_map.py                          # every mode, as a table
    python examples/planner_map.py --rejections 0           # the predicted valid is kept
    python examples/planner_map.py --mode parallel --json   # one run record
    python examples/planner_map.py --rejections 5           # hits the bound
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import _common
from _common import ask, open_llm
from specroute.engine import Flow, LoopResult, loop, map_, step
from specroute.engine.report import run_to_json

if TYPE_CHECKING:
    import argparse

    from specroute.engine.llm import LLMClient

REQUEST = "weekly changelog: collect merged PRs, group by area, post to the team channel"
SUBTASKS = ["collect merged PRs", "group by area", "write summary", "post to channel"]
REJECTIONS = 2  # the validator rejects the first two versions (two repairs)


@step
async def plan(request: str, llm: LLMClient) -> list[str]:
    await ask(llm, "PLAN", 800, f"split into sub-tasks: {request}")
    return SUBTASKS


@step
async def research(subtask: str, llm: LLMClient) -> str:
    await ask(llm, "RESEARCH", 600 + 200 * len(subtask.split()), f"how to: {subtask}")
    return f"notes on {subtask}"


@step
async def draft(research: str, subtask: str, llm: LLMClient) -> str:
    await ask(llm, "DRAFT", 300, f"one workflow step from: {research}")
    return f"step: {subtask}"


@step
async def generate(drafts: tuple[str, ...], llm: LLMClient, rejected: str | None = None) -> str:
    """The first version from the drafts, or a repair of the version the validator rejected."""
    if rejected is None:
        await ask(llm, "GENERATE", 1000, f"workflow from {len(drafts)} steps")
        return " -> ".join(drafts) + " [v1]"
    await ask(llm, "REPAIR", 700, f"repair: {rejected}")
    version = int(rejected.rsplit("[v", 1)[1].rstrip("]"))
    return f"{rejected.rsplit(' [v', 1)[0]} [v{version + 1}]"


@step
async def valid(generate: str, llm: LLMClient, rejections: int) -> bool:
    await ask(llm, "VALIDATE", 400, f"check: {generate}")
    return int(generate.rsplit("[v", 1)[1].rstrip("]")) > rejections


@step
async def workflow(checked: LoopResult, llm: LLMClient) -> dict[str, Any]:
    """Announce the workflow: started on the first version while it is validated."""
    await ask(llm, "ANNOUNCE", 500, f"announce: {checked['generate']}")
    return {
        "workflow": checked["generate"],
        "repairs": checked.iterations - 1,
        "validated": checked.converged,
    }


def planner(max_parallel: int | None) -> Flow:
    subtask = Flow([research, draft], name="subtask", outputs=["draft"])
    return Flow(
        [
            plan,
            map_(subtask, over="plan", item="subtask", into="drafts", max_parallel=max_parallel),
            loop(
                [generate, valid],
                until="valid",
                into="checked",
                carry={"rejected": "generate"},
                max_iterations=4,  # one generation and at most 3 repairs
                on_limit="last",
                speculate=True,  # repair beside the validator; announce on a guessed valid
            ),
            workflow,
        ],
        name="planner_map",
        inputs=["request", "llm", "rejections"],
    )


async def once(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    async with open_llm() as (llm, _):
        result = await planner(args.max_parallel).run(
            request=REQUEST, llm=llm, rejections=args.rejections, mode=mode
        )
    guesses = [g for g in result.predicted_values if g.step == "checked" and g.speculated]
    guess = "-" if not guesses else "kept" if guesses[0].confirmed else "refuted"
    return run_to_json(result) | {"result": result.outputs["workflow"], "guessed_valid": guess}


async def main(args: argparse.Namespace) -> None:
    if args.json:
        _common.dump(await once(args.mode, args))
        return
    runs = [await once(mode, args) for mode in ("sequential", "parallel", "speculative")]
    before = runs[0]["wall_ms"]
    rows = [
        [run["mode"], f"{run['wall_ms']:.0f}", _common.speedup(before, run["wall_ms"]),
         f"{run['wasted_ms']:.0f}", run["result"]["repairs"], run["result"]["validated"],
         run["guessed_valid"]]
        for run in runs
    ]  # fmt: skip
    _common.print_table(
        f"Planner with a map of {len(SUBTASKS)} sub-tasks and a repair loop, wall ms",
        [
            "mode",
            "wall ms",
            "saved / speed-up x",
            "wasted ms",
            "repairs",
            "validated",
            "guessed valid",
        ],
        rows,
        [f"workflow: {runs[-1]['result']['workflow']}"],
    )


if __name__ == "__main__":
    parse = _common.parser(__doc__)
    parse.add_argument("--mode", choices=["sequential", "parallel", "speculative"],
                       default="speculative")  # fmt: skip
    parse.add_argument("--max-parallel", type=int, default=None, help="sub-tasks at once")
    parse.add_argument("--rejections", type=int, default=REJECTIONS,
                       help="versions rejected (more than 3: the bound is hit)")  # fmt: skip
    _common.run(main, parse.parse_args(sys.argv[1:]))
