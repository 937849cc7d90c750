"""Spend caps (`_spend.py`): per run and per tenant per window, local and through Redis; a
call that would pass a cap is not sent, one error names the cap, nothing spent is lost."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

import httpx
import pytest
import trio
from llm_mocks import MakeClient, openai_answer
from specroute.cache import open_redis
from specroute.engine import Flow, StepFailedError, step
from specroute.engine.llm import (
    LLMClient,
    LLMConfigError,
    SharedSpendLedger,
    SpendCap,
    SpendCapExceededError,
    SpendLedger,
    spend_caps,
)

if TYPE_CHECKING:
    from trio.testing import MockClock

    from tests.conftest import RedisServer

# Each call reserves its prompt estimate (5 tokens for "hi") + max_tokens 10 = 15, and the
# server says it used 5 + 1 = 6.
USED = 6


async def answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=openai_answer("ok", prompt_tokens=5, completion_tokens=1))


def tokens_of(client: LLMClient) -> int:
    stats = client.meter.statistics()
    return stats.input_tokens + stats.output_tokens


async def spend_until_refused(
    client: LLMClient, calls: int = 50
) -> tuple[int, SpendCapExceededError]:
    for sent in range(calls):
        try:
            await client.complete("hi", model="gpt-4o", max_tokens=10)
        except SpendCapExceededError as refused:
            return sent, refused
    raise AssertionError("the cap never refused a call")


async def test_a_run_cap_refuses_the_call_that_would_pass_it(make_client: MakeClient) -> None:
    client = make_client(answer)
    ledger = SpendLedger(SpendCap(name="run", tokens=60))
    with spend_caps(ledger):
        sent, refused = await spend_until_refused(client)
    # 8 calls used 48; the 9th would reserve 15 more (63 > 60) and is not sent.
    assert sent == 8
    assert refused.cap == "run"
    assert "spend cap 'run' (60 tokens)" in str(refused)
    assert "already 48 tokens" in str(refused)
    # Nothing spent is lost: the ledger and the client's meter agree, the refusal unbilled.
    stats = client.meter.statistics()
    assert ledger.spending().tokens == stats.input_tokens + stats.output_tokens == 8 * USED
    assert ledger.spending().refused == 1


async def test_a_dollar_cap(make_client: MakeClient) -> None:
    client = make_client(answer)
    # gpt-4o: $2.50 in, $10 out per million: a reservation is 5 * 2.5 + 10 * 10 = 112.5 u$,
    # a call spends 5 * 2.5 + 1 * 10 = 22.5 u$.
    ledger = SpendLedger(SpendCap(name="tenant acme", dollars=0.0002))
    with spend_caps(ledger):
        sent, refused = await spend_until_refused(client)
    assert sent == 4  # 67.5 + 112.5 fits 200 u$; 90 + 112.5 does not
    assert "$0.0002" in str(refused)
    assert ledger.spending().dollars == pytest.approx(client.meter.statistics().cost)


async def test_caps_nest_and_a_refusal_frees_the_others(make_client: MakeClient) -> None:
    client = make_client(answer)
    tenant = SpendLedger(SpendCap(name="tenant", tokens=1000))
    run = SpendLedger(SpendCap(name="run", tokens=20))
    with spend_caps(tenant), spend_caps(run):
        sent, refused = await spend_until_refused(client)
    assert (sent, refused.cap) == (1, "run")
    assert tenant.spending().tokens == run.spending().tokens == USED


async def test_a_window_cap_admits_again_once_the_window_passed(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    client = make_client(answer)
    ledger = SpendLedger(SpendCap(name="tenant per minute", tokens=30, window=60))
    with spend_caps(ledger):
        sent, _ = await spend_until_refused(client)
        assert sent == 3
        await trio.sleep(60)
        await client.complete("hi", model="gpt-4o", max_tokens=10)
    assert ledger.spending().tokens == USED


async def test_a_run_over_its_cap_stops_with_one_error_naming_it(make_client: MakeClient) -> None:
    client = make_client(answer)

    @step(output="draft")
    async def draft(topic: str) -> str:
        await client.complete(topic, model="gpt-4o", max_tokens=10)
        return "draft"

    @step(output="review")
    async def review(draft: str) -> str:
        await client.complete(draft, model="gpt-4o", max_tokens=10)
        return "ok"

    flow = Flow([draft, review], name="writer", inputs=["topic"], outputs=["review"])
    ledger = SpendLedger(SpendCap(name="run", tokens=20))
    with spend_caps(ledger), pytest.raises(StepFailedError) as failed:
        await flow.run(topic="hi", mode="sequential")
    assert isinstance(failed.value.__cause__, SpendCapExceededError)
    assert ledger.spending().tokens == tokens_of(client)


def test_a_cap_must_cap_something() -> None:
    with pytest.raises(LLMConfigError, match="sets neither"):
        SpendCap(name="run")
    with pytest.raises(LLMConfigError, match="`dollars` must be None or a number > 0"):
        SpendCap(name="run", dollars=0)


async def test_a_shared_cap_counts_every_worker(
    redis_server: RedisServer, redis_prefix: str, make_client: MakeClient
) -> None:
    cap = SpendCap(name="tenant acme per hour", tokens=60, window=3600)
    client = make_client(answer)
    async with open_redis(redis_server.url) as one, open_redis(redis_server.url) as two:
        ledgers = [
            SharedSpendLedger(redis=redis, cap=cap, key="acme", prefix=redis_prefix)
            for redis in (one, two)
        ]
        for n in range(4):
            with spend_caps(ledgers[n % 2]):
                await client.complete("hi", model="gpt-4o", max_tokens=10)
        with spend_caps(ledgers[0]):
            # 24 used by both workers; 4 more fit (42 + 15 <= 60), the 5th does not.
            sent, refused = await spend_until_refused(client)
    assert sent == 4
    assert "already 48 tokens" in str(refused)


@pytest.mark.filterwarnings("ignore:Unclosed <MemoryObject:ResourceWarning")
async def test_a_shared_cap_holds_locally_while_redis_is_down(
    private_redis_server: RedisServer, redis_prefix: str, make_client: MakeClient
) -> None:
    cap = SpendCap(name="tenant", tokens=30)
    client = make_client(answer)
    async with open_redis(private_redis_server.url) as redis:
        ledger = SharedSpendLedger(redis=redis, cap=cap, key="acme", prefix=redis_prefix)
        private_redis_server.stop()
        with spend_caps(ledger):
            sent, refused = await spend_until_refused(client)
    assert (sent, refused.cap) == (3, "tenant")
    gc.collect()
