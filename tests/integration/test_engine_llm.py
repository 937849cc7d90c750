"""The engine and the LLM client together, against a real local server on 127.0.0.1."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio
from llm_server import serve_llm
from specroute.engine import Flow, StepStatus, router, step
from specroute.engine.llm import DEFAULT_PRICES, ModelPrice, Provider, open_llm_client
from specroute.routes import Always, Route

if TYPE_CHECKING:
    from specroute.engine.llm import LLMClient

ROOT = Path(__file__).resolve().parents[2]
# The local server's models are not in the price table; a made-up price would be a lie
# outside tests, but here it lets the test see the cancelled call billed in dollars.
PRICES = DEFAULT_PRICES.with_prices(
    {"slow-stream": ModelPrice(input_per_million=1.0, output_per_million=4.0)}
)
pytestmark = pytest.mark.integration


def assert_no_stuck_connection(client: LLMClient) -> None:
    pool = client.http._transport._pool  # type: ignore[attr-defined]
    assert pool._requests == []
    assert [c for c in pool.connections if not (c.is_idle() or c.is_closed())] == []


async def test_losing_branch_stream_is_closed_and_billed() -> None:
    async with serve_llm() as server:
        provider = Provider.openai(api_key="sk-local", base_url=server.base_url)
        async with open_llm_client(provider, prices=PRICES) as llm:

            @step
            async def decide(request: str) -> Route:
                await server.first_chunk_sent.wait()  # the speculative stream is flowing
                await trio.sleep(0.1)
                return Route("short")

            @step(output="text")
            async def write_long(request: str) -> str:
                answer = await llm.complete(request, model="slow-stream", max_tokens=4000)
                return answer.text

            @step(output="text")
            async def write_short() -> str:
                return "short answer"

            flow = Flow(
                [router(decide, {"long": Flow([write_long]), "short": Flow([write_short])})]
            )
            result = await flow.run(request="write", speculate=Always())
            decided = result.decisions[0].at
            assert decided is not None
            with trio.fail_after(2):
                await server.disconnected.wait()
            assert_no_stuck_connection(llm)

    assert result.outputs == {"text": "short answer"}
    entry = next(e for e in result.trace if e.step == "write_long")
    assert entry.status is StepStatus.CANCELLED
    assert entry.wasted
    # The server saw the client leave right after the route was known ...
    assert server.disconnects[0] - decided < 0.5
    # ... and the cancelled call is billed for what arrived, never free.
    assert entry.usage is not None
    assert entry.usage.cancelled_calls == 1
    assert entry.usage.output_tokens > 0
    assert entry.usage.cost > 0


async def test_planner_runs_against_an_openai_compatible_endpoint() -> None:
    async with serve_llm() as server:
        command = [sys.executable, str(ROOT / "examples" / "planner.py"), "--clock", "real",
                   "--provider", "openai", "--base-url", server.base_url, "--model", "hold-0.01",
                   "--path", "B", "--mode", "speculative", "--json"]  # fmt: skip
        done = await trio.run_process(command, capture_stdout=True, capture_stderr=True)
    record = json.loads(done.stdout)
    assert record["route"] == "generate"
    # Discovery and the nine steps of Path B each asked the model once.
    assert server.seen["hold-0.01"] == 10
    assert record["usage"]["calls"] == 10
    assert b"10 model calls" in done.stderr
