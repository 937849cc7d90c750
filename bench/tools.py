"""What the tool loop and structured output add to the model calls they make, on loopback.

Run: .venv/bin/python bench/tools.py [--loops 100]

Against the local server (`tests/integration/llm_server.py`), whole answers, one client:

- tool loop: `run_tool_loop` with one tool that returns at once; the server's `tool-loop`
  model calls it, then answers. Two model calls per loop. Compared with the same two calls
  made by hand through `LLMClient.complete` (the second carrying the tool turn), the
  difference of the medians is what the loop itself adds (a nursery per round, the tool's
  record, argument validation).
- structured: `structured(..., output=Colour)` against `schema-ok`, beside a plain
  `complete` of the same model and prompt: the difference is parsing, validating and
  building the attrs instance.

Medians over `--loops` samples each, taken in turns (loop, by hand, by hand, loop, ...).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import attrs
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from llm_server import TOOL_CALLS, serve_llm
from specroute.engine.llm import (
    DEFAULT_PRICES,
    LLMClient,
    Message,
    ModelPrice,
    Provider,
    open_llm_client,
    run_tool_loop,
    structured,
    tool,
)

PRICES = DEFAULT_PRICES.with_prices(
    dict.fromkeys((*TOOL_CALLS, "schema-ok"), ModelPrice(input_per_million=1, output_per_million=1))
)


@attrs.frozen
class Colour:
    name: str
    hex: str


@tool
async def lookup_price(sku: str) -> float:
    """Return the list price of one article."""
    return 12.5


async def loop_once(client: LLMClient) -> None:
    await run_tool_loop(client, "A1?", tools=[lookup_price], model="tool-loop", stream=False)


async def by_hand(client: LLMClient) -> None:
    first = await client.complete(
        "A1?", model="tool-loop", max_tokens=64, stream=False, tools=[lookup_price.spec]
    )
    [call] = first.tool_calls
    turn = Message(role="assistant", content="", tool_calls=[call])
    result = Message.tool_result(call, str(await lookup_price.fn(**call.arguments())))
    await client.complete(
        [Message.user("A1?"), turn, result], model="tool-loop", max_tokens=64, stream=False
    )


async def structured_once(client: LLMClient) -> None:
    await structured(client, "Colour?", output=Colour, model="schema-ok", stream=False)


async def plain_once(client: LLMClient) -> None:
    await client.complete("Colour?", model="schema-ok", max_tokens=64, stream=False)


async def timed(fn: object, client: LLMClient) -> float:
    start = trio.current_time()
    await fn(client)  # type: ignore[operator]
    return trio.current_time() - start


async def compare(client: LLMClient, a: object, b: object, loops: int) -> tuple[float, float]:
    first: list[float] = []
    second: list[float] = []
    for number in range(10):  # warm up both
        await timed(a if number % 2 else b, client)
    for number in range(loops):
        order = (a, b) if number % 2 else (b, a)
        for fn in order:
            (first if fn is a else second).append(await timed(fn, client))
    return statistics.median(first) * 1000, statistics.median(second) * 1000


async def main(loops: int) -> None:
    async with serve_llm() as server:
        provider = Provider.openai(api_key="sk-bench", base_url=server.base_url)
        async with open_llm_client(provider, prices=PRICES) as client:
            loop_ms, hand_ms = await compare(client, loop_once, by_hand, loops)
            typed_ms, plain_ms = await compare(client, structured_once, plain_once, loops)
    print(f"tool loop, 2 calls:   {loop_ms:7.3f} ms   by hand {hand_ms:7.3f} ms", end="")
    print(f"   the loop adds {loop_ms - hand_ms:+.3f} ms (n={loops})")
    print(f"structured, 1 call:   {typed_ms:7.3f} ms   plain   {plain_ms:7.3f} ms", end="")
    print(f"   validation adds {typed_ms - plain_ms:+.3f} ms (n={loops})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=100, help="samples per figure (100)")
    trio.run(main, parser.parse_args().loops)
