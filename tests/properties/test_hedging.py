"""Hedged calls against an independent model of what each call must give, in virtual time.

Each call `c` has a primary latency `L[c][0]` and, if hedged, a backup latency `L[c][1]`;
the server reads `c` from the prompt, so concurrency cannot mix them up. Whatever the
latencies, the budget and the concurrency, these hold (issue 19):

1. Every call returns exactly one answer: one `completed` record per call, none failed.
2. Hedging never makes a call slower: its duration is at most its primary's latency, and
   exactly the earlier of the primary's end and the backup's end when a backup was sent.
3. Hedges never exceed the budget: hedges started <= `max_extra` x calls.
4. Every hedge has exactly one loser: `cancelled` records == hedges started, and the
   server saw calls + hedges requests.
5. Nothing is counted twice: the meter's cost is the sum of its records' costs.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import attrs
import httpx
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st
from specroute.engine.llm import (
    CallStatus,
    Completion,
    Hedge,
    HedgeRole,
    HedgeState,
    LLMClient,
    Provider,
    ProviderLimits,
    RetryPolicy,
    UsageMeter,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

latencies = st.integers(1, 40).map(lambda tenths: tenths / 10)


@attrs.define(eq=False)
class ByCall:
    """Serves call `c`'s n-th request in `table[c][n]` seconds, 4 chunks evenly."""

    table: list[tuple[float, float]]
    seen: dict[int, int] = attrs.Factory(dict)
    requests: int = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        call = int(json.loads(request.content)["messages"][0]["content"])
        number = self.seen.get(call, 0)
        self.seen[call] = number + 1
        self.requests += 1
        return httpx.Response(200, content=_stream(self.table[call][number]))


async def _stream(seconds: float) -> AsyncIterator[bytes]:
    chunk = {"choices": [{"index": 0, "delta": {"content": "tok "}}]}
    for _ in range(4):
        await trio.sleep(seconds / 4)
        yield f"data: {json.dumps(chunk)}\n\n".encode()
    usage = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}
    yield f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode()


@given(
    table=st.lists(st.tuples(latencies, latencies), min_size=1, max_size=25),
    delay=latencies,
    max_extra=st.sampled_from([0.05, 0.2, 0.5, 1.0]),
    concurrency=st.integers(1, 8),
)
def test_hedged_calls_match_the_model(
    table: list[tuple[float, float]], delay: float, max_extra: float, concurrency: int
) -> None:
    server = ByCall(table)
    meter = UsageMeter(max_records=None)
    state = HedgeState()
    answers: dict[int, Completion] = {}

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as http:
            client = LLMClient(
                provider=Provider.openai(
                    api_key="unused",
                    base_url="http://test/v1",
                    limits=ProviderLimits(max_in_flight=100),
                ),
                http=http,
                retry=RetryPolicy(max_attempts=1),
                meter=meter,
                hedge=Hedge(initial_delay=delay, max_extra=max_extra, min_samples=10**6),
                hedge_state=state,
            )

            async def worker(first: int) -> None:
                for call in range(first, len(table), concurrency):
                    answers[call] = await client.complete(str(call), model="gpt-4o", stream=True)

            async with trio.open_nursery() as nursery:
                for first in range(concurrency):
                    nursery.start_soon(worker, first)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))

    records = meter.records()
    started = state.statistics().hedges_started
    # 1.
    assert sorted(answers) == list(range(len(table)))
    assert [r.status for r in records].count(CallStatus.COMPLETED) == len(table)
    assert all(r.status is not CallStatus.FAILED for r in records)
    # 2.
    for call, answer in answers.items():
        primary, backup = table[call]
        assert answer.duration <= primary + 1e-9
        if server.seen[call] == 2:
            assert answer.duration == pytest.approx(min(primary, delay + backup))
            if primary != pytest.approx(delay + backup):  # a tie may go either way
                first = HedgeRole.PRIMARY if primary < delay + backup else HedgeRole.BACKUP
                assert answer.hedge is first
        else:
            assert answer.duration == pytest.approx(primary)
    # 3.
    assert started <= max_extra * len(table) + 1e-9
    # 4.
    assert [r.status for r in records].count(CallStatus.CANCELLED) == started
    assert server.requests == len(table) + started
    # 5.
    assert meter.statistics().cost == pytest.approx(sum(r.cost or 0.0 for r in records))
