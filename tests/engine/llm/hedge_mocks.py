"""Helpers for the hedging and failover tests: a server whose requests take scripted times."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import httpx
import trio
from llm_mocks import API_KEY, sse
from specroute.engine.llm import (
    Hedge,
    HedgeState,
    LLMClient,
    Provider,
    ProviderLimits,
    RetryPolicy,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

CHUNKS = 10
TOKEN = {"choices": [{"index": 0, "delta": {"content": "tok "}}]}
END = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


@attrs.define(eq=False)
class Scripted:
    """A server whose n-th request streams 10 tokens evenly over `latencies[n]` seconds
    (the last latency serves every later request); a latency < 0 answers 400."""

    latencies: list[float]
    arrivals: list[float] = attrs.Factory(list)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        latency = self.latencies[min(len(self.arrivals), len(self.latencies) - 1)]
        self.arrivals.append(trio.current_time())
        if latency < 0:
            return httpx.Response(400, json={"error": {"message": "no such model"}})
        return httpx.Response(200, content=self._stream(latency))

    async def _stream(self, latency: float) -> AsyncIterator[bytes]:
        for _ in range(CHUNKS):
            await trio.sleep(latency / CHUNKS)
            yield sse(TOKEN)
        usage = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": CHUNKS}}
        yield sse(END, usage, "[DONE]")


def client_over(
    server: Scripted,
    opened: list[httpx.AsyncClient],
    *,
    hedge: Hedge | None,
    state: HedgeState | None = None,
    max_in_flight: int = 100,
    name: str = "openai",
    retry: RetryPolicy | None = None,
) -> LLMClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(server))
    opened.append(http)
    provider = Provider.openai(
        api_key=API_KEY,
        base_url="http://test/v1",
        limits=ProviderLimits(max_in_flight=max_in_flight),
        name=name,
    )
    return LLMClient(
        provider=provider,
        http=http,
        hedge=hedge,
        hedge_state=HedgeState() if state is None else state,
        retry=retry or RetryPolicy(max_attempts=1),
    )
