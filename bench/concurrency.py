"""1000 concurrent seed-000 planner runs: specroute beside the same design written by hand in trio.

The planner (seed 000, as `examples/planner.py` builds it): Discovery routes to Path A "reuse"
(ParameterMapping -> ParameterPreparation) or Path B "generate" (nine steps, a chain); the
speculative mode starts all of Path B beside Discovery and cancels it when Discovery picks A.
Critical paths: A 800 ms, B 3700 ms (times `--scale`). Both implementations await the same
step bodies (`PlannerSteps`: `trio.sleep(latency x scale)`, trivial values, no LLM client):

- specroute: a `Flow` built here from the public API (`step`, `router`, `Flow.run`, `Route`,
  `Branches`), so the bench keeps working when the engine's insides are rewritten;
- trio: `trio_planner`, as simply as trio allows: one nursery starts Discovery and Path B
  (in its own cancel scope); when Discovery answers "reuse" it cancels that scope and runs A.

Figures, per path, over `--repeat` samples each (after one warm-up sample each). Times are
judged on each side's best sample: noise on a shared machine only ever adds time (here a
side's samples spread up to 2x within a minute), so the fastest sample is the best estimate
of what the code costs, as `timeit`'s documentation advises; the ratio of medians is
reported beside it, as what a noisy machine makes of the same code. Memory and garbage are
not times: they are each side's median. The figures:

- wall and CPU: one `trio.run` per sample running `--runs` planner runs concurrently,
  timed inside the `trio.run` (`time.perf_counter`, `time.process_time`) after `gc.collect()`;
- RSS growth: each sample in a fresh subprocess (so neither implementation inherits the
  other's heap, nor its own from earlier samples): `/proc/self/statm` before the runs (after
  imports and one warm-up run) and, while they are in flight, once per scheduler batch (a
  task that only checkpoints); growth = peak - before, per `--runs` runs;
- zero sleep: the cost of ONE run with every sleep 0 (each is still a checkpoint): the median
  of `--single` runs made one after another inside one `trio.run`;
- cyclic garbage: with `gc.disable()`, `--runs` concurrent runs, then what `gc.collect()`
  finds, per run (once per path; it barely varies).

Samples alternate between the implementations (specroute, trio, trio, specroute, ...: the
order flips each round) so machine noise and position in the sequence hit both alike. Every
sample checks, outside the timed region, that all its runs gave the route and outputs both
implementations gave on a first run. Results go to bench/results/concurrency.json.
Run: `python bench/concurrency.py [--runs N] [--repeat R] [--scale S] [--single M] [--json]`.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio
from rich.console import Console
from rich.table import Table
from specroute.engine import Flow, router, step
from specroute.routes import Branches, Route

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    Planner = Callable[[str], Awaitable["Outcome"]]

RESULTS = Path(__file__).parent / "results" / "concurrency.json"
# The seed's latency table, in milliseconds (as in examples/planner.py).
LATENCY_MS = {
    "discovery": 500, "parameter_discovery": 400, "requirements_analysis": 400,
    "component_browsing": 400, "planning": 600, "workflow_generator": 1200,
    "parameter_mapping": 300, "validator": 0, "metadata_generation": 400,
    "parameter_preparation": 0,
}  # fmt: skip
CRITICAL_PATH_MS = {"A": 800, "B": 3700}
SAVED_WORKFLOWS = {"generate changelog": {"name": "changelog", "nodes": ["git-log", "llm"]}}
REQUESTS = {"A": "generate changelog", "B": "summarize open issues by label"}
IMPLEMENTATIONS = ("specroute", "trio")
# Ratio specroute / hand-written trio that issue 11 sets; cyclic garbage per run must be 0.
TARGETS = {"wall": 1.5, "cpu": 1.5, "rss": 1.5, "zero_sleep": 3.0, "garbage": 0.0}
UNITS = {
    "wall": "ms per batch", "cpu": "ms per batch", "rss": "MiB per batch",
    "zero_sleep": "us per run", "garbage": "objects per run",
}  # fmt: skip
WARMUPS = 1
# Figures judged on each side's best sample (see the docstring); the rest on their medians.
TIMES = frozenset(("wall", "cpu", "zero_sleep"))


@attrs.frozen(kw_only=True)
class Outcome:
    """What one planner run produced: the route taken and the outputs."""

    route: str | None
    outputs: dict[str, Any]


@attrs.frozen
class PlannerSteps:
    """The planner's step bodies: each sleeps the seed's latency x `scale`; values are trivial."""

    scale: float

    async def _work(self, name: str) -> None:
        await trio.sleep(LATENCY_MS[name] / 1000 * self.scale)

    async def discovery(self, user_input: str) -> Route:
        await self._work("discovery")
        found = SAVED_WORKFLOWS.get(user_input)
        return Route("reuse", workflow=found) if found else Route("generate")

    async def parameter_discovery(self, user_input: str) -> str:
        await self._work("parameter_discovery")
        return user_input.replace("open", "${state}")

    async def requirements_analysis(self, templatized_input: str) -> list[str]:
        await self._work("requirements_analysis")
        return [f"needs: {word}" for word in templatized_input.split()[:3]]

    async def component_browsing(self, user_input: str, requirements: list[str]) -> list[str]:
        await self._work("component_browsing")
        return ["github-issues", "llm"]

    async def planning(self, requirements: list[str], components: list[str]) -> str:
        await self._work("planning")
        return f"use {' then '.join(components)} for {len(requirements)} requirements"

    async def workflow_generator(self, plan: str) -> dict[str, Any]:
        await self._work("workflow_generator")
        return {"name": "generated", "nodes": ["github-issues", "llm"], "plan": plan}

    async def parameter_mapping(self, user_input: str, workflow: dict[str, Any]) -> dict[str, str]:
        await self._work("parameter_mapping")
        return {"request": user_input, "workflow": workflow["name"]}

    async def validator(self, workflow: dict[str, Any], extracted_params: dict[str, str]) -> str:
        await self._work("validator")
        return "valid"

    async def metadata_generation(
        self, workflow: dict[str, Any], templatized_input: str, validation: str
    ) -> dict[str, str]:
        await self._work("metadata_generation")
        return {"description": templatized_input, "validated": validation}

    async def parameter_preparation(
        self, extracted_params: dict[str, str], metadata: dict[str, str] | None = None
    ) -> dict[str, Any]:
        await self._work("parameter_preparation")
        return {**extracted_params, "metadata": metadata}


def specroute_planner(steps: PlannerSteps) -> Planner:
    """The planner as a specroute `Flow`, run speculatively with all of Path B beside Discovery."""
    outputs = ["workflow", "execution_params"]
    mapping = step(output="extracted_params")(steps.parameter_mapping)
    preparation = step(output="execution_params")(steps.parameter_preparation)
    generate = [
        step(output="templatized_input")(steps.parameter_discovery),
        step(output="requirements")(steps.requirements_analysis),
        step(output="components")(steps.component_browsing),
        step(output="plan")(steps.planning),
        step(output="workflow")(steps.workflow_generator),
        mapping,
        step(output="validation")(steps.validator),
        step(output="metadata")(steps.metadata_generation),
        preparation,
    ]
    branches = {
        "reuse": Flow([mapping, preparation], name="reuse", outputs=outputs),
        "generate": Flow(generate, name="generate", outputs=outputs),
    }
    discovery = router(step(steps.discovery), branches, handoff={"reuse": ["workflow"]})
    flow = Flow([discovery], name="planner", inputs=["user_input"])
    policy = Branches({"discovery": ["generate"]})

    async def run(user_input: str) -> Outcome:
        result = await flow.run(user_input=user_input, mode="speculative", speculate=policy)
        return Outcome(route=result.route, outputs=dict(result.outputs))

    return run


async def trio_planner(steps: PlannerSteps, user_input: str) -> Outcome:
    """The same planner by hand: Path B starts beside Discovery and is cancelled if A wins."""
    generate_scope = trio.CancelScope()
    generated: dict[str, Any] = {}
    reused: dict[str, Any] = {}
    label = ""

    async def discover() -> None:
        nonlocal label
        found = await steps.discovery(user_input)
        label = found.label
        if label == "reuse":
            generate_scope.cancel()
            workflow = found.values["workflow"]
            params = await steps.parameter_mapping(user_input, workflow)
            prepared = await steps.parameter_preparation(params)
            reused.update(workflow=workflow, execution_params=prepared)

    async def generate() -> None:
        with generate_scope:
            templatized = await steps.parameter_discovery(user_input)
            requirements = await steps.requirements_analysis(templatized)
            components = await steps.component_browsing(user_input, requirements)
            plan = await steps.planning(requirements, components)
            workflow = await steps.workflow_generator(plan)
            params = await steps.parameter_mapping(user_input, workflow)
            validation = await steps.validator(workflow, params)
            metadata = await steps.metadata_generation(workflow, templatized, validation)
            prepared = await steps.parameter_preparation(params, metadata)
            generated.update(workflow=workflow, execution_params=prepared)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(discover)
        nursery.start_soon(generate)
    return Outcome(route=label, outputs=reused if label == "reuse" else generated)


def planners(scale: float) -> dict[str, Planner]:
    """Each implementation's planner at `scale`, built before anything is timed."""
    steps = PlannerSteps(scale)

    async def by_hand(user_input: str) -> Outcome:
        return await trio_planner(steps, user_input)

    return {"specroute": specroute_planner(steps), "trio": by_hand}


async def run_concurrently(planner: Planner, user_input: str, runs: int) -> list[Outcome]:
    """`runs` planner runs in one nursery; their outcomes, in the order they finished."""
    outcomes: list[Outcome] = []

    async def one() -> None:
        outcomes.append(await planner(user_input))

    async with trio.open_nursery() as nursery:
        for _ in range(runs):
            nursery.start_soon(one)
    return outcomes


@attrs.frozen(kw_only=True)
class Batch:
    """One timed sample: seconds of wall and CPU time, and what the runs produced."""

    wall: float
    cpu: float
    outcomes: list[Outcome]


@attrs.frozen(kw_only=True)
class Memory:
    """Resident set (KiB) before a batch, at its peak while in flight, and after it."""

    before: int
    peak: int
    after: int


async def timed_batch(planner: Planner, user_input: str, runs: int) -> Batch:
    """`runs` concurrent runs, timed inside the `trio.run` (trio's own start-up is no one's)."""
    gc.collect()
    wall = time.perf_counter()
    cpu = time.process_time()
    outcomes = await run_concurrently(planner, user_input, runs)
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    return Batch(wall=wall, cpu=cpu, outcomes=outcomes)


async def single_runs(planner: Planner, user_input: str, count: int) -> Batch:
    """`count` runs one after another; `wall` is the median seconds of one, `cpu` unused."""
    await planner(user_input)
    durations = []
    outcomes = []
    for _ in range(count):
        start = time.perf_counter()
        outcome = await planner(user_input)
        durations.append(time.perf_counter() - start)
        outcomes.append(outcome)
    return Batch(wall=statistics.median(durations), cpu=0.0, outcomes=outcomes)


def resident_kib() -> int:
    """The resident set, KiB (a /proc read does not block, so the event loop may call it)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() // 1024


async def memory(planner: Planner, user_input: str, runs: int) -> Memory:
    """RSS around `runs` concurrent runs, sampled once per scheduler batch while they run.

    The sampler never sleeps, so under a `MockClock` the clock would never autojump: real
    clock only.
    """
    await planner(user_input)
    gc.collect()
    before = resident_kib()
    peak = before
    running = True

    async def sample() -> None:
        nonlocal peak
        while running:
            peak = max(peak, resident_kib())
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sample)
        await run_concurrently(planner, user_input, runs)
        peak = max(peak, resident_kib())
        running = False
    gc.collect()
    return Memory(before=before, peak=peak, after=resident_kib())


async def garbage_per_run(planner: Planner, user_input: str, runs: int) -> float:
    """Objects the cyclic GC finds after `runs` concurrent runs made with it disabled, per run."""
    await planner(user_input)
    gc.collect()
    gc.disable()
    try:
        await run_concurrently(planner, user_input, runs)
        found = gc.collect()
    finally:
        gc.enable()
    return found / runs


def memory_in_child(implementation: str, path: str, runs: int, scale: float) -> Memory:
    """`memory()` in a fresh interpreter, so it inherits no heap from earlier samples."""
    command = [sys.executable, __file__, "--memory-child", implementation, "--path", path]
    command += ["--runs", str(runs), "--scale", repr(scale)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return Memory(**json.loads(done.stdout))


def check(outcomes: list[Outcome], expected: Outcome, implementation: str, path: str) -> None:
    """Every run of a sample gave the route and outputs both implementations agree on."""
    wrong = [outcome for outcome in outcomes if outcome != expected]
    if wrong:
        raise SystemExit(
            f"concurrency: error: {implementation} Path {path} gave {wrong[0]!r} in "
            f"{len(wrong)} of {len(outcomes)} runs, expected {expected!r}"
        )


def reference(timed: dict[str, Planner]) -> dict[str, Outcome]:
    """Each path's outcome, after checking that both implementations give the same one."""
    expected = {}
    for path, user_input in REQUESTS.items():
        first = {name: trio.run(planner, user_input) for name, planner in timed.items()}
        check(list(first.values()), first["trio"], "specroute", path)
        expected[path] = first["trio"]
    return expected


def measure(runs: int, repeat: int, scale: float, single: int) -> list[dict[str, Any]]:
    """One row per (path, figure): each implementation's median, and their ratio."""
    timed = planners(scale)
    zero = planners(0.0)
    expected = reference(timed)
    samples: dict[tuple[str, str, str], list[float]] = {}

    def record(path: str, figure: str, implementation: str, value: float) -> None:
        samples.setdefault((path, figure, implementation), []).append(value)

    for index in range(WARMUPS + repeat):
        # The order flips each round, so neither implementation always runs first.
        order = IMPLEMENTATIONS if index % 2 == 0 else IMPLEMENTATIONS[::-1]
        kept = index >= WARMUPS
        for path, user_input in REQUESTS.items():
            for name in order:
                batch = trio.run(timed_batch, timed[name], user_input, runs)
                check(batch.outcomes, expected[path], name, path)
                if kept:
                    record(path, "wall", name, batch.wall * 1e3)
                    record(path, "cpu", name, batch.cpu * 1e3)
            for name in order:
                batch = trio.run(single_runs, zero[name], user_input, single)
                check(batch.outcomes, expected[path], name, path)
                if kept:
                    record(path, "zero_sleep", name, batch.wall * 1e6)
            for name in order if kept else ():
                used = memory_in_child(name, path, runs, scale)
                record(path, "rss", name, (used.peak - used.before) / 1024)
                record(path, "rss_retained", name, (used.after - used.before) / 1024)
    for path, user_input in REQUESTS.items():
        for name in IMPLEMENTATIONS:
            record(path, "garbage", name, trio.run(garbage_per_run, timed[name], user_input, runs))
    return rows(samples)


def rows(samples: dict[tuple[str, str, str], list[float]]) -> list[dict[str, Any]]:
    """The table's rows from the samples; `rss_retained` (RSS left after the batch) is extra.

    Times by their best samples, the rest (memory, garbage) by their medians."""
    out = []
    for path in REQUESTS:
        for figure in (*TARGETS, "rss_retained"):
            got = {name: samples[path, figure, name] for name in IMPLEMENTATIONS}
            typical = [statistics.median(got[name]) for name in IMPLEMENTATIONS]
            pick = min if figure in TIMES else statistics.median
            mine, theirs = (pick(got[name]) for name in IMPLEMENTATIONS)
            ratio = mine / theirs if theirs > 0 else None
            median_ratio = typical[0] / typical[1] if typical[1] > 0 else None
            target = TARGETS.get(figure)
            within: bool | None
            if figure == "garbage":
                within = mine <= 0
            else:
                within = None if target is None or ratio is None else ratio <= target
            out.append({
                "path": path, "figure": figure, "unit": UNITS.get(figure, UNITS["rss"]),
                "specroute": round(mine, 3), "trio": round(theirs, 3),
                "ratio": None if ratio is None else round(ratio, 3),
                "median_ratio": None if median_ratio is None else round(median_ratio, 3),
                "target": target, "within_target": within,
                "samples": {name: [round(x, 3) for x in values] for name, values in got.items()},
            })  # fmt: skip
    return out


def render(table_rows: list[dict[str, Any]], runs: int, repeat: int, scale: float) -> Table:
    """The rich table; `rss_retained` rows (no target) are dimmed extras."""
    critical = ", ".join(f"{p} {ms * scale:g} ms" for p, ms in CRITICAL_PATH_MS.items())
    title = f"Planner (seed 000), {runs} concurrent speculative runs, {repeat} samples"
    caption = (
        f"A batch is {runs} runs; sleeps are the seed's latencies x {scale:g} (critical path "
        f"{critical}). Targets: specroute / hand-written trio <= the ratio shown; cyclic garbage "
        "0 per run. Times: best samples (the ratio of medians beside them). RSS: median peak "
        "growth in a fresh process per sample (dim: left after the batch)"
    )
    table = Table(title=title, caption=caption)
    columns = ("specroute", "trio by hand", "ratio", "ratio of medians", "target")
    for name in ("path", "figure", "unit", *columns):
        table.add_column(name, justify="left" if name in ("path", "figure", "unit") else "right")
    for row in table_rows:
        colour = {True: "green", False: "red", None: "default"}[row["within_target"]]
        ratio = "" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        typical = f"{row['median_ratio']:.2f}x" if row["figure"] in TIMES else ""
        mine = f"{row['specroute']:,.2f}"
        if row["figure"] == "garbage":
            mine = f"[{colour}]{mine}[/{colour}]"
            target = "0"
        else:
            ratio = f"[{colour}]{ratio}[/{colour}]"
            target = "" if row["target"] is None else f"<= {row['target']:g}x"
        cells = [f"{row['path']}", row["figure"], row["unit"], mine, f"{row['trio']:,.2f}"]
        style = "dim" if row["target"] is None else None
        table.add_row(*cells, ratio, typical, target, style=style)
    return table


def child(args: argparse.Namespace) -> None:
    """`--memory-child`: print one `Memory` sample of one implementation as JSON."""
    planner = planners(args.scale)[args.memory_child]
    used = trio.run(memory, planner, REQUESTS[args.path], args.runs)
    print(json.dumps(attrs.asdict(used)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="concurrent runs a batch (1000)")
    parser.add_argument("--repeat", type=int, default=21, help="samples per figure (21)")
    parser.add_argument("--scale", type=float, default=0.002, help="x seed latency (0.002)")
    parser.add_argument("--single", type=int, default=300, help="zero-sleep runs a sample (300)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--memory-child", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--path", choices=list(REQUESTS), default="A", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if min(args.runs, args.repeat, args.single) < 1 or args.scale < 0:
        parser.error(
            "`--runs`, `--repeat` and `--single` must be >= 1 and `--scale` >= 0, got "
            f"{args.runs}, {args.repeat}, {args.single}, {args.scale}"
        )
    if args.memory_child:
        child(args)
        return
    table_rows = measure(args.runs, args.repeat, args.scale, args.single)
    result = {
        "runs": args.runs, "repeat": args.repeat, "scale": args.scale, "single": args.single,
        "python": sys.version.split()[0], "trio": trio.__version__,
        "mode": "speculative (all of Path B beside Discovery)",
        "rss": "peak growth over a fresh subprocess's baseline, per batch",
        "critical_path_ms": CRITICAL_PATH_MS, "targets": TARGETS, "rows": table_rows,
    }  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        Console(width=max(Console().width, 110)).print(
            render(table_rows, args.runs, args.repeat, args.scale)
        )
        print(f"results: {RESULTS}")


if __name__ == "__main__":
    main()
