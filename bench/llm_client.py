"""Benchmark the LLM client against a local server: per-call overhead and cancel latency.

Run: .venv/bin/python bench/llm_client.py [--calls 200] [--cancels 30]

- Overhead: a streamed call through `LLMClient.complete` whose server spends a known time
  (`TOKENS` tokens, `INTERVAL` seconds apart) is timed end to end; the overhead is the
  call's duration beyond that time (HTTP on loopback, SSE parsing, limits, accounting).
  The same request through bare httpx is the floor; the difference of the medians is what
  the client itself adds.
- Cancel latency: a slow stream is cancelled from an enclosing cancel scope once its first
  token arrived; the figure is the time from `cancel()` to the server seeing the disconnect,
  and to `complete` returning control.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from llm_server import LLMServer, serve_llm
from specroute.engine.llm import (
    DEFAULT_PRICES,
    LLMClient,
    ModelPrice,
    Provider,
    open_llm_client,
)

TOKENS = 10
INTERVAL = 0.002
MODEL = f"stream-{TOKENS}-{INTERVAL}"
PRICES = DEFAULT_PRICES.with_prices(
    dict.fromkeys((MODEL, "slow-stream"), ModelPrice(input_per_million=1, output_per_million=1))
)


def summary(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return (
        f"{name:<34} median {statistics.median(ms):7.3f} ms   mean {statistics.fmean(ms):7.3f} ms"
        f"   p95 {p95:7.3f} ms   (n={len(ms)})"
    )


async def overhead(client: LLMClient, calls: int) -> list[float]:
    server_time = TOKENS * INTERVAL
    for _ in range(10):  # warm up: connection, imports, JIT-free but caches
        await client.complete("hi", model=MODEL, max_tokens=TOKENS, stream=True)
    result = []
    for _ in range(calls):
        start = trio.current_time()
        await client.complete("hi", model=MODEL, max_tokens=TOKENS, stream=True)
        result.append(trio.current_time() - start - server_time)
    return result


async def raw_httpx(client: LLMClient, calls: int) -> list[float]:
    """The same request with bare httpx: the floor set by server, loopback and httpx."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    url = f"{client.provider.base_url}/chat/completions"
    result = []
    for _ in range(calls):
        start = trio.current_time()
        async with client.http.stream("POST", url, json=body) as response:
            async for _line in response.aiter_lines():
                pass
        result.append(trio.current_time() - start - TOKENS * INTERVAL)
    return result


async def cancel_latency(
    client: LLMClient, server: LLMServer, cancels: int
) -> tuple[list[float], list[float]]:
    to_server, to_return = [], []
    for _ in range(cancels):
        server.first_chunk_sent = trio.Event()
        server.disconnected = trio.Event()
        scope = trio.CancelScope()
        returned = trio.Event()

        async def branch(scope: trio.CancelScope = scope, returned: trio.Event = returned) -> None:
            with scope:
                await client.complete("go", model="slow-stream", max_tokens=1000)
            returned.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(branch)
            await server.first_chunk_sent.wait()
            cancelled_at = trio.current_time()
            scope.cancel()
            await returned.wait()
            to_return.append(trio.current_time() - cancelled_at)
            with trio.fail_after(5):
                await server.disconnected.wait()
            to_server.append(server.disconnects[-1] - cancelled_at)
    return to_server, to_return


async def main(calls: int, cancels: int) -> None:
    async with serve_llm() as server:
        provider = Provider.openai(api_key="sk-bench", base_url=server.base_url)
        async with open_llm_client(provider, prices=PRICES) as client:
            extra = await overhead(client, calls)
            floor = await raw_httpx(client, calls)
            to_server, to_return = await cancel_latency(client, server, cancels)
    print(f"server time per streamed call: {TOKENS} tokens x {INTERVAL * 1000:g} ms")
    print(summary("call time beyond the server's delay", extra))
    print(summary("same with bare httpx (the floor)", floor))
    own = statistics.median(extra) - statistics.median(floor)
    print(f"{'specroute overhead (median diff)':<34} {own * 1000:7.3f} ms")
    print(summary("cancel -> complete() returns", to_return))
    print(summary("cancel -> server sees disconnect", to_server))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--cancels", type=int, default=30)
    args = parser.parse_args()
    trio.run(main, args.calls, args.cancels)
