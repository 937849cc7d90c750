"""Benchmark hedged LLM calls on a heavy-tailed provider, in virtual time.

Run: .venv/bin/python bench/hedging.py

Fixed in advance (issue 19), so that it cannot be tuned to the result:

- 10,000 calls, 100 at a time, each a streamed request through `LLMClient.complete` to an
  in-process server (`httpx.MockTransport`), in trio's virtual time (`MockClock`).
- A request's latency: with probability 2%, 10 times the median; otherwise the median
  times a factor uniform in [0.8, 1.2]. The slow ones vary by the same factor. The median is
  1 s. Each latency is drawn from a seeded generator keyed by the call and the request's
  number within it, so a hedge draws a fresh latency and both runs see the same calls.
- An answer is 100 tokens streamed in 10 chunks over its latency, so a request cancelled
  halfway is billed for the prompt and half the tokens.
- Hedging: `Hedge(after=0.97, max_extra=0.05)`, defaults otherwise (no hedge before 50
  latencies are known; a window of the last 1,000).
- Without hedging: the same calls with `hedge=False`.

It prints p50, p99 and p99.9 of the call latency with and without hedging, the extra
requests and the extra cost. The target, from the published results on hedged requests:
p99 at least 50% lower for at most 5% extra requests.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from typing import TYPE_CHECKING

import attrs
import httpx
import trio
import trio.testing
from specroute.engine.llm import (
    Hedge,
    HedgeState,
    LLMClient,
    Provider,
    ProviderLimits,
    RetryPolicy,
    UsageMeter,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

CALLS = 10_000
CONCURRENCY = 100
MEDIAN = 1.0
TAIL_SHARE = 0.02
TAIL_FACTOR = 10.0
JITTER = 0.2
TOKENS = 100
CHUNKS = 10
SEED = 19
MODEL = "gpt-4o-mini"
HEDGE = Hedge(after=0.97, max_extra=0.05)


def latency(call: int, request: int) -> float:
    """The latency of the `request`-th request (0: the primary) of call number `call`."""
    rng = random.Random(f"{SEED}:{call}:{request}")
    base = TAIL_FACTOR * MEDIAN if rng.random() < TAIL_SHARE else MEDIAN
    return base * rng.uniform(1 - JITTER, 1 + JITTER)


@attrs.define(eq=False)
class HeavyTail:
    """The server: reads the call's number from the prompt, counts its requests."""

    seen: dict[int, int] = attrs.Factory(dict)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        call = int(json.loads(request.content)["messages"][0]["content"])
        number = self.seen.get(call, 0)
        self.seen[call] = number + 1
        return httpx.Response(200, content=_stream(latency(call, number)))


async def _stream(seconds: float) -> AsyncIterator[bytes]:
    words = " ".join(["tok"] * (TOKENS // CHUNKS)) + " "
    chunk = {"choices": [{"index": 0, "delta": {"content": words}}]}
    for _ in range(CHUNKS):
        await trio.sleep(seconds / CHUNKS)
        yield f"data: {json.dumps(chunk)}\n\n".encode()
    end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    usage = {"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": TOKENS}}
    yield f"data: {json.dumps(end)}\n\ndata: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode()


@attrs.frozen(kw_only=True)
class Outcome:
    """One configuration's figures."""

    durations: tuple[float, ...]
    requests: int
    cost: float
    hedges_won: int


async def run(hedged: bool) -> Outcome:
    server = HeavyTail()
    meter = UsageMeter(max_records=None)
    durations: list[float] = []
    state = HedgeState()
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as http:
        client = LLMClient(
            provider=Provider.openai(
                api_key="unused",
                base_url="http://heavy-tail.invalid/v1",
                limits=ProviderLimits(max_in_flight=10 * CONCURRENCY),
            ),
            http=http,
            retry=RetryPolicy(max_attempts=1),
            meter=meter,
            hedge=HEDGE if hedged else None,
            hedge_state=state,
        )

        async def worker(first: int) -> None:
            for call in range(first, CALLS, CONCURRENCY):
                done = await client.complete(str(call), model=MODEL, max_tokens=TOKENS, stream=True)
                durations.append(done.duration)

        async with trio.open_nursery() as nursery:
            for first in range(CONCURRENCY):
                nursery.start_soon(worker, first)
    stats = meter.statistics()
    return Outcome(
        durations=tuple(sorted(durations)),
        requests=stats.calls,
        cost=stats.cost,
        hedges_won=state.statistics().hedges_won,
    )


def quantile(ordered: tuple[float, ...], q: float) -> float:
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def report(plain: Outcome, hedged: Outcome) -> bool:
    print(f"{CALLS:,} calls, {CONCURRENCY} at a time; {TAIL_SHARE:.0%} take {TAIL_FACTOR:g}x")
    print(f"the median ({MEDIAN:g} s), the rest +-{JITTER:.0%}; hedge after the learned p97")
    print(f"{'':<10}{'no hedging':>12}{'hedged':>12}{'change':>10}")
    target_met = True
    for name, q in (("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)):
        before, after = quantile(plain.durations, q), quantile(hedged.durations, q)
        print(f"{name:<10}{before:>10.3f} s{after:>10.3f} s{after / before - 1:>+10.1%}")
        if name == "p99":
            target_met = after <= 0.5 * before
    extra = hedged.requests / plain.requests - 1
    extra_cost = hedged.cost / plain.cost - 1
    print(f"{'requests':<10}{plain.requests:>12,}{hedged.requests:>12,}{extra:>+10.2%}")
    print(f"{'cost $':<10}{plain.cost:>12.4f}{hedged.cost:>12.4f}{extra_cost:>+10.2%}")
    print(f"hedges that won: {hedged.hedges_won:,} of {hedged.requests - plain.requests:,}")
    target_met = target_met and extra <= 0.05
    print(f"target (p99 at least 50% lower, at most 5% extra requests): "
          f"{'met' if target_met else 'MISSED'}")  # fmt: skip
    return target_met


def main() -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    clock = trio.testing.MockClock(autojump_threshold=0)
    plain = trio.run(run, False, clock=clock)
    hedged = trio.run(run, True, clock=trio.testing.MockClock(autojump_threshold=0))
    return 0 if report(plain, hedged) else 1


if __name__ == "__main__":
    sys.exit(main())
