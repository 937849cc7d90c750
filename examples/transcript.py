"""The transcript analysis from seed 003: two stages of four analyzers, three calls at a time.

Stage A's analyzers (summary 6 s, entities 5 s, sentiment 4 s, topics 3 s) read a transcript
file; Stage B's (hypotheses 7 s, risks 6 s, recommendations 5 s, questions 4 s) read the
Stage B context, built as the seed's `build_stage_b_context`: each Stage A analyzer's top
insights and its selected structured keys, then the transcript, in priority order, within
`--token-budget` tokens (the seed's 8000). Over budget, the lowest-priority sections go
whole, and the last one left is cut to fit. Tokens are counted with the library's estimator
(`estimate_tokens`: one per 4 characters). A failed analyzer's section is left out and its
stage goes on. LLM calls retry 429 and 5xx (timeouts and network errors too) after an
exponential backoff with full jitter (or the provider's `Retry-After`), at most 4 attempts.

The simulated model answers filler words, so on it a Stage A analyzer's insights are the
transcript lines that match its cues, most cues first; a real model's bullet lines are used
as written. Structured data is counted from the transcript either way.

A run directory holds `stage_a/*.json`, `stage_b/*.json` and `metadata.json` (written at each
stage's end, then with the final summary). `--mode both` (the default) runs the synchronous
baseline, then the concurrent run, and writes `logs/benchmark.json` comparing them.

    python examples/transcript.py                               # before/after, files in a temp dir
    python examples/transcript.py --fail risks=503 --json       # retried after a jittered backoff
    python examples/transcript.py --fail sentiment=400 --token-budget 500 --out runs
    python examples/transcript.py --clock real --scale 0.01
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _common
import attrs
import trio
from _common import ask, open_llm
from rich.markup import escape
from specroute.engine import Flow, RunResult, Step, step
from specroute.engine.llm import RetryPolicy, UsageMeter, estimate_tokens, record_usage
from specroute.engine.report import run_to_json

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from specroute.engine.llm import LLMClient

TRANSCRIPT = Path(__file__).parent / "data" / "meeting-transcript.txt"
LINE = re.compile(r"^\[(?P<at>[\d:]+)\] (?P<speaker>[^:]+): (?P<text>.+)$")
PROMPT = "Analyse this meeting as the {name} analyzer: one insight a line, as '- ', best first."
# The seed's resilience: backoff with full jitter on 429 and 5xx (and on timeouts and network
# errors, which `RetryPolicy` always retries), at most 4 attempts.
RETRIED = frozenset({429, *range(500, 600)})


@attrs.frozen
class Analyzer:
    """An analyzer's simulated seconds, its section's priority in the Stage B context (higher
    stays longer; the transcript's is 0) and the cues its evidence lines match."""

    seconds: int
    priority: int = 0
    cues: tuple[str, ...] = ()


# Unequal, as real analyzers are. On 3 slots a stage ends at its optimal makespan when the
# longest three start first and the fourth takes the first free slot (7 s for Stage A, 9 s
# for Stage B): the run admits the longest estimate first (`admit="longest"`).
STAGE_A = {
    "summary": Analyzer(6, 4, ("decided", "agreed", "decision", "summarise", "action")),
    "entities": Analyzer(5, 3, ("northwind", "card network", "grafana", "legal", "aws")),
    "sentiment": Analyzer(4, 1, ("worried", "concern", "frustrated", "great", "nervous")),
    "topics": Analyzer(3, 2, ("agenda item", "theme")),
}
STAGE_B = {
    "hypotheses": Analyzer(7),
    "risks": Analyzer(6),
    "recommendations": Analyzer(5),
    "questions": Analyzer(4),
}


@attrs.frozen(kw_only=True)
class ContextSettings:
    """The seed's `processing.stage_b_context_*` settings (`include_transcript` is on here,
    off in the seed: it is what makes the budget bite)."""

    token_budget: int = attrs.field(default=8000, validator=attrs.validators.ge(0))
    top_insights: int = attrs.field(default=5, validator=attrs.validators.ge(0))
    structured_keys: tuple[str, ...] = ("mentions", "by_speaker")
    include_transcript: bool = True


@attrs.frozen(kw_only=True)
class Analysis:
    """One analyzer's result, as its stage writes it (`stage_a/summary.json`...)."""

    analyzer: str
    status: str = "ok"
    insights: tuple[str, ...] = ()
    structured: dict[str, Any] = attrs.field(factory=dict)
    text: str = ""
    error: str | None = None


@attrs.frozen
class Section:
    """One section of the Stage B context: whose, how important, its text."""

    name: str
    priority: int
    text: str


@attrs.frozen(kw_only=True)
class Trimmed:
    """The Stage B context within its budget, and what the trimming did to get there."""

    text: str
    budget: int
    tokens: int
    tokens_before: int
    kept: tuple[str, ...]
    dropped: tuple[str, ...]
    truncated: str | None
    left_out: tuple[str, ...] = ()


def fit(sections: Iterable[Section], budget: int) -> Trimmed:
    """Join `sections`, highest priority first, within `budget` tokens: drop the lowest ones
    whole while over, then cut the last one left to the longest prefix that fits."""
    kept = sorted(sections, key=lambda section: -section.priority)
    before = estimate_tokens(join(kept))
    dropped = []
    while len(kept) > 1 and estimate_tokens(join(kept)) > budget:
        dropped.append(kept.pop().name)
    text = join(kept)
    truncated = kept[0].name if estimate_tokens(text) > budget else None
    if truncated:  # the estimate grows with the length, so bisect for the longest prefix
        fits = bisect.bisect_right(
            range(len(text) + 1), budget, key=lambda n: estimate_tokens(text[:n])
        )
        text = text[: fits - 1]
    return Trimmed(
        text=text,
        budget=budget,
        tokens=estimate_tokens(text),
        tokens_before=before,
        kept=tuple(s.name for s in kept),
        dropped=tuple(dropped),
        truncated=truncated,
    )


def join(sections: Sequence[Section]) -> str:
    return "\n\n".join(section.text for section in sections)


def section(result: Analysis, settings: ContextSettings) -> Section:
    """A Stage A result's section: its top insights, then its selected structured keys."""
    insights = [f"- {insight}" for insight in result.insights[: settings.top_insights]]
    keys = [
        f"{key}: {json.dumps(result.structured[key])}"
        for key in settings.structured_keys
        if key in result.structured
    ]
    text = "\n".join([f"## {result.analyzer}", *insights, *keys])
    return Section(result.analyzer, STAGE_A[result.analyzer].priority, text)


def evidence(transcript: str, cues: Sequence[str]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The transcript lines that match `cues`, most matches first, and counts of them."""
    lines = [m for line in transcript.splitlines() if (m := LINE.match(line))]
    hits = {m[0]: sum(m[0].lower().count(cue) for cue in cues) for m in lines}
    found = sorted((m for m in lines if hits[m[0]]), key=lambda m: -hits[m[0]])
    speakers = Counter(m["speaker"] for m in found)
    counts = {
        "mentions": len(found),
        "by_speaker": dict(speakers.most_common()),
        "evidence_at": sorted(m["at"] for m in found),
    }
    return tuple(m[0] for m in found), counts


def bullets(text: str) -> tuple[str, ...]:
    return tuple(line[2:].strip() for line in text.splitlines() if line.startswith(("- ", "* ")))


@attrs.define(eq=False)
class Ledger:
    """What a run measures of its analyzers' LLM calls: one usage meter each."""

    started: float = attrs.field(factory=trio.current_time)
    meters: dict[str, UsageMeter] = attrs.field(
        factory=lambda: {name: UsageMeter() for name in STAGE_A | STAGE_B}
    )

    def calls(self, name: str) -> dict[str, Any]:
        """An analyzer's latency, tokens and attempts (a retry's backoff included)."""
        records = self.meters[name].records()
        usage = self.meters[name].statistics()
        attempts = [attempt for record in records for attempt in record.attempts]
        return {
            "started_ms": ms(records[0].started - self.started),
            "ended_ms": ms(records[-1].finished - self.started),
            "latency_ms": ms(records[-1].finished - records[0].started),
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "attempts": [
                {
                    "status": a.status_code,
                    "error": a.error,
                    "backoff_ms": None if a.delay is None else ms(a.delay),
                }
                for a in attempts
            ],
        }

    def stage(self, results: dict[str, Analysis]) -> dict[str, Any]:
        """A stage's start and end (ms from the run's start) and each analyzer's figures."""
        calls = {name: {"status": r.status, **self.calls(name)} for name, r in results.items()}
        started = min(call["started_ms"] for call in calls.values())
        ended = max(call["ended_ms"] for call in calls.values())
        return {
            "started_ms": started,
            "ended_ms": ended,
            "makespan_ms": round(ended - started, 3),
            "analyzers": calls,
        }


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


# --- the pipeline ---------------------------------------------------------------------------


def analyzer(name: str, spec: Analyzer, stage: str) -> Step:
    """A Stage A analyzer reads the transcript; a Stage B one reads the trimmed context."""

    def failed(exc: Exception) -> Analysis:
        return Analysis(analyzer=name, status="failed", error=str(exc))

    async def call(source: str, llm: LLMClient, ledger: Ledger) -> str:
        with record_usage(ledger.meters[name]):
            prompt = f"{PROMPT.format(name=name)}\n\n{source}"
            return await ask(llm, name, spec.seconds * 1000, prompt)

    async def analyze_transcript(transcript: str, llm: LLMClient, ledger: Ledger) -> Analysis:
        text = await call(transcript, llm, ledger)
        lines, counts = evidence(transcript, spec.cues)
        return Analysis(
            analyzer=name, insights=bullets(text) or lines, structured=counts, text=text
        )

    async def analyze_context(stage_b_context: Trimmed, llm: LLMClient, ledger: Ledger) -> Analysis:
        text = await call(stage_b_context.text, llm, ledger)
        return Analysis(analyzer=name, insights=bullets(text), text=text)

    fn = analyze_transcript if stage == "a" else analyze_context
    return step(name=name, fallback=failed, estimated_seconds=spec.seconds)(fn)


A = Analysis
Json = dict[str, Any]  # what `metadata.json` holds


@step
async def stage_a(summary: A, entities: A, sentiment: A, topics: A) -> dict[str, A]:
    return {"summary": summary, "entities": entities, "sentiment": sentiment, "topics": topics}


@step
async def stage_b(hypotheses: A, risks: A, recommendations: A, questions: A) -> dict[str, A]:
    return {"hypotheses": hypotheses, "risks": risks, "recommendations": recommendations,
            "questions": questions}  # fmt: skip


@step
async def stage_b_context(
    stage_a: dict[str, A], transcript: str, settings: ContextSettings
) -> Trimmed:
    """Stage A's sections (a failed analyzer's left out), then the transcript, trimmed."""
    sections = [section(result, settings) for result in stage_a.values() if result.status == "ok"]
    if settings.include_transcript:
        sections.append(Section("transcript", 0, f"## transcript\n{transcript}"))
    left_out = tuple(name for name, result in stage_a.items() if result.status != "ok")
    return attrs.evolve(fit(sections, settings.token_budget), left_out=left_out)


@step(effect=True)
async def save_stage_a(stage_a: dict[str, A], ledger: Ledger, run_dir: str) -> Json:
    return save_stage(Path(run_dir), "stage_a", stage_a, {"stage_a": ledger.stage(stage_a)})


@step(effect=True)  # reads save_stage_a, so the two metadata writes never race
async def save_stage_b(stage_b: dict[str, A], stage_b_context: Trimmed, save_stage_a: Json,
                       ledger: Ledger, run_dir: str) -> Json:  # fmt: skip
    trimming = attrs.asdict(stage_b_context, filter=lambda field, _: field.name != "text")
    stage = {**ledger.stage(stage_b), "context": trimming}
    return save_stage(Path(run_dir), "stage_b", stage_b, {**save_stage_a, "stage_b": stage})


analyzers = [*(analyzer(n, a, "a") for n, a in STAGE_A.items()),
             *(analyzer(n, a, "b") for n, a in STAGE_B.items())]  # fmt: skip
pipeline = Flow([*analyzers, stage_a, stage_b, stage_b_context, save_stage_a, save_stage_b],
                name="transcript", inputs=["transcript", "llm", "ledger", "settings", "run_dir"],
                outputs=["stage_a", "stage_b", "save_stage_b"])  # fmt: skip

# --- the files ------------------------------------------------------------------------------


def save_stage(
    run_dir: Path, stage: str, results: dict[str, A], metadata: dict[str, Any]
) -> dict[str, Any]:
    """Write each analyzer's result, then `metadata.json` once for this stage transition."""
    for name, result in results.items():
        write_atomic(run_dir / stage / f"{name}.json", attrs.asdict(result))
    write_atomic(run_dir / "metadata.json", metadata)
    return metadata


def write_atomic(path: Path, data: Any) -> None:
    """Write JSON so readers see the old file or the new one, never half of one. Synchronous
    on purpose: the files are small, and while a worker thread wrote them the virtual clock
    would jump to the next analyzer's end, so the trace would depend on the disk's speed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
        json.dump(data, f, indent=2)
    os.replace(f.name, path)


def summary(result: RunResult, ledger: Ledger, metadata: dict[str, Any]) -> dict[str, Any]:
    """The run's final summary: its wall time, the analyzers that succeeded, its tokens."""
    calls = {**metadata["stage_a"]["analyzers"], **metadata["stage_b"]["analyzers"]}
    usage = [meter.statistics() for meter in ledger.meters.values()]
    waits = [a["backoff_ms"] for c in calls.values() for a in c["attempts"]]
    waits = [wait for wait in waits if wait is not None]  # a jitter draw may be 0: still a retry
    return {
        "mode": str(result.mode.value),
        "wall_ms": ms(result.wall_time),
        "succeeded": sum(call["status"] == "ok" for call in calls.values()),
        "failed": [name for name, call in calls.items() if call["status"] != "ok"],
        "input_tokens": sum(u.input_tokens for u in usage),
        "output_tokens": sum(u.output_tokens for u in usage),
        "retries": len(waits),
        "backoff_ms": round(sum(waits), 3),
    }


def benchmark(before: dict[str, Any], after: dict[str, Any], args: Any) -> dict[str, Any]:
    """The seed's benchmark report: wall clock, tokens and successes, before and after."""
    runs = {"before": before["metadata"]["summary"], "after": after["metadata"]["summary"]}
    speedup = round(runs["before"]["wall_ms"] / runs["after"]["wall_ms"], 3)
    return {
        "transcript": args.transcript,
        "max_concurrent": args.max_concurrent,
        **runs,
        "speedup": speedup,
        "target": ">= 2x",
        "met": speedup >= 2,
    }


# --- the program ----------------------------------------------------------------------------


async def analyse(args: Any, mode: str, transcript: str) -> dict[str, Any]:
    """One run into `<out>/<mode>`: its record, with the metadata and every result."""
    run_dir = Path(args.out) / mode
    settings = ContextSettings(
        token_budget=args.token_budget, include_transcript=args.transcript_in_context
    )
    # Waits drawn up to 1, 2 then 4 s (times `--scale`).
    retry = RetryPolicy(
        max_attempts=4, base_delay=_common.SCALE, max_delay=8 * _common.SCALE, statuses=RETRIED
    )
    async with open_llm(_common.parse_failures(args.fail), retry=retry) as (llm, faults):
        ledger = Ledger()
        result = await pipeline.run(
            transcript=transcript,
            llm=llm,
            ledger=ledger,
            settings=settings,
            run_dir=str(run_dir),
            mode=mode,
            max_concurrency=args.max_concurrent,
            admit="longest",
        )
    inputs = {"transcript": args.transcript, **attrs.asdict(settings)}
    _common.log_run(result, f"transcript/{mode}", inputs)
    staged = result.outputs["save_stage_b"]
    metadata = {**staged, "summary": summary(result, ledger, staged)}
    # After the run nothing waits on the clock, so a worker thread may write it (atomically:
    # the seed asks that `metadata.json` stay whole).
    await trio.to_thread.run_sync(write_atomic, run_dir / "metadata.json", metadata)
    results = {**result.outputs["stage_a"], **result.outputs["stage_b"]}
    return {
        **run_to_json(result),
        "run_dir": str(run_dir),
        "injected": faults.injected,
        "stage_a_ms": metadata["stage_a"]["makespan_ms"],
        "stage_b_ms": metadata["stage_b"]["makespan_ms"],
        "metadata": metadata,
        "results": {name: attrs.asdict(r) for name, r in results.items()},
        "layout": await trio.to_thread.run_sync(layout, run_dir),
    }


def layout(run_dir: Path) -> list[str]:
    return sorted(str(path.relative_to(run_dir)) for path in run_dir.rglob("*") if path.is_file())


async def main(args: Any) -> None:
    transcript = await trio.Path(args.transcript).read_text(encoding="utf-8")
    modes = ["sequential", "parallel"] if args.mode == "both" else [args.mode]
    runs = {mode: await analyse(args, mode, transcript) for mode in modes}
    outputs = [f"{run['run_dir']}/{name}" for run in runs.values() for name in run["layout"]]
    bench = benchmark(runs["sequential"], runs["parallel"], args) if len(runs) == 2 else None
    if bench is not None:
        logs = str(Path(args.out) / "logs")
        files = {"benchmark.json": bench}
        outputs += await trio.to_thread.run_sync(_common.write_outputs, logs, files)
    if args.json:
        _common.dump({"runs": runs, "benchmark": bench, "outputs": outputs})
    else:
        table(args, runs, len(outputs))


def table(args: Any, runs: dict[str, dict[str, Any]], files: int) -> None:
    """The seed's figures, per mode, then the trimming and the retries of the last run."""
    first = next(iter(runs.values()))["wall_ms"]
    rows = [
        [
            mode,
            f"{run['stage_a_ms']:.0f}",
            f"{run['stage_b_ms']:.0f}",
            f"{run['wall_ms']:.0f}",
            _common.speedup(first, run["wall_ms"]) if len(runs) == 2 else "-",
            "sum of 8" if mode == "sequential" else ">= 2x",
            f"{run['metadata']['summary']['succeeded']}/8",
            run["metadata"]["summary"]["retries"],
        ]
        for mode, run in runs.items()
    ]
    last = list(runs.values())[-1]["metadata"]
    context = last["stage_b"]["context"]
    calls = {**last["stage_a"]["analyzers"], **last["stage_b"]["analyzers"]}
    retried = [
        f"retried {name}: {', '.join(str(a['status'] or a['error']) for a in call['attempts'])}"
        f" (backoff {sum(a['backoff_ms'] or 0 for a in call['attempts']):.0f} ms)"
        for name, call in calls.items()
        if len(call["attempts"]) > 1
    ]
    _common.print_table(
        f"Transcript (seed 003): 8 analyzers, max_concurrent {args.max_concurrent}, wall ms",
        ["mode", "stage A ms", "stage B ms", "total ms", "saved", "seed", "ok", "retries"],
        rows,
        [
            f"Stage B context: {context['tokens_before']} -> {context['tokens']} tokens "
            f"(budget {context['budget']}), kept {', '.join(context['kept'])}",
            f"  dropped: {', '.join(context['dropped']) or 'none'}; cut short: "
            f"{context['truncated'] or 'none'}; left out (failed): "
            f"{', '.join(context['left_out']) or 'none'}",
            *retried,
            f"{files} files in {escape(args.out)}",
        ],
    )


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


if __name__ == "__main__":
    parse = _common.parser(__doc__)
    parse.add_argument("--transcript", default=str(TRANSCRIPT), help="the transcript file")
    parse.add_argument("--out", help="where run directories go (default: a new temp dir)")
    parse.add_argument("--mode", choices=["sequential", "parallel", "both"], default="both")
    parse.add_argument("--max-concurrent", type=positive, default=3, help="LLM calls at once")
    parse.add_argument("--token-budget", type=positive, default=8000, help="Stage B context")
    parse.add_argument(
        "--transcript-in-context",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the transcript is the context's last section",
    )
    parse.add_argument("--fail", action="append", default=[], metavar="ANALYZER=KIND[,KIND]")
    args = parse.parse_args(sys.argv[1:])
    if not Path(args.transcript).is_file():
        parse.error(f"--transcript {args.transcript}: no such file")
    args.out = args.out or tempfile.mkdtemp(prefix="transcript-")
    _common.run(main, args)
