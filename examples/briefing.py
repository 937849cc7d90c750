"""The briefing pipeline from seed 002: two documents at once, then procurement, then annex.

Every prompt is pre-composed from the request, as the seed's are: BRIEFING_MD (7 s),
PLAYS_MD (7 s) and PROCUREMENT_JSON (5 s) are independent, and ANNEX_JSON (6 s) reads
procurement, or with `--parallel-json` (the seed's suggestion) runs beside it. At most 2
calls are in flight: the provider's cap, shared by every pipeline of the process
(`--pipelines 3` runs three at once), and each run admits 2 stages at a time. The LLM client
retries, as the seed says, only timeouts, 502, 503 and network errors, once, after 1000 ms
x attempt (`RetryPolicy(schedule="linear", statuses={502, 503})`), within 60 s a call;
never the others (a 400, a 500). A failed stage's output is null and the others go on; it
is reported as `{stage, code, cause, message, hint}` with the seed's codes,
`PARALLEL_FAIL` (a stage of a parallel group) or `SEQUENTIAL_FAIL`; a failed procurement
falls back to the computed metrics.
PROCUREMENT_JSON and ANNEX_JSON ask for structured output: their answers are checked
against `ProcurementMetrics` and `Annex` (a misfit is retried with what was wrong, then
fails the stage naming the field), not parsed out of text by hand.

    python examples/briefing.py                         # the seed's table, failures included
    python examples/briefing.py --fail BRIEFING_MD=503 --json --progress
    python examples/briefing.py --parallel-json --pipelines 3 --json
    python examples/briefing.py --clock real --scale 0.1
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _common
import attrs
import trio
from _common import ask, ask_for, open_llm
from specroute.engine import Flow, RunResult, StepStatus, step
from specroute.engine.llm import ProviderLimits, RetryPolicy
from specroute.engine.report import run_to_json

if TYPE_CHECKING:
    from collections.abc import Callable

    from specroute.engine.llm import LLMClient

# Computed locally from the award data: what procurement falls back to.
COMPUTED_METRICS = {"awards": 14, "total_usd": 2_350_000, "source": "computed metrics"}
# The seed's stage groups: the two documents always run as a parallel group; procurement
# and annex run one after the other (annex reads procurement), or, with `--parallel-json`,
# as a second parallel group (each prompt is pre-composed, so they are independent).
PARALLEL_GROUP = ("briefing", "plays")
STAGES = {"briefing": "BRIEFING_MD", "plays": "PLAYS_MD", "procurement": "PROCUREMENT_JSON",
          "annex": "ANNEX_JSON"}  # fmt: skip


def null(exc: Exception) -> None:
    """A failed stage's output is null; its failure record is made from the trace."""
    return


@step(fallback=null)
async def briefing(request: str, llm: LLMClient) -> str:
    return await ask(llm, "BRIEFING_MD", 7000, f"write the briefing for {request}")


@step(fallback=null)
async def plays(request: str, llm: LLMClient) -> str:
    return await ask(llm, "PLAYS_MD", 7000, f"write the plays for {request}")


@attrs.frozen
class ProcurementMetrics:
    """What PROCUREMENT_JSON answers, as the seed's JSON stage: the award figures."""

    awards: int
    total_usd: int
    summary: str


@attrs.frozen
class Annex:
    """What ANNEX_JSON answers: a titled table of rows."""

    title: str
    rows: tuple[str, ...]


@step(fallback=lambda exc: COMPUTED_METRICS)
async def procurement(request: str, llm: LLMClient) -> dict[str, Any]:
    # Its prompt is pre-composed from the request alone: it does not read the documents.
    prompt = f"award metrics for {request}"
    metrics = await ask_for(llm, "PROCUREMENT_JSON", 5000, prompt, ProcurementMetrics)
    return {**attrs.asdict(metrics), "source": "PROCUREMENT_JSON"}


@step(name="annex", output="annex", fallback=null)
async def annex_after(procurement: dict[str, Any], llm: LLMClient) -> dict[str, Any]:
    table = await ask_for(llm, "ANNEX_JSON", 6000, f"annex for {procurement}", Annex)
    return attrs.asdict(table)


@step(name="annex", output="annex", fallback=null)
async def annex_alone(request: str, llm: LLMClient) -> dict[str, Any]:
    table = await ask_for(llm, "ANNEX_JSON", 6000, f"annex for {request}", Annex)
    return attrs.asdict(table)


def make_flow(parallel_json: bool = False) -> Flow:
    """The pipeline; `parallel_json` runs procurement and annex as a parallel group."""
    return Flow(
        [briefing, plays, procurement, annex_alone if parallel_json else annex_after],
        name="briefing",
        inputs=["request", "llm"],
        outputs=["briefing", "plays", "procurement", "annex"],
    )


def failures(result: RunResult, parallel_json: bool) -> list[dict[str, str | None]]:
    """The seed's failure records, `{stage, code, cause, message, hint}`: `PARALLEL_FAIL` for
    a stage of a parallel group, `SEQUENTIAL_FAIL` for a stage of the sequential group
    (procurement, then annex, unless `--parallel-json`)."""
    parallel = {*PARALLEL_GROUP, *(("procurement", "annex") if parallel_json else ())}
    records = []
    for entry in result.trace:
        if entry.status is not StepStatus.RECOVERED:
            continue
        refused = (entry.error or "").startswith("ProviderHTTPError")
        records.append({
            "stage": STAGES[entry.step],
            "code": "PARALLEL_FAIL" if entry.step in parallel else "SEQUENTIAL_FAIL",
            "cause": "HTTP_ERROR" if refused else "RETRIES_EXHAUSTED",
            "message": entry.error,
            "hint": "computed metrics stand in" if entry.step == "procurement"
            else "not retried: fix the prompt or the request" if refused
            else "transient failure twice: rerun the stage later",
        })  # fmt: skip
    return records


# The seed's progress weights: each stage's share of the whole, in percent.
PROGRESS_WEIGHTS = {"briefing": 30, "plays": 30, "procurement": 20, "annex": 20}


class StageProgress:
    """A `RunObserver`: one line per stage start and end, on stderr (stdout may be JSON),
    with the progress made so far in the seed's weights (30/30/20/20 percent)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.start = clock()
        self.done = 0

    def step_started(self, step: str, branch: str, speculative: bool) -> None:
        print(f"{self.clock() - self.start:6.1f} s  {step:<12} start", file=sys.stderr)

    def step_finished(self, step: str, branch: str, status: StepStatus, seconds: float) -> None:
        self.done += PROGRESS_WEIGHTS.get(step, 0)
        print(
            f"{self.clock() - self.start:6.1f} s  {step:<12} {status:<10} {self.done:3d}%",
            file=sys.stderr,
        )


def write_outputs(folder: Path, outputs: dict[str, Any]) -> None:
    """The seed's files: briefing.md, plays.md, procurement.json, annex.json (a failed
    stage's file says so: `null`, or a Markdown note)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stage in ("briefing", "plays"):
        text = outputs[stage]
        body = text if text is not None else f"_{stage} failed: see the run's errors._\n"
        (folder / f"{stage}.md").write_text(body)
    for stage in ("procurement", "annex"):
        (folder / f"{stage}.json").write_text(json.dumps(outputs[stage], indent=2) + "\n")


async def brief(
    mode: str,
    injected: list[str],
    progress: bool = False,
    parallel_json: bool = False,
    pipelines: int = 1,
) -> dict[str, Any]:
    """Run `pipelines` briefings at once on one LLM client; the first one's record, with
    the most calls the provider saw in flight over all of them."""
    # The cap of 2 calls in flight is the provider's, so every pipeline of this process
    # shares it (the seed's one `ConcurrencyManager`); each run also admits at most 2 steps
    # at a time, so its trace shows when a stage really started.
    limits = ProviderLimits(max_in_flight=2)
    # The seed's retries: only timeouts, 502, 503 and network errors, once, after 1000 ms x
    # attempt; a call may take 60 s in all.
    retry = RetryPolicy(
        max_attempts=2,
        base_delay=_common.SCALE,
        max_delay=_common.SCALE,
        deadline=60 * _common.SCALE,
        schedule="linear",
        statuses={502, 503},
    )
    results: list[RunResult] = []
    async with open_llm(_common.parse_failures(injected), limits=limits, retry=retry) as (
        llm,
        injector,
    ):
        observer = StageProgress(trio.current_time) if progress else None

        async def one() -> None:
            flow = make_flow(parallel_json)
            results.append(
                await flow.run(
                    request="Q3 cloud tender",
                    llm=llm,
                    mode=mode,
                    max_concurrency=2,
                    observer=observer,
                )
            )

        async with trio.open_nursery() as nursery:
            for _ in range(pipelines):
                nursery.start_soon(one)
        statistics = injector.inner.statistics()
    result = results[0]
    values = result.outputs
    return {
        **run_to_json(result),
        "outputs": {name: values[name] for name in STAGES},  # a failed stage: null
        "errors": failures(result, parallel_json),
        "injected": injector.injected,
        "pipelines": pipelines,
        "pipelines_wall_ms": [round(r.wall_time * 1000, 3) for r in results],
        "max_in_flight": statistics.max_in_flight,
        "procurement_source": values["procurement"]["source"],
        "recovered": [e.step for e in result.trace if e.status is StepStatus.RECOVERED],
    }


SCENARIOS = {  # scenario -> injected failures
    "no failures": [],
    "briefing 503, retry ok": ["BRIEFING_MD=503"],
    "briefing 400, no retry": ["BRIEFING_MD=400"],
    "plays timeout x2": ["PLAYS_MD=timeout,timeout"],
    "procurement 502 x2": ["PROCUREMENT_JSON=502,502"],
}


async def main(args: Any) -> None:
    if args.json or args.out:
        record = await brief(
            args.mode, args.fail, args.progress, args.parallel_json, args.pipelines
        )
        if args.out:
            write_outputs(Path(args.out), record["outputs"])
        if args.json:
            _common.dump(record)
        return
    rows = []
    cases = [(scenario, injected, False) for scenario, injected in SCENARIOS.items()]
    cases.insert(1, ("no failures, --parallel-json", [], True))
    for scenario, injected, parallel_json in cases:
        before = await brief("sequential", injected)
        after = await brief("parallel", injected, parallel_json=parallel_json)
        seed = ("25-30 s", "13-18 s") if not injected else ("", "")
        stages = ", ".join(f"{e['stage']} {e['code']}" for e in after["errors"])
        rows.append(
            [
                scenario,
                f"{before['wall_ms']:.0f}",
                f"{after['wall_ms']:.0f}",
                _common.speedup(before["wall_ms"], after["wall_ms"]),
                *seed,
                stages,
            ]
        )
    _common.print_table(
        "Briefing (seed 002): sequential vs specroute, at most 2 calls in flight, wall ms",
        [
            "scenario",
            "sequential ms",
            "specroute ms",
            "saved",
            "seed before",
            "seed after",
            "failed stages",
        ],
        rows,
        ["A retry waits 1000 ms x attempt, as the seed specifies."],
    )


if __name__ == "__main__":
    parse = _common.parser(__doc__)
    parse.add_argument("--mode", choices=["sequential", "parallel"], default="parallel")
    parse.add_argument(
        "--fail",
        action="append",
        default=[],
        metavar="STAGE=KIND[,KIND]",
        help="inject failures: an HTTP status, timeout or network, in order",
    )
    parse.add_argument("--progress", action="store_true", help="print each stage on stderr")
    parse.add_argument(
        "--parallel-json",
        action="store_true",
        help="run procurement and annex as a parallel group (the seed's suggestion)",
    )
    parse.add_argument(
        "--pipelines", type=int, default=1, help="briefings at once, sharing the cap of 2"
    )
    parse.add_argument(
        "--out", metavar="DIR", help="write briefing.md, plays.md, procurement.json, annex.json"
    )
    _common.run(main, parse.parse_args(sys.argv[1:]))
