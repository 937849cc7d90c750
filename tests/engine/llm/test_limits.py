"""Provider limits in virtual time: the cap in flight, per-minute budgets, cancellable waits."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import httpx
import pytest
import trio
import trio.testing
from llm_mocks import MakeClient, openai_answer
from specroute.engine.llm import (
    CallStatus,
    LLMConfigError,
    Provider,
    ProviderLimits,
    ProviderStatistics,
    Usage,
    UsageMeter,
    open_llm_client,
)
from specroute.engine.llm._limits import _TokenBucket

if TYPE_CHECKING:
    from trio.testing import MockClock


class SlowServer:
    """Answers after `delay` seconds and counts requests in flight."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0
        self.times: list[float] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.times.append(trio.current_time())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await trio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        return httpx.Response(200, json=openai_answer("ok", prompt_tokens=5, completion_tokens=1))


def local(limits: ProviderLimits) -> Provider:
    return Provider.openai(api_key="k", base_url="http://test/v1", limits=limits)


async def test_cap_is_shared_by_clients_of_one_provider(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    slow = SlowServer(delay=1.0)
    shared = local(ProviderLimits(max_in_flight=2))
    clients = [make_client(slow, provider=shared), make_client(slow, provider=shared)]
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for i in range(6):
            nursery.start_soon(partial(clients[i % 2].complete, "hi", model="gpt-4o", max_tokens=5))
    assert slow.max_in_flight == 2
    assert trio.current_time() - start == pytest.approx(3.0)


async def test_requests_per_minute(make_client: MakeClient, autojump_clock: MockClock) -> None:
    fast = SlowServer(delay=0.0)
    client = make_client(fast, limits=ProviderLimits(requests_per_minute=2))
    start = trio.current_time()
    for _ in range(4):
        await client.complete("hi", model="gpt-4o", max_tokens=5)
    # A full bucket of 2, then one request per 30 s as it refills.
    assert [t - start for t in fast.times] == pytest.approx([0.0, 0.0, 30.0, 60.0])


async def test_tokens_per_minute_reserves_max_tokens_and_gives_back_the_rest(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    fast = SlowServer(delay=0.0)
    provider = local(ProviderLimits(tokens_per_minute=600))
    client = make_client(fast, provider=provider)
    # Each call reserves 5 (prompt estimate) + 295 = 300 tokens and uses 5 + 1 = 6.
    for _ in range(3):
        await client.complete("hi", model="gpt-4o", max_tokens=295, stream=False)
    assert fast.times == pytest.approx([fast.times[0]] * 3)
    assert provider.statistics().tokens_available == 600 - 3 * 6


async def test_call_larger_than_the_token_budget_is_a_config_error(
    make_client: MakeClient,
) -> None:
    client = make_client(SlowServer(0.0), limits=ProviderLimits(tokens_per_minute=100))
    with pytest.raises(LLMConfigError, match="can never fit `tokens_per_minute`=100"):
        await client.complete("hi", model="gpt-4o", max_tokens=500)


async def test_waiting_for_a_slot_is_cancellable_and_recorded(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    provider = local(ProviderLimits(max_in_flight=1))
    client = make_client(SlowServer(delay=10.0), provider=provider)
    waiter_meter = UsageMeter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(client.complete, "hi", model="gpt-4o", max_tokens=5))
        await trio.sleep(1)
        with trio.move_on_after(1):
            await client.complete("hi", model="gpt-4o", max_tokens=5, meter=waiter_meter)
        assert provider.statistics() == ProviderStatistics(
            max_in_flight=1,
            in_flight=1,
            waiting_for_slot=0,
            requests_available=None,
            tokens_available=None,
        )
    [record] = waiter_meter.records()
    assert record.status is CallStatus.CANCELLED
    assert record.attempts == ()  # never sent
    assert record.usage == Usage(partial=True)
    assert record.cost == 0.0


def test_limits_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="`max_in_flight` must be an int >= 1, got 0"):
        ProviderLimits(max_in_flight=0)
    with pytest.raises(ValueError, match="`tokens_per_minute` must be an int >= 1, got -5"):
        ProviderLimits(tokens_per_minute=-5)


async def _spend(provider: Provider, requests: int, *, jump_to: float = 0.0) -> int | None:
    """In a fresh run (its clock first moved to `jump_to`), send `requests`; return what is
    left of the request budget."""
    clock = trio.lowlevel.current_clock()
    if jump_to:
        assert isinstance(clock, trio.testing.MockClock)
        clock.jump(jump_to)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=openai_answer("ok")))
    async with open_llm_client(provider, transport=transport) as client:
        for _ in range(requests):
            await client.complete("hi", model="gpt-4o", max_tokens=5)
    return provider.statistics().requests_available


def test_a_provider_keeps_its_budget_across_trio_runs() -> None:
    """A run's clock has its own origin; a new run must not find the budget refilled."""
    provider = local(ProviderLimits(requests_per_minute=10))
    late = trio.testing.MockClock()
    assert trio.run(partial(_spend, provider, 10, jump_to=100.0), clock=late) == 0
    # The next run's clock starts at 0, far "before" 100: the budget is still spent.
    assert trio.run(partial(_spend, provider, 0), clock=trio.testing.MockClock()) == 0
    assert trio.run(partial(_spend, provider, 0)) == 0


def test_time_between_runs_refills_by_the_wall_clock() -> None:
    seconds = [1000.0]
    bucket = _TokenBucket(60, wall=lambda: seconds[0])

    async def take(amount: int) -> float:
        await bucket.take(amount)
        return bucket.level()

    assert trio.run(take, 60, clock=trio.testing.MockClock()) == 0
    seconds[0] += 15  # a quarter of a minute between the runs: a quarter of the budget back
    assert trio.run(take, 0, clock=trio.testing.MockClock()) == pytest.approx(15)
