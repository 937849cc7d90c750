"""What the seed examples share: the provider, failure injection, flags, outputs, a table.

Latencies are the seeds' figures. An "LLM" step calls the simulated provider through the real
`LLMClient` (limits, retries and the usage ledger included), with no first-token latency and
`TOKENS_PER_SECOND` tokens a second, so a call asked for `ms * TOKENS_PER_SECOND / 1000`
tokens takes exactly `ms`. Other services (a vector store, a database) are a `trio.sleep`.

Every example takes the same provider flags: `--provider openai|anthropic` (with `--base-url`
and `--model`) calls a real model for every LLM step, and implies `--clock real`, since a real
server answers in real seconds; the failure-injection flags need the simulated provider.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import httpx
import trio
import trio.testing
from specroute.engine.llm import (
    DEFAULT_LIMITS,
    LLMClient,
    Provider,
    ProviderLimits,
    RetryPolicy,
    SimulatedModel,
    SimulatedTransport,
    open_llm_client,
    structured,
)
from specroute.engine.report import RunLog

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence

    from specroute.engine import RunResult

T = TypeVar("T")

TOKENS_PER_SECOND = 100
MODEL = "sim-small"
NO_RETRY = RetryPolicy(max_attempts=1)
# Multiplies every latency (`--scale`); set once by `run` before the first step.
SCALE = 1.0
# Services that fail after their latency (`fail_service`), by name.
FAILING: set[str] = set()
# The provider every `open_llm` makes (`--provider`, `--base-url`), set by `run`.
PROVIDER = "simulated"
BASE_URL: str | None = None
# Where `log_run` appends runs (`--log`), set by `run`.
LOG: RunLog | None = None


class ServiceError(Exception):
    """An injected failure of a simulated service (not an LLM call)."""


async def work(name: str, ms: int) -> None:
    """Stand in for a service call that is not an LLM call: take `ms`, then maybe fail."""
    await trio.sleep(ms / 1000 * SCALE)
    if name in FAILING:
        raise ServiceError(f"{name}: injected failure (service unreachable)")


@attrs.define(eq=False)
class InjectedFailures(httpx.AsyncBaseTransport):
    """Answer the next requests of a stage with scripted failures, then pass them on.

    A request belongs to the stage its prompt starts with (`"STAGE: ..."`). A failure is an
    HTTP status (`"503"`), `"timeout"` or `"network"`; each is used once, in order.
    """

    inner: SimulatedTransport
    plan: dict[str, list[str]]
    injected: list[dict[str, str]] = attrs.field(factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        prompt = str(json.loads(request.content)["messages"][-1]["content"])
        stage = prompt.split(":", 1)[0]
        queue = self.plan.get(stage)
        if not queue:
            return await self.inner.handle_async_request(request)
        kind = queue.pop(0)
        self.injected.append({"stage": stage, "failure": kind})
        if kind == "timeout":
            raise httpx.ReadTimeout("injected read timeout", request=request)
        if kind == "network":
            raise httpx.ConnectError("injected network error", request=request)
        error = {"error": {"message": f"injected {kind}", "type": "injected", "code": int(kind)}}
        return httpx.Response(int(kind), json=error)


def parse_failures(specs: Iterable[str]) -> dict[str, list[str]]:
    """`["BRIEFING_MD=503,503", "PLAYS_MD=400"]` -> `{"BRIEFING_MD": ["503", "503"], ...}`."""
    plan: dict[str, list[str]] = {}
    for spec in specs:
        stage, _, kinds = spec.partition("=")
        plan.setdefault(stage, []).extend(kinds.split(",") if kinds else ["503"])
    return plan


def make_provider(
    transport: httpx.AsyncBaseTransport, *, limits: ProviderLimits = DEFAULT_LIMITS
) -> Provider:
    """The provider `--provider` names; `transport` answers only for the simulated one."""
    if PROVIDER == "simulated":
        return Provider.simulated(transport, limits=limits)
    make = Provider.openai if PROVIDER == "openai" else Provider.anthropic
    return make(base_url=BASE_URL, limits=limits) if BASE_URL else make(limits=limits)


@asynccontextmanager
async def open_llm(
    failures: Mapping[str, Sequence[str]] | None = None,
    *,
    limits: ProviderLimits = DEFAULT_LIMITS,
    retry: RetryPolicy = NO_RETRY,
) -> AsyncIterator[tuple[LLMClient, InjectedFailures]]:
    """The LLM `--provider` names (the simulated one by default), with `failures` injected
    per stage; yields it and the injector (whose `injected` stays empty on a real provider)."""
    plan = {stage: list(kinds) for stage, kinds in (failures or {}).items() if kinds}
    if plan and PROVIDER != "simulated":
        raise SystemExit(f"failure injection ({', '.join(plan)}) needs --provider simulated")
    speed = SimulatedModel(first_token_latency=0.0, tokens_per_second=TOKENS_PER_SECOND / SCALE)
    transport = InjectedFailures(SimulatedTransport(speed), plan)
    async with open_llm_client(make_provider(transport, limits=limits), retry=retry, seed=0) as llm:
        yield llm, transport


async def ask(llm: LLMClient, stage: str, ms: int, prompt: str) -> str:
    """One LLM call that takes `ms` (unstreamed, so it is a single exact wait)."""
    tokens = ms * TOKENS_PER_SECOND // 1000
    completion = await llm.complete(
        f"{stage}: {prompt}", model=MODEL, max_tokens=tokens, stream=False
    )
    return completion.text


async def ask_stream(llm: LLMClient, stage: str, ms: int, prompt: str) -> AsyncIterator[str]:
    """One streamed LLM call that takes `ms`: its text, piece by piece, as it arrives."""
    tokens = ms * TOKENS_PER_SECOND // 1000
    async for piece in llm.stream(f"{stage}: {prompt}", model=MODEL, max_tokens=tokens):
        yield piece


async def ask_for(llm: LLMClient, stage: str, ms: int, prompt: str, output: type[T]) -> T:
    """One structured LLM call that takes `ms`: its JSON answer checked against `output` (an
    attrs class) and returned as one, or a `StructuredOutputError` naming the field."""
    tokens = ms * TOKENS_PER_SECOND // 1000
    answer = await structured(
        llm, f"{stage}: {prompt}", output=output, model=MODEL, max_tokens=tokens, stream=False
    )
    value: T = answer.value
    return value


def parser(doc: str | None) -> argparse.ArgumentParser:
    """The flags every seed example has: the provider, the clock, `--scale`, `--json`, `--log`."""
    parse = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parse.add_argument(
        "--provider",
        choices=["simulated", "openai", "anthropic"],
        default="simulated",
        help="call a real model for every LLM step (implies --clock real)",
    )
    parse.add_argument("--base-url", help="the provider's API root (a local vLLM, Ollama...)")
    parse.add_argument("--model", help=f"the model every LLM step calls (default {MODEL})")
    parse.add_argument(
        "--clock",
        choices=["virtual", "real"],
        help="virtual (default for the simulated provider) or real (any real provider)",
    )
    parse.add_argument("--scale", type=float, default=1.0, help="multiply every latency")
    parse.add_argument("--json", action="store_true", help="print one JSON object, no table")
    parse.add_argument("--log", help="append every run to this run log, for `specroute report`")
    return parse


def configure(args: argparse.Namespace) -> None:
    """Apply the shared flags: the provider, the model, the scale, the clock, the run log.

    A real provider answers in real seconds, so it implies `--clock real`, and asking for the
    virtual clock with one is an error rather than a run whose deadlines pass in no time.
    """
    global SCALE, PROVIDER, BASE_URL, MODEL, LOG
    if args.provider != "simulated" and args.clock == "virtual":
        raise SystemExit(f"--provider {args.provider} answers in real time: drop --clock virtual")
    if args.base_url and args.provider == "simulated":
        raise SystemExit("--base-url needs --provider openai or --provider anthropic")
    args.clock = args.clock or ("virtual" if args.provider == "simulated" else "real")
    SCALE, PROVIDER, BASE_URL = args.scale, args.provider, args.base_url
    if args.model:
        MODEL = args.model
    elif args.provider != "simulated":
        MODEL = "gpt-4o-mini" if args.provider == "openai" else "claude-3-5-haiku-latest"
    LOG = RunLog(args.log) if args.log else None


def run(main: Callable[[argparse.Namespace], Awaitable[None]], args: argparse.Namespace) -> None:
    """Apply the shared flags, then run `main(args)` in trio on the clock they chose."""
    configure(args)
    clock = trio.testing.MockClock(autojump_threshold=0) if args.clock == "virtual" else None
    try:
        trio.run(main, args, clock=clock)
    finally:
        if LOG is not None:
            LOG.flush()


def log_run(result: RunResult, label: str, inputs: Mapping[str, Any] | None = None) -> None:
    """Append `result` to the `--log` run log, if one was asked for (inputs as a digest)."""
    if LOG is not None:
        LOG.append(result, inputs=inputs, label=label)


def write_outputs(folder: str, files: Mapping[str, Any]) -> list[str]:
    """Write each output to `folder/name` (text as is, anything else as JSON); return the paths.

    Called from a worker thread (`trio.to_thread.run_sync`) so the event loop never waits on
    the disk.
    """
    from pathlib import Path

    written = []
    Path(folder).mkdir(parents=True, exist_ok=True)
    for name, value in files.items():
        path = Path(folder) / name
        text = value if isinstance(value, str) else json.dumps(value, indent=2, default=str)
        path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        written.append(str(path))
    return written


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def print_table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], notes: Sequence[str] = ()
) -> None:
    """Print a rich table, then `notes`; numeric-looking columns are right-aligned."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        numeric = any(word in column for word in ("ms", "s)", "x", "%", "saved"))
        table.add_column(column, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    # Piped output (docs, CI logs) gets room for every column instead of 80 characters.
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    for note in notes:
        console.print(note, highlight=False)


def speedup(before: float, after: float) -> str:
    """Time saved and speed-up: `"19.7% / 1.25x"` for 3300 ms against 2650 ms."""
    return f"{1 - after / before:.1%} / {before / after:.2f}x"


def dump(record: Mapping[str, Any]) -> None:
    print(json.dumps(record, indent=2))
