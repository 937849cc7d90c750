"""The briefing pipeline from seed 002: two documents at once, then procurement, then annex.

BRIEFING_MD (7 s) and PLAYS_MD (7 s) are independent; PROCUREMENT_JSON (5 s) reads both and
ANNEX_JSON (6 s) reads procurement. At most 2 calls are in flight (`max_concurrency=2`).
The LLM client retries transient failures (timeout, 502, 503, network) once with backoff and
never retries the others (a 400). A failed stage leaves the others intact and is reported as
`{stage, code, message, hint}`; a failed procurement falls back to the computed metrics.
PROCUREMENT_JSON and ANNEX_JSON ask for structured output: their answers are checked
against `ProcurementMetrics` and `Annex` (a misfit is retried with what was wrong, then
fails the stage naming the field), not parsed out of text by hand.

    python examples/briefing.py                         # the seed's table, failures included
    python examples/briefing.py --fail BRIEFING_MD=503 --json --progress
    python examples/briefing.py --clock real --scale 0.1
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import _common
import attrs
import trio
from _common import ask, ask_for, open_llm
from specroute.engine import Flow, RunResult, StepStatus, step
from specroute.engine.llm import ProviderHTTPError, ProviderLimits, RetryPolicy
from specroute.engine.report import run_to_json

if TYPE_CHECKING:
    from collections.abc import Callable

    from specroute.engine.llm import LLMClient

# Computed locally from the award data: what procurement falls back to.
COMPUTED_METRICS = {"awards": 14, "total_usd": 2_350_000, "source": "computed metrics"}


def failure(stage: str) -> Callable[[Exception], dict[str, str]]:
    """A fallback that turns the stage's exception into a `{stage, code, message, hint}`."""

    def record(exc: Exception) -> dict[str, str]:
        if isinstance(exc, ProviderHTTPError):
            code, hint = f"HTTP_{exc.status}", "not retried: fix the prompt or the request"
        else:
            code, hint = "RETRIES_EXHAUSTED", "transient failure twice: rerun the stage later"
        return {"stage": stage, "code": code, "message": str(exc), "hint": hint}

    return record


@step(fallback=failure("BRIEFING_MD"))
async def briefing(request: str, llm: LLMClient) -> str:
    return await ask(llm, "BRIEFING_MD", 7000, f"write the briefing for {request}")


@step(fallback=failure("PLAYS_MD"))
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
async def procurement(
    briefing: str | dict[str, str], plays: str | dict[str, str], llm: LLMClient
) -> dict[str, Any]:
    prompt = f"metrics for {briefing!s:.80} {plays!s:.80}"
    metrics = await ask_for(llm, "PROCUREMENT_JSON", 5000, prompt, ProcurementMetrics)
    return {**attrs.asdict(metrics), "source": "PROCUREMENT_JSON"}


@step(fallback=failure("ANNEX_JSON"))
async def annex(procurement: dict[str, Any], llm: LLMClient) -> dict[str, Any]:
    table = await ask_for(llm, "ANNEX_JSON", 6000, f"annex for {procurement}", Annex)
    return attrs.asdict(table)


flow = Flow(
    [briefing, plays, procurement, annex],
    name="briefing",
    inputs=["request", "llm"],
    outputs=["briefing", "plays", "procurement", "annex"],
)


class StageProgress:
    """A `RunObserver`: one line per stage start and end, on stderr (stdout may be JSON)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.start = clock()

    def step_started(self, step: str, branch: str, speculative: bool) -> None:
        print(f"{self.clock() - self.start:6.1f} s  {step:<12} start", file=sys.stderr)

    def step_finished(self, step: str, branch: str, status: StepStatus, seconds: float) -> None:
        print(f"{self.clock() - self.start:6.1f} s  {step:<12} {status}", file=sys.stderr)


async def brief(mode: str, failures: list[str], progress: bool = False) -> dict[str, Any]:
    # The cap of 2 calls in flight is the provider's (shared by every client of it) and the
    # run's: either alone keeps the seed's promise.
    limits = ProviderLimits(max_in_flight=2)
    # Transient failures get one retry after a backoff of up to 1 s (full jitter), scaled.
    retry = RetryPolicy(max_attempts=2, base_delay=_common.SCALE, max_delay=_common.SCALE)
    async with open_llm(_common.parse_failures(failures), limits=limits, retry=retry) as (
        llm,
        injector,
    ):
        observer = StageProgress(trio.current_time) if progress else None
        result: RunResult = await flow.run(
            request="Q3 cloud tender", llm=llm, mode=mode, max_concurrency=2, observer=observer
        )
        statistics = injector.inner.statistics()
    values = result.outputs
    errors = [v for v in values.values() if isinstance(v, dict) and "code" in v]
    return {
        **run_to_json(result),
        "errors": errors,
        "injected": injector.injected,
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
    if args.json:
        _common.dump(await brief(args.mode, args.fail, args.progress))
        return
    rows = []
    for scenario, failures in SCENARIOS.items():
        before = await brief("sequential", failures)
        after = await brief("parallel", failures)
        seed = ("25-30 s", "13-18 s") if not failures else ("", "")
        stages = ", ".join(f"{e['stage']} {e['code']}" for e in after["errors"])
        if after["procurement_source"] != "PROCUREMENT_JSON":
            stages = "PROCUREMENT_JSON: computed metrics"
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
        [
            "A retry waits a full-jitter backoff of up to 1 s (seeded), so retried runs are not "
            "round numbers."
        ],
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
    _common.run(main, parse.parse_args(sys.argv[1:]))
