"""The planner from seed 000, run sequentially, with a parallel start, and speculatively.

Discovery asks "is there a saved workflow for this request?". If so (Path A) the planner
reuses it; if not (Path B) it generates one in seven slower steps. Speculation starts Path B
beside Discovery and cancels it the moment Discovery finds a workflow.

Dollars are billed calls: the simulated model at the seed's price ($0.00075 per second of
model time, from its "~$0.0003" for ParameterDiscovery's 400 ms), a real model at its list price.

    python examples/planner.py                      # every path and mode, as a table
    python examples/planner.py --path B --mode speculative --json --out plans/
    python examples/planner.py --request "list stale pull requests" --mode speculative
    python examples/planner.py --clock real --scale 0.01
    python examples/planner.py --repeat 2          # cold and warm runs through the cache
    python examples/planner.py --log runs.jsonl    # then: specroute report runs.jsonl --html
    python examples/planner.py --policy never --policy always --policy predictive
    python examples/planner.py --provider openai --base-url URL --model M   # real clock
"""

from __future__ import annotations

import json
import string
import sys
from typing import TYPE_CHECKING, Any, TypedDict

import attrs
import trio
from specroute.cache import Cache, CacheOptions, HashingEmbedder, open_cache
from specroute.engine import (
    Branches,
    Flow,
    Mode,
    Never,
    Predictor,
    Route,
    RunResult,
    SpeculationPolicy,
    router,
    step,
)
from specroute.engine.llm import (
    LLMClient,
    ModelPrice,
    PriceTable,
    SimulatedModel,
    SimulatedTransport,
    open_llm_client,
    structured,
)
from specroute.engine.report import run_to_json

if TYPE_CHECKING:
    import argparse

# The seed's latency table, in milliseconds.
LATENCY_MS = {
    "discovery": 500, "parameter_discovery": 400, "requirements_analysis": 400,
    "component_browsing": 400, "planning": 600, "workflow_generator": 1200,
    "parameter_mapping": 300, "validator": 0, "metadata_generation": 400,
    "parameter_preparation": 0,
}  # fmt: skip
SAVED_WORKFLOWS: dict[str, dict[str, Any]] = {
    "generate changelog": {"name": "changelog", "nodes": ["git-log", "llm"]}
}
REQUESTS = {"A": "generate changelog", "B": "summarize open issues by label"}
# The default mix for --repeat: repeats and paraphrases of earlier requests hit the cache.
DEFAULT_REQUESTS = [
    "generate changelog", "summarize open issues by label", "Generate changelog!",
    "Summarize open issues, by label.", "list stale pull requests", "generate changelog",
]  # fmt: skip
# The seed prices ParameterDiscovery's 400 ms at ~$0.0003: about $0.00075 per LLM second.
DOLLARS_PER_SECOND = 0.00075
# Multiplies every latency: `--scale`, set by `main` (importers set it themselves).
SCALE = 1.0
# Every step is a model call through this client: simulated (default) or --provider's.
LLM: LLMClient | None = None
MODEL = ""
# The simulated model writes 100 tokens a second from the first: a step of the seed's
# `ms` milliseconds asks for ms / 10 tokens, so virtual time reproduces the seed exactly.
TOKENS_PER_SECOND = 100


class Estimate(TypedDict):
    estimated_seconds: float
    estimated_dollars: float


def estimate(name: str) -> Estimate:
    """What a step is expected to take and cost: the seed's figures, for predictive policies."""
    seconds = LATENCY_MS[name] / 1000
    return {"estimated_seconds": seconds, "estimated_dollars": seconds * DOLLARS_PER_SECOND}


async def work(name: str) -> None:
    """The step's LLM call: the simulated provider at the seed's latency, or a real model."""
    milliseconds = LATENCY_MS[name]
    if LLM is None:  # imported by a benchmark: just take the time
        await trio.sleep(milliseconds / 1000 * SCALE)
    elif MODEL.startswith("sim-"):
        if milliseconds:  # streamed, so a cancelled call is billed for what arrived
            tokens = milliseconds * TOKENS_PER_SECOND // 1000
            await LLM.complete(f"{name}: plan", model=MODEL, max_tokens=tokens, stream=True)
    else:
        prompt = f"You are the {name.replace('_', ' ')} step of a workflow planner. Be brief."
        await LLM.complete(prompt, model=MODEL, max_tokens=64)


# What a cached answer depends on beyond the step's inputs goes in its key: Discovery answers
# from the saved workflows. The model is picked by flags after these steps are made; each
# process opens its own in-memory cache for one model, so a cache that outlives the process
# would add `"model"` here as well.
DISCOVERY_CACHE = CacheOptions(
    semantic="user_input", depends_on={"saved_workflows": SAVED_WORKFLOWS, "prompt": "1"}
)
BROWSING_CACHE = CacheOptions(depends_on={"prompt": "1"})


@attrs.frozen
class Workflow:
    """A workflow to run: a saved one, or one the workflow generator wrote (an LLM answer
    checked against this shape: structured output, not text parsed by hand)."""

    name: str
    nodes: tuple[str, ...]
    plan: str = ""


@step(cache=DISCOVERY_CACHE, **estimate("discovery"))  # exact, then near
async def discovery(user_input: str) -> Route:
    await work("discovery")
    words = user_input.lower().translate(str.maketrans("", "", string.punctuation))
    found = SAVED_WORKFLOWS.get(" ".join(words.split()))
    if found is None:
        return Route("generate")
    return Route("reuse", workflow=Workflow(name=found["name"], nodes=tuple(found["nodes"])))


@step(output="templatized_input", **estimate("parameter_discovery"))
async def parameter_discovery(user_input: str) -> str:
    await work("parameter_discovery")
    return user_input.replace("open", "${state}")


@step(output="requirements", **estimate("requirements_analysis"))
async def requirements_analysis(templatized_input: str) -> list[str]:
    await work("requirements_analysis")
    return [f"needs: {word}" for word in templatized_input.split()[:3]]


@step(output="components", cache=BROWSING_CACHE, cache_inputs=("requirements",),
      **estimate("component_browsing"))  # fmt: skip
async def component_browsing(user_input: str, requirements: list[str]) -> list[str]:
    await work("component_browsing")
    return ["github-issues", "llm"]


@step(output="plan", **estimate("planning"))
async def planning(requirements: list[str], components: list[str]) -> str:
    await work("planning")
    return f"use {' then '.join(components)} to meet {len(requirements)} requirements"


@step(output="workflow", **estimate("workflow_generator"))
async def workflow_generator(plan: str) -> Workflow:
    if LLM is None:  # imported by a benchmark: just take the time
        await work("workflow_generator")
        return Workflow(name="generated", nodes=("github-issues", "llm"), plan=plan)
    simulated = MODEL.startswith("sim-")
    tokens = LATENCY_MS["workflow_generator"] * TOKENS_PER_SECOND // 1000 if simulated else 256
    prompt = f"workflow_generator: write a workflow (name, nodes, plan) for this plan: {plan}"
    # Streamed, so a cancelled call is billed for what arrived; parsed when complete.
    answer = await structured(
        LLM, prompt, output=Workflow, model=MODEL, max_tokens=tokens, stream=simulated
    )
    return answer.value


@step(output="extracted_params", **estimate("parameter_mapping"))
async def parameter_mapping(user_input: str, workflow: Workflow) -> dict[str, str]:
    await work("parameter_mapping")
    return {"request": user_input, "workflow": workflow.name}


@step(output="validation", **estimate("validator"))
async def validator(workflow: Workflow, extracted_params: dict[str, str]) -> str:
    await work("validator")
    return "valid"


@step(output="metadata", **estimate("metadata_generation"))
async def metadata_generation(workflow: Workflow, templatized_input: str,
                              validation: str) -> dict[str, str]:  # fmt: skip
    await work("metadata_generation")
    return {"description": templatized_input, "validated": validation}


@step(output="execution_params", **estimate("parameter_preparation"))  # A has no metadata
async def parameter_preparation(
    extracted_params: dict[str, str], metadata: dict[str, str] | None = None
) -> dict[str, Any]:
    await work("parameter_preparation")
    return {**extracted_params, "metadata": metadata}


OUTPUTS = ["workflow", "execution_params"]
reuse = Flow([parameter_mapping, parameter_preparation], name="reuse", outputs=OUTPUTS)
generate = Flow(
    [parameter_discovery, requirements_analysis, component_browsing, planning,
     workflow_generator, parameter_mapping, validator, metadata_generation,
     parameter_preparation],
    name="generate", outputs=OUTPUTS,
)  # fmt: skip


def make_planner(predictor: Predictor | None = None) -> Flow:
    """The planner; with a `predictor`, Discovery's answer is predicted before it returns."""
    branches = {"reuse": reuse, "generate": generate}
    return Flow(
        [router(discovery, branches, handoff={"reuse": ["workflow"]}, predictor=predictor)],
        name="planner",
        inputs=["user_input"],
    )


planner = make_planner()

# The seed's options: sequential; option 1 (start ParameterDiscovery beside Discovery);
# speculative Path B preparation (start all of Path B beside Discovery).
MODES: dict[str, tuple[Mode, SpeculationPolicy]] = {
    "sequential": (Mode.SEQUENTIAL, Never()),
    "parallel-start": (Mode.SPECULATIVE, Branches({"discovery": {"generate": 1}})),
    "speculative": (Mode.SPECULATIVE, Branches({"discovery": ["generate"]})),
}
# The seed's figures: its latencies (ms), and what it says the waste costs on Path A
# ("~$0.0003" for ParameterDiscovery, "~$0.002" for speculative Path B). Its speculative
# figure assumes Path B "800 ms ahead"; Discovery lasts 500 ms, so at most 500 ms of Path B
# can run under it (docs/examples.md shows why from the seed's dependency table).
SEED_MS = {("A", "sequential"): 800, ("B", "sequential"): 4200, ("B", "parallel-start"): 3800,
           ("B", "speculative"): 3400}  # fmt: skip
SEED_WASTE = {("A", "parallel-start"): 0.0003, ("A", "speculative"): 0.002}
# The simulated model at the seed's price: $0.00075 per second of model time, that is per
# TOKENS_PER_SECOND tokens written (prompts free), so a bill reads as the seed's dollars.
SEED_PRICE = ModelPrice(
    input_per_million=0.0, output_per_million=DOLLARS_PER_SECOND / TOKENS_PER_SECOND * 1e6
)


async def run_planner(path: str, mode: str, user_input: str | None = None) -> RunResult:
    """Run the planner in `mode` on `user_input` (default: the seed's request for `path`)."""
    engine_mode, policy = MODES[mode]
    request = REQUESTS[path] if user_input is None else user_input
    return await planner.run(user_input=request, mode=engine_mode, speculate=policy)


def outputs_json(result: RunResult) -> dict[str, Any]:
    """The run's outputs as JSON data: the workflow (a typed `Workflow`) and its parameters."""
    return {
        name: attrs.asdict(value) if attrs.has(type(value)) else value
        for name, value in result.outputs.items()
    }


def record(result: RunResult, mode: str, user_input: str = "") -> dict[str, Any]:
    """One run as plain JSON, under the seed's name for its mode, with its outputs."""
    request = {"request": user_input} if user_input else {}
    return {**run_to_json(result), "mode": mode, **request, "outputs": outputs_json(result)}


def print_table(rows: list[dict[str, Any]], priced: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Planner (seed 000): wall time by path and mode")
    columns = ("path", "mode", "route", "wall ms", "seed ms", "saved", "wasted ms", "wasted $",
               "seed $")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in columns[:3] else "right")
    baseline = {row["path"]: row["wall_ms"] for row in rows if row["mode"] == "sequential"}
    for row in rows:
        key = (row["path"], row["mode"])
        before = baseline.get(row["path"])
        saved = "" if before is None else f"{before - row['wall_ms']:.0f} ms"
        if before:
            saved += f" ({(before - row['wall_ms']) / before:.0%})"
        seed, seed_waste = SEED_MS.get(key), SEED_WASTE.get(key)
        table.add_row(row["path"], row["mode"], row["route"], f"{row['wall_ms']:.0f}",
                      "" if seed is None else str(seed), saved, f"{row['wasted_ms']:.0f}",
                      dollars(row["wasted_cost"]),
                      "" if seed_waste is None else f"{seed_waste:.4f}")  # fmt: skip
    Console(width=None if sys.stdout.isatty() else 120).print(table)
    print(f"wasted $: what the cancelled and unused calls were billed, {priced}.\n"
          "seed ms, B speculative: the seed's Path B '800 ms ahead'; but Discovery lasts 500 ms, "
          "so at most 500 ms of Path B runs under it.")  # fmt: skip


def dollars(cost: float | None) -> str:
    return "unpriced" if cost is None else f"{cost:.5f}"


async def repeat(requests: list[str], times: int, cache: Cache) -> None:
    """Run the request mix `times` times through one cache: cold, then warm."""
    import _common  # examples/ is on sys.path when run as a script
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Planner with Discovery and ComponentBrowsing cached (speculative)")
    for column in ("pass", "request", "route", "wall ms", "wasted ms", "hits", "misses"):
        table.add_column(column)
    engine_mode, policy = MODES["speculative"]
    for index in range(times):
        for request in requests:
            result = await planner.run(
                user_input=request, mode=engine_mode, speculate=policy, cache=cache
            )
            _common.log_run(result, "speculative", {"user_input": request})
            table.add_row(str(index + 1), request, result.route, f"{result.wall_time * 1000:.0f}",
                          f"{result.wasted_time * 1000:.0f}", str(result.cache_hits),
                          str(result.cache_misses))  # fmt: skip
    stats = cache.statistics()
    Console().print(table)
    rate = stats.hits / max(1, stats.hits + stats.misses)
    print(f"cache: {stats.exact_hits} exact + {stats.semantic_hits} semantic hits, "
          f"{stats.misses} misses, hit rate {rate:.0%}")  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    """The command line, on the provider and clock `_common` set from the shared flags."""
    global LLM, MODEL, SCALE
    import _common  # examples/ is on sys.path when run as a script

    SCALE = _common.SCALE
    simulated = _common.PROVIDER == "simulated"
    MODEL = (args.model or "sim-large") if simulated else _common.MODEL
    speed = SimulatedModel(first_token_latency=0.0, tokens_per_second=TOKENS_PER_SECOND / SCALE)
    provider = _common.make_provider(SimulatedTransport(speed))
    # Simulated calls cost the seed's price; a real model its provider's list price.
    prices = PriceTable(prices={MODEL: SEED_PRICE}) if simulated else None
    async with open_llm_client(provider, seed=0, prices=prices) as LLM:
        priced = "at the seed's $0.00075 a model second" if simulated else f"at {MODEL}'s price"
        await run_main(args, priced)
        usage = LLM.meter.statistics()
        print(f"{usage.calls} model calls, {usage.input_tokens} + {usage.output_tokens} tokens, "
              f"${usage.cost:.4f} (${usage.cancelled_cost:.4f} on cancelled calls)",
              file=sys.stderr)  # fmt: skip


async def run_main(args: argparse.Namespace, priced: str) -> None:
    import _common  # examples/ is on sys.path when run as a script

    if args.out and (args.policy or args.repeat or args.requests):
        raise SystemExit("--out writes the runs of the table or of --path/--request: drop it")
    if args.policy:
        from _policy_mix import compare

        await compare(args.policy, share_b=args.share_b, count=args.count)
        return
    if args.repeat or args.requests:
        requests = DEFAULT_REQUESTS
        if args.requests:
            text = await trio.Path(args.requests).read_text()
            requests = [line.strip() for line in text.splitlines()]
            requests = [line for line in requests if line]
        async with open_cache(embedder=HashingEmbedder()) as cache:
            await repeat(requests, args.repeat or 1, cache)
        return
    paths = [args.path] if args.path else ["A", "B"]
    if args.request:  # the user's own request: Discovery decides the path
        paths = ["request"]
    modes = [args.mode] if args.mode else list(MODES)
    rows: list[dict[str, Any]] = []
    files: dict[str, Any] = {}
    for path in paths:
        for mode in modes:
            user_input = args.request or REQUESTS[path]
            result = await run_planner(path, mode, user_input)
            # Logged in the order of the table: the report opens on the run that shows
            # speculation best (Path A, speculative: Path B started, then cancelled).
            _common.log_run(result, mode, {"user_input": user_input})
            rows.append({"path": path, **record(result, mode, user_input)})
            files[f"workflow-{path}-{mode}.json"] = rows[-1]["outputs"]
    if args.out:
        written = await trio.to_thread.run_sync(_common.write_outputs, args.out, files)
        for row, path in zip(rows, written, strict=True):
            row["file"] = path
    if args.json:
        print(json.dumps(rows[0] if len(rows) == 1 else rows, indent=2))
    else:
        print_table(rows, priced)


def parse(argv: list[str]) -> argparse.Namespace:
    """The shared flags of `_common.parser` and the planner's own."""
    import _common  # examples/ is on sys.path when run as a script

    parser = _common.parser(__doc__)
    parser.add_argument("--path", choices=["A", "B"], help="the seed's request for this path")
    parser.add_argument("--request", help="plan this request instead (Discovery picks the path)")
    parser.add_argument("--mode", choices=list(MODES))
    parser.add_argument(
        "--out", metavar="DIR", help="write each run's workflow as JSON (not with --repeat)"
    )
    parser.add_argument("--repeat", type=int, default=0, help="run the request mix N times")
    parser.add_argument("--requests", help="a file of requests, one a line, for --repeat")
    policies = ["never", "always", "predictive", "oracle"]
    parser.add_argument(
        "--policy",
        action="append",
        choices=policies,
        help="compare speculation policies over a request mix (repeatable)",
    )
    parser.add_argument("--share-b", type=float, default=0.7, help="share of Path B requests")
    parser.add_argument("--count", type=int, default=200, help="requests in the mix")
    return parser.parse_args(argv)


if __name__ == "__main__":
    import _common

    _common.run(main, parse(sys.argv[1:]))
