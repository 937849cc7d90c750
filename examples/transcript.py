"""The transcript analysis from seed 003: two stages of four analyzers, three calls at a time.

Stage A's analyzers read the transcript; Stage B's read the Stage A context, trimmed to a
token budget by dropping the lowest-priority sections first. A failing analyzer stands in
as a failure record, so its stage goes on. Each stage's results and `metadata.json` are
written by an `effect=True` step, atomically (a temporary file in the same directory, then
`os.replace`), so a run directory has the same layout however the run was scheduled.

    python examples/transcript.py                  # sequential vs concurrent, and the layouts
    python examples/transcript.py --fail risks=400 --json --out runs   # risks fails, B goes on
    python examples/transcript.py --clock real --scale 0.1
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _common
from _common import ask, open_llm
from specroute.engine import Flow, RunResult, Step, step
from specroute.engine.llm import estimate_tokens
from specroute.engine.report import run_to_json

if TYPE_CHECKING:
    from specroute.engine.llm import LLMClient

# Analyzer -> (seconds, priority of its section in the Stage B context: higher stays longer).
# Unequal, as real analyzers are. On 3 slots a stage ends at its optimal makespan when the
# longest three start first and the fourth takes the first free slot (7 s for Stage A, 9 s
# for Stage B): the run admits the longest estimate first (`admit="longest"`).
STAGE_A = {"summary": (6, 3), "entities": (5, 2), "sentiment": (4, 0), "topics": (3, 1)}
STAGE_B = {"hypotheses": (7, 0), "risks": (6, 0), "recommendations": (5, 0), "questions": (4, 0)}
MAX_CONCURRENT = 3
# Small enough that the trimming shows on the shipped transcript (the seed's is 8000).
STAGE_B_TOKEN_BUDGET = 1500


def write_atomic(path: Path, data: Any) -> str:
    """Write JSON to `path` so readers see the old file or the new one, never half of one.

    Synchronous on purpose: the files are small, and a worker thread would let the virtual
    clock jump while it runs.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
        json.dump(data, f, indent=2)
    os.replace(f.name, path)
    return str(path)


def analyzer(name: str, stage: str) -> Step:
    """A Stage A analyzer reads the transcript; a Stage B one reads the trimmed context."""
    seconds = (STAGE_A | STAGE_B)[name][0]

    def failed(exc: Exception) -> dict[str, Any]:
        return {"analyzer": name, "status": "failed", "error": str(exc), "text": ""}

    async def analyze_transcript(transcript: str, llm: LLMClient) -> dict[str, Any]:
        text = await ask(llm, name, seconds * 1000, transcript)
        return {"analyzer": name, "status": "ok", "text": text}

    async def analyze_context(stage_b_context: str, llm: LLMClient) -> dict[str, Any]:
        text = await ask(llm, name, seconds * 1000, stage_b_context)
        return {"analyzer": name, "status": "ok", "text": text}

    fn = analyze_transcript if stage == "a" else analyze_context
    return step(name=name, fallback=failed, estimated_seconds=seconds)(fn)


R = dict[str, Any]  # one analyzer's result


@step
async def stage_a(summary: R, entities: R, sentiment: R, topics: R) -> dict[str, R]:
    return {"summary": summary, "entities": entities, "sentiment": sentiment, "topics": topics}


@step
async def stage_b(hypotheses: R, risks: R, recommendations: R, questions: R) -> dict[str, R]:
    return {"hypotheses": hypotheses, "risks": risks, "recommendations": recommendations,
            "questions": questions}  # fmt: skip


@step
async def stage_b_context(stage_a: dict[str, R]) -> str:
    """The Stage A results as sections; the lowest-priority ones go first until it fits."""
    sections = sorted(stage_a.values(), key=lambda result: -STAGE_A[result["analyzer"]][1])
    while len(sections) > 1 and estimate_tokens(context_text(sections)) > STAGE_B_TOKEN_BUDGET:
        sections.pop()
    return context_text(sections)


def context_text(sections: list[R]) -> str:
    return "\n\n".join(f"## {s['analyzer']}\n{s['text']}" for s in sections)


@step(effect=True)
async def save_stage_a(stage_a: dict[str, R], run_dir: str) -> R:
    return save_stage(Path(run_dir), "stage_a", stage_a, {})


@step(effect=True)  # reads save_stage_a, so the two metadata writes never race
async def save_stage_b(stage_b: dict[str, R], stage_b_context: str, save_stage_a: R,
                       run_dir: str) -> R:  # fmt: skip
    sections = [line[3:] for line in stage_b_context.splitlines() if line.startswith("## ")]
    context = {"tokens": estimate_tokens(stage_b_context), "sections": sections}
    return save_stage(Path(run_dir), "stage_b", stage_b, {**save_stage_a, "context": context})


def save_stage(run_dir: Path, stage: str, results: dict[str, R], metadata: R) -> R:
    """Write each analyzer's result, then `metadata.json` once for this stage transition."""
    for name, result in results.items():
        write_atomic(run_dir / stage / f"{name}.json", result)
    metadata = {**metadata, stage: {name: result["status"] for name, result in results.items()}}
    write_atomic(run_dir / "metadata.json", metadata)
    return metadata


analyzers = [*(analyzer(name, "a") for name in STAGE_A), *(analyzer(n, "b") for n in STAGE_B)]
pipeline = Flow([*analyzers, stage_a, stage_b, stage_b_context, save_stage_a, save_stage_b],
                name="transcript", inputs=["transcript", "llm", "run_dir"],
                outputs=["save_stage_b"])  # fmt: skip
TRANSCRIPT = "Interviewer: When did the outage start? Engineer: Just after the 02:00 deploy..."


def layout(run_dir: Path) -> list[str]:
    return sorted(str(path.relative_to(run_dir)) for path in run_dir.rglob("*"))


async def analyse(mode: str, run_dir: Path, failures: list[str]) -> R:
    async with open_llm(_common.parse_failures(failures)) as (llm, _):
        result: RunResult = await pipeline.run(
            transcript=TRANSCRIPT, llm=llm, run_dir=str(run_dir), mode=mode,
            max_concurrency=MAX_CONCURRENT,
            admit="longest",
        )  # fmt: skip
    at = {entry.step: entry for entry in result.trace}
    stage_a = max(at[name].end for name in STAGE_A) - result.started
    stage_b = max(at[name].end for name in STAGE_B) - min(at[name].start for name in STAGE_B)
    return {**run_to_json(result), "run_dir": str(run_dir), "layout": layout(run_dir),
            "stage_a_ms": round(stage_a * 1000, 3), "stage_b_ms": round(stage_b * 1000, 3),
            "metadata": result.outputs["save_stage_b"]}  # fmt: skip


async def main(args: Any) -> None:
    out = Path(args.out or tempfile.mkdtemp(prefix="transcript-"))
    if args.json:
        _common.dump(await analyse(args.mode, out / args.mode, args.fail))
        return
    seq = await analyse("sequential", out / "sequential", args.fail)
    par = await analyse("parallel", out / "parallel", args.fail)
    runs = [("sequential", seq, "sum of 8"), ("specroute", par, ">= 2x")]
    rows = [[name, f"{run['stage_a_ms']:.0f}", f"{run['stage_b_ms']:.0f}", f"{run['wall_ms']:.0f}",
             _common.speedup(seq["wall_ms"], run["wall_ms"]), seed, len(run["layout"])]
            for name, run, seed in runs]  # fmt: skip
    context = par["metadata"]["context"]
    _common.print_table(
        f"Transcript (seed 003): 8 analyzers, max_concurrent {MAX_CONCURRENT}, wall ms",
        ["mode", "stage A ms", "stage B ms", "total ms", "saved", "seed", "files"],
        rows,
        [f"benchmark: sequential {seq['wall_ms'] / 1000:.1f} s, concurrent "
         f"{par['wall_ms'] / 1000:.1f} s ({seq['wall_ms'] / par['wall_ms']:.2f}x)",
         f"run directories in {out}: same layout: {seq['layout'] == par['layout']}",
         f"Stage B context: {context['tokens']} tokens (budget {STAGE_B_TOKEN_BUDGET}), "
         f"sections kept: {', '.join(context['sections'])}"],
    )  # fmt: skip


if __name__ == "__main__":
    parse = _common.parser(__doc__)
    parse.add_argument("--mode", choices=["sequential", "parallel"], default="parallel")
    parse.add_argument("--out", help="where run directories go (default: a new temp dir)")
    parse.add_argument("--fail", action="append", default=[], metavar="ANALYZER=KIND[,KIND]")
    _common.run(main, parse.parse_args(sys.argv[1:]))
