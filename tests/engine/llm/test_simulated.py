"""The simulated provider, in virtual time: latency, tokens, injected failures, cancellation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import pytest
import trio
from specroute.engine.llm import (
    CallStatus,
    Provider,
    RetryBudgetExceededError,
    RetryPolicy,
    SimulatedModel,
    SimulatedTransport,
    Usage,
    UsageMeter,
    open_llm_client,
    structured,
)

if TYPE_CHECKING:
    from trio.testing import MockClock


async def test_latency_and_tokens_are_exact(autojump_clock: MockClock) -> None:
    sim = SimulatedTransport(SimulatedModel(first_token_latency=0.5, tokens_per_second=100))
    async with open_llm_client(Provider.simulated(sim), seed=0) as llm:
        streamed = await llm.complete("abcd", model="sim-small", max_tokens=300)
        whole = await llm.complete("abcd", model="sim-small", max_tokens=50, stream=False)
    assert streamed.duration == pytest.approx(0.5 + 3.0)
    assert streamed.usage == Usage(input_tokens=5, output_tokens=300)
    assert streamed.first_token_at == pytest.approx(streamed.started + 0.5 + 0.08)
    assert whole.duration == pytest.approx(0.5 + 0.5)
    assert whole.text.count(" ") == 50
    assert sim.statistics().completed == 2


async def test_output_tokens_cap(autojump_clock: MockClock) -> None:
    sim = SimulatedTransport(SimulatedModel(output_tokens=20))
    async with open_llm_client(Provider.simulated(sim), seed=0) as llm:
        completion = await llm.complete("x", model="sim-large", max_tokens=1000)
    assert completion.usage.output_tokens == 20


async def test_cancellation_bills_tokens_in_proportion_to_time(autojump_clock: MockClock) -> None:
    sim = SimulatedTransport(
        SimulatedModel(first_token_latency=1.0, tokens_per_second=100, chunk_tokens=1)
    )
    meter = UsageMeter()
    async with open_llm_client(Provider.simulated(sim), seed=0) as llm:
        with trio.move_on_after(1.0 + 2.0):
            await llm.complete("abcd", model="sim-small", max_tokens=1000, meter=meter)
    [record] = meter.records()
    assert record.status is CallStatus.CANCELLED
    assert record.usage == Usage(input_tokens=5, output_tokens=200, partial=True, estimated=True)
    assert sim.statistics().disconnected == 1


async def test_injected_429_is_retried_after_its_retry_after(autojump_clock: MockClock) -> None:
    sim = SimulatedTransport(SimulatedModel(rate_429=1.0, retry_after=2.0))
    policy = RetryPolicy(max_attempts=3, deadline=None)
    async with open_llm_client(Provider.simulated(sim), seed=0, retry=policy) as llm:
        with pytest.raises(RetryBudgetExceededError) as caught:
            await llm.complete("x", model="sim-small", max_tokens=5)
    assert [a.delay for a in caught.value.attempts] == [2.0, 2.0, None]
    assert sim.statistics().injected_429 == 3


@pytest.mark.parametrize(
    ("failure", "counter"),
    [
        ("rate_500", "injected_500"),
        ("rate_timeout", "injected_timeouts"),
        ("rate_drop", "injected_drops"),
    ],
)
async def test_injected_failures_at_their_rates_are_retried(
    autojump_clock: MockClock, failure: str, counter: str
) -> None:
    sim = SimulatedTransport(SimulatedModel(seed=5, **{failure: 0.3}))
    retry = RetryPolicy(max_attempts=10)
    async with open_llm_client(Provider.simulated(sim), seed=0, retry=retry) as llm:
        for _ in range(40):
            await llm.complete("x", model="sim-small", max_tokens=300)
    stats = sim.statistics()
    assert stats.completed == 40
    injected = getattr(stats, counter)
    assert stats.requests == 40 + injected
    assert 5 <= injected <= 30  # 30% of about 57 requests


async def test_dropped_stream_is_billed_in_the_retry_total(autojump_clock: MockClock) -> None:
    sim = SimulatedTransport(SimulatedModel(rate_drop=1.0))
    policy = RetryPolicy(max_attempts=2, deadline=None)
    meter = UsageMeter()
    async with open_llm_client(Provider.simulated(sim), seed=0, retry=policy, meter=meter) as llm:
        with pytest.raises(RetryBudgetExceededError):
            await llm.complete("abcd", model="sim-small", max_tokens=300)
    # Each attempt streamed half its 300 tokens before the drop: billed, estimated.
    assert meter.records()[0].usage == Usage(
        input_tokens=10, output_tokens=300, partial=True, estimated=True
    )


async def test_seeded_latency_is_reproducible(autojump_clock: MockClock) -> None:
    durations = []
    for seed in (1, 1, 2):
        sim = SimulatedTransport(SimulatedModel(latency_sigma=0.5, seed=seed))
        async with open_llm_client(Provider.simulated(sim), seed=0) as llm:
            completion = await llm.complete("x", model="sim-small", max_tokens=10)
        durations.append(completion.duration)
    assert durations[0] == durations[1]
    assert durations[0] != durations[2]


def test_validation() -> None:
    with pytest.raises(ValueError, match="`rate_500` must be a rate in"):
        SimulatedModel(rate_500=1.5)
    with pytest.raises(ValueError, match="failure rates must add up to <= 1"):
        SimulatedModel(rate_500=0.6, rate_429=0.6)


@attrs.frozen
class _Line:
    item: str
    usd: int


@attrs.frozen
class _Order:
    supplier: str
    lines: tuple[_Line, ...]
    urgent: bool


@pytest.mark.parametrize("stream", [False, True])
async def test_a_structured_call_gets_json_that_fits_its_schema(
    autojump_clock: MockClock, stream: bool
) -> None:
    sim = SimulatedTransport(SimulatedModel(first_token_latency=0.0, tokens_per_second=100))
    async with open_llm_client(Provider.simulated(sim), seed=0) as llm:
        start = trio.current_time()
        answer = await structured(
            llm, "order", output=_Order, model="sim-small", max_tokens=200, stream=stream
        )
        took = trio.current_time() - start
    assert answer.value == _Order(supplier="x", lines=(_Line(item="x", usd=1),), urgent=True)
    assert took == pytest.approx(2.0)  # the same latency as 200 tokens of words
