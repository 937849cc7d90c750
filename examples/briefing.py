"""The briefing pipeline from seed 002: two documents at once, then procurement, then annex.

Every prompt is pre-composed from the request, as the seed's are: BRIEFING_MD (7 s),
PLAYS_MD (7 s) and PROCUREMENT_JSON (5 s) are independent, and ANNEX_JSON (6 s) reads
procurement, or with `--parallel-json` (the seed's suggestion) runs beside it. At most 2
calls are in flight: the provider's cap, shared by every pipeline of the process
(`--pipelines 3` runs three at once), and each run admits 2 stages at a time. The LLM client
retries, as the seed says, only timeouts, 502, 503 and network errors, once, after 1000 ms
x attempt (`RetryPolicy(schedule="linear", statuses={502, 503})`), each attempt within 60 s
(an injected timeout takes those 60 s, as a real one does); never the others (a 400, a
500). `--progress` shows the seed's weighted progress, and a note when a stage retries. A
failed stage's output is null and the others go on; it is reported as `{stage, code, cause,
message, hint}` with the seed's codes, `PARALLEL_FAIL` (a stage of a parallel group) or
`SEQUENTIAL_FAIL`; a failed procurement falls back to the computed metrics.
PROCUREMENT_JSON and ANNEX_JSON ask for structured output: their answers are checked
against `ProcurementMetrics` and `Annex` (a misfit is retried with what was wrong, then
fails the stage naming the field), not parsed out of text by hand.

    python examples/briefing.py                         # the seed's table, failures included
    python examples/briefing.py --fail BRIEFING_MD=503 --json --progress
    python examples/briefing.py --parallel-json --pipelines 3 --json
    python examples/briefing.py --request "Q4 network tender" --out briefing/ --log runs.jsonl
    python examples/briefing.py --clock real --scale 0.01
"""

from __future__ import annotations

import json
import sys
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import _common
import attrs
import httpx
import trio
from _common import ask, ask_for
from specroute.engine import Flow, RunResult, StepStatus, step
from specroute.engine.llm import (
    ProviderLimits,
    RetryPolicy,
    SimulatedModel,
    SimulatedTransport,
    open_llm_client,
)
from specroute.engine.report import run_to_json

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from specroute.engine.llm import LLMClient

# What the briefing is for, unless `--request` says.
REQUEST = "Q3 cloud tender"
# Computed locally from the award data: what procurement falls back to.
COMPUTED_METRICS = {"awards": 14, "total_usd": 2_350_000, "source": "computed metrics"}
# The seed's stage groups: the two documents always run as a parallel group; procurement
# and annex run one after the other (annex reads procurement), or, with `--parallel-json`,
# as a second parallel group (each prompt is pre-composed, so they are independent).
PARALLEL_GROUP = ("briefing", "plays")
STAGES = {"briefing": "BRIEFING_MD", "plays": "PLAYS_MD", "procurement": "PROCUREMENT_JSON",
          "annex": "ANNEX_JSON"}  # fmt: skip
STEPS = {stage: step for step, stage in STAGES.items()}


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


@attrs.frozen
class LatencyMetrics:
    """The seed's `LatencyMetrics`, read off a run's trace: each stage, each group (the
    second one is parallel too with `--parallel-json`), the run, and the speed-up against
    the same stages one at a time."""

    briefing_ms: float
    plays_ms: float
    procurement_ms: float
    annex_ms: float
    parallel_group_ms: float
    sequential_group_ms: float
    total_ms: float
    speedup_ratio: float

    @classmethod
    def of(cls, result: RunResult) -> LatencyMetrics:
        entries = {entry.step: entry for entry in result.trace}

        def span(*steps: str) -> float:
            start = min(entries[step].start for step in steps)
            return round((max(entries[step].end for step in steps) - start) * 1000, 3)

        return cls(
            briefing_ms=span("briefing"), plays_ms=span("plays"),
            procurement_ms=span("procurement"), annex_ms=span("annex"),
            parallel_group_ms=span(*PARALLEL_GROUP),
            sequential_group_ms=span("procurement", "annex"),
            total_ms=round(result.wall_time * 1000, 3),
            speedup_ratio=round(result.sequential_time / result.wall_time, 3),
        )  # fmt: skip

    def print(self) -> None:
        """Print the seed's `logLatencyMetrics` table."""
        _common.print_table("Latency metrics (the seed's table)", ["metric", "value"], [
            ["Parallel Group (Briefing + Plays)", f"{self.parallel_group_ms:.0f}ms"],
            ["Sequential Group (Procurement + Annex)", f"{self.sequential_group_ms:.0f}ms"],
            ["Total Time", f"{self.total_ms:.0f}ms"],
            ["Speedup vs Sequential", f"{self.speedup_ratio:.1f}x faster"],
        ])  # fmt: skip


# The seed's progress weights: each stage's share of the whole, in percent.
PROGRESS_WEIGHTS = {"briefing": 30, "plays": 30, "procurement": 20, "annex": 20}
# What a stage in each state counts of its weight, as the seed's `calculateOverallProgress`.
PROGRESS_SHARE = {"pending": 0.0, "running": 0.5, "complete": 1.0, "failed": 0.0}


class StageProgress:
    """A `RunObserver`: one line per stage start, end and retry, on stderr (stdout may be
    JSON), with the overall progress as the seed computes it (a stage's weight, 30/30/20/20
    percent, once complete, half of it while running, none once failed)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.start = clock()
        self.status = dict.fromkeys(PROGRESS_WEIGHTS, "pending")

    def percent(self) -> float:
        return sum(w * PROGRESS_SHARE[self.status[s]] for s, w in PROGRESS_WEIGHTS.items())

    def note(self, step: str, what: str) -> None:
        now = self.clock() - self.start
        print(f"{now:6.1f} s  {step:<12} {what:<44} {self.percent():3.0f}%", file=sys.stderr)

    def step_started(self, step: str, branch: str, speculative: bool) -> None:
        self.status[step] = "running"
        self.note(step, "start")

    def step_finished(self, step: str, branch: str, status: StepStatus, seconds: float) -> None:
        self.status[step] = "complete" if status is StepStatus.OK else "failed"
        self.note(step, str(status))


# The seed's per-call timeout: an attempt with no answer within 60 s (x scale) fails.
CALL_TIMEOUT = 60.0


def stage_of(request: httpx.Request) -> str:
    """The stage a request is for: its prompt starts with `"STAGE: "` (OpenAI or Anthropic)."""
    messages = json.loads(request.content).get("messages") or [{"content": ""}]
    content = messages[-1]["content"]
    text = content if isinstance(content, str) else " ".join(str(b.get("text")) for b in content)
    return str(text).split(":", 1)[0]


@attrs.define(eq=False)
class CostlyTimeouts(_common.InjectedFailures):
    """Injected failures where a `timeout` costs what a real one does: the client's read
    timeout (60 s x scale) passes before the attempt fails, as it would on a silent server."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        queue = self.plan.get(stage_of(request))
        if queue and queue[0] == "timeout":
            await trio.sleep(request.extensions.get("timeout", {}).get("read") or 0.0)
        return await super().handle_async_request(request)


@attrs.define(eq=False)
class RetryWatch(httpx.AsyncBaseTransport):
    """Passes every request on and remembers each stage's failed attempts, so a retry is
    seen (and noted in the progress) the moment the LLM client sends it: the client itself
    tells no one that it retries. Stages are told apart by name only (`--pipelines` share)."""

    inner: httpx.AsyncBaseTransport
    progress: StageProgress | None = None
    max_attempts: int = 2
    retries: list[dict[str, Any]] = attrs.field(factory=list)
    started: float = attrs.field(factory=trio.current_time)
    failed: dict[str, list[str]] = attrs.field(factory=dict)  # stage -> why, attempt by attempt

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        stage = stage_of(request)
        if causes := self.failed.get(stage):
            at_ms = round((trio.current_time() - self.started) * 1000, 3)
            retry = {"stage": stage, "attempt": len(causes) + 1, "after": causes[-1]}
            self.retries.append({**retry, "at_ms": at_ms})
            if self.progress is not None and stage in STEPS:
                what = f"retrying (attempt {len(causes) + 1} of {self.max_attempts}, after"
                self.progress.note(STEPS[stage], f"{what} {causes[-1]})")
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TransportError as exc:  # a timeout or a network error: noted, re-raised
            self.failed.setdefault(stage, []).append(type(exc).__name__)
            raise
        if response.status_code >= 400:
            self.failed.setdefault(stage, []).append(str(response.status_code))
        else:
            self.failed.pop(stage, None)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def retry_policy() -> RetryPolicy:
    """The seed's retries: only timeouts, 502, 503 and network errors, once, after 1000 ms x
    attempt. Each attempt has `CALL_TIMEOUT` (the HTTP read timeout), so the call needs no
    deadline of its own: two attempts and the wait take at most 121 s (x scale)."""
    scale = _common.SCALE
    return RetryPolicy(max_attempts=2, base_delay=scale, max_delay=scale, deadline=None,
                       schedule="linear", statuses={502, 503})  # fmt: skip


@asynccontextmanager
async def open_briefing_llm(
    injected: list[str], progress: StageProgress | None
) -> AsyncIterator[tuple[LLMClient, RetryWatch, CostlyTimeouts]]:
    """The LLM `--provider` names, capped at 2 calls in flight for the whole process (the
    seed's one `ConcurrencyManager`), behind a `RetryWatch`; `injected` failures (simulated
    provider only) cost what real ones do."""
    plan = _common.parse_failures(injected)
    if plan and _common.PROVIDER != "simulated":
        raise SystemExit(f"failure injection ({', '.join(plan)}) needs --provider simulated")
    rate = _common.TOKENS_PER_SECOND / _common.SCALE
    speed = SimulatedModel(first_token_latency=0.0, tokens_per_second=rate)
    simulated = CostlyTimeouts(SimulatedTransport(speed), plan)
    provider = _common.make_provider(simulated, limits=ProviderLimits(max_in_flight=2))
    inner: httpx.AsyncBaseTransport = simulated
    if _common.PROVIDER != "simulated":  # a real provider: the network, watched all the same
        inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=100))
    retry = retry_policy()
    watch = RetryWatch(inner, progress, max_attempts=retry.max_attempts)
    timeout = httpx.Timeout(10.0, read=CALL_TIMEOUT * _common.SCALE)
    async with open_llm_client(
        provider, retry=retry, timeout=timeout, seed=0, transport=watch
    ) as llm:
        yield llm, watch, simulated


async def brief(
    mode: str,
    injected: list[str],
    *,
    request: str = REQUEST,
    progress: bool = False,
    parallel_json: bool = False,
    pipelines: int = 1,
    label: str = "",
) -> dict[str, Any]:
    """Run `pipelines` briefings of `request` at once on one LLM client; the first one's
    record, with the most calls the provider saw in flight over all of them."""
    observer = StageProgress(trio.current_time) if progress else None
    results: list[RunResult] = []
    async with open_briefing_llm(injected, observer) as (llm, watch, injector):

        async def one(observe: bool) -> None:
            # Each run admits at most 2 stages at a time, so its trace shows when a stage
            # really started (the cap itself is the provider's, shared by every run).
            result = await make_flow(parallel_json).run(
                request=request, llm=llm, mode=mode, max_concurrency=2,
                observer=observer if observe else None,
            )  # fmt: skip
            results.append(result)
            _common.log_run(result, label or mode, {"request": request})

        async with trio.open_nursery() as nursery:
            for index in range(pipelines):
                nursery.start_soon(one, index == 0)  # the progress follows the first run
        statistics = injector.inner.statistics()
    result = results[0]
    values = result.outputs
    return {
        **run_to_json(result),
        "outputs": {name: values[name] for name in STAGES},  # a failed stage: null
        "errors": failures(result, parallel_json),
        "latency_metrics": attrs.asdict(LatencyMetrics.of(result)),
        "injected": injector.injected,
        "retries": watch.retries,
        "pipelines": pipelines,
        "pipelines_wall_ms": [round(r.wall_time * 1000, 3) for r in results],
        # The seed's "no race conditions" test: runs at once give the same structure.
        "pipelines_same_structure": len({structure(r) for r in results}) == 1,
        "max_in_flight": statistics.max_in_flight if _common.PROVIDER == "simulated" else None,
        "procurement_source": values["procurement"]["source"],
        "recovered": [e.step for e in result.trace if e.status is StepStatus.RECOVERED],
    }


def structure(result: RunResult) -> str:
    """A run's outputs with every text and number blanked: their shape, for comparing runs."""

    def blank(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: blank(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [blank(item) for item in value]
        return type(value).__name__

    return json.dumps(blank(dict(result.outputs)), sort_keys=True)


def output_files(outputs: dict[str, Any]) -> dict[str, Any]:
    """The seed's files: briefing.md, plays.md, procurement.json, annex.json (a failed
    stage's JSON is `null`, its Markdown a note saying so)."""
    files: dict[str, Any] = {}
    for stage in ("briefing", "plays"):
        text = outputs[stage]
        files[f"{stage}.md"] = text if text is not None else f"_{stage} failed: see errors._"
    for stage in ("procurement", "annex"):
        files[f"{stage}.json"] = json.dumps(outputs[stage], indent=2)
    return files


SCENARIOS = {  # scenario -> injected failures
    "no failures": [],
    "briefing 503, retry ok": ["BRIEFING_MD=503"],
    "briefing 400, no retry": ["BRIEFING_MD=400"],
    "plays timeout, retry ok": ["PLAYS_MD=timeout"],
    "plays timeout x2": ["PLAYS_MD=timeout,timeout"],
    "procurement 502 x2": ["PROCUREMENT_JSON=502,502"],
}


async def main(args: Any) -> None:
    # Any flag about one run runs one; none prints the seed's table of scenarios.
    one = (args.mode, args.request, args.fail, args.parallel_json, args.out, args.progress)
    if args.json or args.pipelines > 1 or any(one):
        record = await brief(
            args.mode or "parallel", args.fail, request=args.request or REQUEST,
            progress=args.progress, parallel_json=args.parallel_json, pipelines=args.pipelines,
        )  # fmt: skip
        if args.out:
            files = output_files(record["outputs"])
            record["files"] = await trio.to_thread.run_sync(_common.write_outputs, args.out, files)
        if args.json:
            _common.dump(record)
        else:
            LatencyMetrics(**record["latency_metrics"]).print()
            failed = ", ".join(e["stage"] for e in record["errors"]) or "none"
            written = ", ".join(record.get("files", [])) or "nothing (use --out DIR)"
            print(f"{record['wall_ms']:.0f} ms; failed stages: {failed}; wrote {written}")
        return
    rows = []
    cases = [(scenario, injected, False) for scenario, injected in SCENARIOS.items()]
    cases.insert(1, ("no failures, --parallel-json", [], True))
    for scenario, injected, parallel_json in cases:
        before = await brief("sequential", injected, label=f"sequential: {scenario}")
        after = await brief(
            "parallel", injected, parallel_json=parallel_json, label=f"parallel: {scenario}"
        )
        seed = ("25-30 s", "13-18 s") if not injected else ("", "")
        stages = ", ".join(f"{e['stage']} {e['code']}" for e in after["errors"])
        saved = _common.speedup(before["wall_ms"], after["wall_ms"])
        rows.append([scenario, f"{before['wall_ms']:.0f}", f"{after['wall_ms']:.0f}", saved,
                     *seed, stages])  # fmt: skip
    _common.print_table(
        "Briefing (seed 002): sequential vs specroute, at most 2 calls in flight, wall ms",
        ["scenario", "sequential ms", "specroute ms", "saved", "seed before", "seed after",
         "failed stages"],
        rows,
        ["A retry waits 1000 ms x attempt; a timeout takes the 60 s a call may take, as the "
         "seed specifies."],
    )  # fmt: skip


if __name__ == "__main__":
    parse = _common.parser(__doc__)
    parse.add_argument("--request", help=f"what the briefing is for (default {REQUEST!r})")
    parse.add_argument("--mode", choices=["sequential", "parallel"], help="default: parallel")
    parse.add_argument(
        "--fail",
        action="append",
        default=[],
        metavar="STAGE=KIND[,KIND]",
        help="inject failures: an HTTP status, timeout or network, in order",
    )
    parse.add_argument(
        "--progress", action="store_true", help="print each stage and retry on stderr"
    )
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
