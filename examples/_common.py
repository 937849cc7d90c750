"""What the seed examples share: the simulated services, failure injection, flags, a table.

Latencies are the seeds' figures. An "LLM" step calls the simulated provider through the real
`LLMClient` (limits, retries and the usage ledger included), with no first-token latency and
`TOKENS_PER_SECOND` tokens a second, so a call asked for `ms * TOKENS_PER_SECOND / 1000`
tokens takes exactly `ms`. Other services (a vector store, a database) are a `trio.sleep`.
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

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence

T = TypeVar("T")

TOKENS_PER_SECOND = 100
MODEL = "sim-small"
NO_RETRY = RetryPolicy(max_attempts=1)
# Multiplies every latency (`--scale`); set once by `run` before the first step.
SCALE = 1.0
# Services that fail after their latency (`fail_service`), by name.
FAILING: set[str] = set()


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


@asynccontextmanager
async def open_llm(
    failures: Mapping[str, Sequence[str]] | None = None,
    *,
    limits: ProviderLimits = DEFAULT_LIMITS,
    retry: RetryPolicy = NO_RETRY,
) -> AsyncIterator[tuple[LLMClient, InjectedFailures]]:
    """The simulated LLM, with `failures` injected per stage; yields it and the injector."""
    speed = SimulatedModel(first_token_latency=0.0, tokens_per_second=TOKENS_PER_SECOND / SCALE)
    plan = {stage: list(kinds) for stage, kinds in (failures or {}).items()}
    transport = InjectedFailures(SimulatedTransport(speed), plan)
    provider = Provider.simulated(transport, limits=limits)
    async with open_llm_client(provider, retry=retry, seed=0) as llm:
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
    """The flags every seed example has: `--clock`, `--scale`, `--json`."""
    parse = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parse.add_argument("--clock", choices=["virtual", "real"], default="virtual")
    parse.add_argument("--scale", type=float, default=1.0, help="multiply every latency")
    parse.add_argument("--json", action="store_true", help="print one JSON object, no table")
    return parse


def run(main: Callable[[argparse.Namespace], Awaitable[None]], args: argparse.Namespace) -> None:
    """Run `main(args)` in trio, on a virtual clock unless `--clock real`."""
    global SCALE
    SCALE = args.scale
    clock = trio.testing.MockClock(autojump_threshold=0) if args.clock == "virtual" else None
    trio.run(main, args, clock=clock)


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
