"""The planner from seed 000, run sequentially, with a parallel start, and speculatively.

Discovery asks "is there a saved workflow for this request?". If so (Path A) the planner
reuses it; if not (Path B) it generates one in seven slower steps. Speculation starts Path B
beside Discovery and cancels it the moment Discovery finds a workflow.

    python examples/planner.py                      # every path and mode, as a table
    python examples/planner.py --path B --mode speculative --json
    python examples/planner.py --clock real --scale 0.01
    python examples/planner.py --repeat 2          # cold and warm runs through the cache
    python examples/planner.py --log runs.jsonl    # append every run to a run log
    python examples/planner.py --policy never --policy always --policy predictive
    python examples/planner.py --clock real --provider openai --base-url URL --model M
"""

from __future__ import annotations

import argparse
import json
import string
import sys
from typing import Any, TypedDict

import attrs
import trio
import trio.testing
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
    Provider,
    SimulatedModel,
    SimulatedTransport,
    open_llm_client,
    structured,
)
from specroute.engine.report import RunLog, run_to_json

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
SCALE = 1.0
LOG: RunLog | None = None
# Every step is a model call through this client: simulated (default) or --provider's.
LLM: LLMClient | None = None
MODEL = ""
# The simulated model writes 100 tokens a second from the first: a step of the seed's
# `ms` milliseconds asks for ms / 10 tokens, so virtual time reproduces the seed exactly.
TOKENS_PER_SECOND = 100  # --log: every run is appended here


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
SEED_MS = {("A", "sequential"): 800, ("B", "sequential"): 4200, ("B", "parallel-start"): 3800}


def logged(result: RunResult, user_input: str, mode: str) -> RunResult:
    """Append the run to the --log run log, if there is one (inputs kept as a digest)."""
    if LOG is not None:
        LOG.append(result, inputs={"user_input": user_input}, label=mode)
    return result


async def run_planner(path: str, mode: str) -> RunResult:
    engine_mode, policy = MODES[mode]
    result = await planner.run(user_input=REQUESTS[path], mode=engine_mode, speculate=policy)
    return logged(result, REQUESTS[path], mode)


def record(result: RunResult, mode: str) -> dict[str, Any]:
    """One run as plain JSON, under the seed's name for its mode."""
    return {**run_to_json(result), "mode": mode}


def print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Planner (seed 000): wall time by path and mode")
    columns = ("path", "mode", "route", "wall ms", "wasted ms", "wasted $", "seed ms", "saved")
    for column in columns:
        table.add_column(column, justify="left" if column in columns[:3] else "right")
    baseline = {row["path"]: row["wall_ms"] for row in rows if row["mode"] == "sequential"}
    for row in rows:
        saved = baseline[row["path"]] - row["wall_ms"]
        seed = SEED_MS.get((row["path"], row["mode"]))
        table.add_row(row["path"], row["mode"], row["route"], f"{row['wall_ms']:.0f}",
                      f"{row['wasted_ms']:.0f}", f"{row['wasted_cost']:.5f}",
                      "" if seed is None else str(seed),
                      f"{saved:.0f} ms ({saved / baseline[row['path']]:.0%})")  # fmt: skip
    Console().print(table)


async def repeat(requests: list[str], times: int, cache: Cache) -> None:
    """Run the request mix `times` times through one cache: cold, then warm."""
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
            logged(result, request, "speculative")
            table.add_row(str(index + 1), request, result.route, f"{result.wall_time * 1000:.0f}",
                          f"{result.wasted_time * 1000:.0f}", str(result.cache_hits),
                          str(result.cache_misses))  # fmt: skip
    stats = cache.statistics()
    Console().print(table)
    rate = stats.hits / max(1, stats.hits + stats.misses)
    print(f"cache: {stats.exact_hits} exact + {stats.semantic_hits} semantic hits, "
          f"{stats.misses} misses, hit rate {rate:.0%}")  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    global LLM, MODEL
    if args.provider == "simulated":
        speed = SimulatedModel(first_token_latency=0.0, tokens_per_second=TOKENS_PER_SECOND / SCALE)
        provider = Provider.simulated(SimulatedTransport(speed))
        MODEL = "sim-large"
    else:
        make = Provider.openai if args.provider == "openai" else Provider.anthropic
        provider = make(base_url=args.base_url) if args.base_url else make()
        MODEL = args.model
    async with open_llm_client(provider, seed=0) as LLM:
        await run_main(args)
        usage = LLM.meter.statistics()
        print(f"{usage.calls} model calls, {usage.input_tokens} + {usage.output_tokens} tokens, "
              f"${usage.cost:.4f} (${usage.cancelled_cost:.4f} on cancelled calls)",
              file=sys.stderr)  # fmt: skip


async def run_main(args: argparse.Namespace) -> None:
    if args.policy:
        from _policy_mix import compare  # examples/ is on sys.path when run as a script

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
    modes = [args.mode] if args.mode else list(MODES)
    rows = []
    for path in paths:
        for mode in modes:
            row = record(await run_planner(path, mode), mode)
            rows.append({"path": path, **row})
    if args.json:
        print(json.dumps(rows[0] if len(rows) == 1 else rows, indent=2))
    else:
        print_table(rows)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", choices=["A", "B"])
    parser.add_argument("--mode", choices=list(MODES))
    parser.add_argument("--clock", choices=["virtual", "real"], default="virtual")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every latency")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--repeat", type=int, default=0, help="run the request mix N times")
    parser.add_argument("--requests", help="a file of requests, one a line, for --repeat")
    parser.add_argument("--log", help="append every run to this run log (JSON Lines)")
    policies = ["never", "always", "predictive", "oracle"]
    parser.add_argument(
        "--policy",
        action="append",
        choices=policies,
        help="compare speculation policies over a request mix (repeatable)",
    )
    parser.add_argument("--share-b", type=float, default=0.7, help="share of Path B requests")
    parser.add_argument("--count", type=int, default=200, help="requests in the mix")
    parser.add_argument(
        "--provider",
        choices=["simulated", "openai", "anthropic"],
        default="simulated",
        help="call a real model for every step",
    )
    parser.add_argument("--base-url", help="the provider's API root (a local vLLM, Ollama...)")
    parser.add_argument("--model", default="gpt-4o-mini", help="the model every step calls")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    SCALE = arguments.scale
    LOG = RunLog(arguments.log) if arguments.log else None
    clock = trio.testing.MockClock(autojump_threshold=0) if arguments.clock == "virtual" else None
    trio.run(main, arguments, clock=clock)
