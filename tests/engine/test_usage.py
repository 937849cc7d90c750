"""Every LLM call is attributed to its step; a cancelled speculative call is billed as waste."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import trio
from specroute.engine import Flow, StepStatus, router, step
from specroute.engine.llm import Provider, SimulatedModel, SimulatedTransport, open_llm_client
from specroute.routes import Always, Route, StepFailedError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from trio.testing import MockClock


async def test_cancelled_speculative_call_is_wasted_dollars(autojump_clock: MockClock) -> None:
    # 200 tokens/s: a 2000-token answer takes 10 s; the router decides after 2 s.
    simulation = SimulatedModel(first_token_latency=0.1, tokens_per_second=200.0)
    async with open_llm_client(Provider.simulated(SimulatedTransport(simulation))) as llm:

        @step
        async def decide(request: str) -> Route:
            answer = await llm.complete(request, model="sim-small", max_tokens=20)
            await trio.sleep(2)
            return Route("short", text=answer.text)

        @step(output="text")
        async def write_long(request: str) -> str:
            done = await llm.complete(request, model="sim-large", max_tokens=2000, stream=True)
            return done.text

        flow = Flow(
            [
                router(
                    decide,
                    {"short": Flow([], outputs=["text"]), "long": Flow([write_long])},
                    handoff={"short": ["text"]},
                )
            ]
        )
        result = await flow.run(request="write something", speculate=Always())

    by_step = {entry.step: entry for entry in result.trace}
    long_entry = by_step["write_long"]
    assert long_entry.status is StepStatus.CANCELLED
    assert long_entry.wasted
    assert long_entry.usage is not None
    assert long_entry.usage.cancelled_calls == 1
    # ~2 s of a 10 s stream arrived: billed, partially, never free.
    assert 0 < long_entry.usage.output_tokens < 2000
    assert long_entry.usage.cost > 0
    assert result.wasted_cost == pytest.approx(long_entry.usage.cost)
    decide_usage = by_step["decide"].usage
    assert decide_usage is not None
    assert decide_usage.calls == 1
    assert decide_usage.cancelled_calls == 0
    assert result.usage.calls == 2
    assert result.usage.cost == pytest.approx(decide_usage.cost + long_entry.usage.cost)


async def test_fallback_stands_in_for_a_failed_step(autojump_clock: MockClock) -> None:
    @step(output="documents", fallback=lambda exc: [])
    async def retrieve(query: str) -> list[str]:
        raise ConnectionError("vector store down")

    @step(output="answer")
    async def generate(query: str, documents: list[str]) -> str:
        return f"{query}: {len(documents)} sources"

    result = await Flow([retrieve, generate]).run(query="q")
    assert result.outputs == {"answer": "q: 0 sources"}
    entry = result.trace[0]
    assert entry.status is StepStatus.RECOVERED
    assert entry.error is not None
    assert "vector store down" in entry.error


async def test_failing_fallback_fails_the_run(autojump_clock: MockClock) -> None:
    def no_default(exc: Exception) -> list[str]:
        raise LookupError("no default either")

    @step(output="documents", fallback=no_default)
    async def retrieve(query: str) -> list[str]:
        raise ConnectionError("down")

    with pytest.raises(StepFailedError, match="retrieve"):
        await Flow([retrieve]).run(query="q")


async def test_fallback_may_read_the_step_inputs(autojump_clock: MockClock) -> None:
    def from_metrics(exc: Exception, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {"source": "computed", "total": sum(inputs["metrics"])}

    @step(output="procurement", fallback=from_metrics)
    async def procure(metrics: list[int]) -> dict[str, Any]:
        raise TimeoutError("model timed out")

    result = await Flow([procure]).run(metrics=[1, 2, 3])
    assert result.outputs == {"procurement": {"source": "computed", "total": 6}}


def test_fallback_with_three_parameters_is_refused() -> None:
    from specroute.routes import StepDefinitionError

    with pytest.raises(StepDefinitionError, match="takes 3 parameters"):

        @step(fallback=lambda a, b, c: None)
        async def odd() -> None:
            return None


def test_hedge_and_failover_figures_add_up_per_step() -> None:
    from specroute.engine import StepUsage
    from specroute.engine.llm import CallRecord, CallStatus, HedgeRole, Usage

    def record(
        status: CallStatus, cost: float, hedge: HedgeRole | None = None, **more: Any
    ) -> CallRecord:
        return CallRecord(
            provider="p",
            model="m",
            status=status,
            usage=Usage(input_tokens=1, output_tokens=1),
            cost=cost,
            attempts=(),
            started=0.0,
            finished=1.0,
            hedge=hedge,
            **more,
        )

    usage = StepUsage.of(
        [
            # A hedge that won: the primary is the waste.
            record(CallStatus.CANCELLED, 0.25, HedgeRole.PRIMARY),
            record(CallStatus.COMPLETED, 0.5, HedgeRole.BACKUP, saved=3.0),
            # A hedge that lost: the hedge is the waste.
            record(CallStatus.COMPLETED, 1.0, HedgeRole.PRIMARY),
            record(CallStatus.CANCELLED, 0.125, HedgeRole.BACKUP),
            # No hedge, answered by the second target of a failover.
            record(CallStatus.FAILED, 0.0, failover=0),
            record(CallStatus.COMPLETED, 2.0, failover=1),
        ]
    )
    assert (usage.calls, usage.hedges_started, usage.hedges_won) == (6, 2, 1)
    assert usage.hedge_saved == 3.0
    assert usage.hedge_cost == 0.375
    assert usage.failed_over == 1
    assert usage.cost == 3.875


async def test_a_cached_steps_calls_are_in_its_own_entry(autojump_clock: MockClock) -> None:
    # A cache miss computes in the cache's single-flight task, not the step's: its calls
    # still belong to the step, and a hit makes none.
    from specroute.cache import CacheOptions, open_cache

    simulation = SimulatedModel(first_token_latency=0.1, tokens_per_second=200.0)
    async with (
        open_llm_client(Provider.simulated(SimulatedTransport(simulation))) as llm,
        open_cache() as cache,
    ):

        @step(cache=CacheOptions())
        async def summarize(text: str) -> str:
            return (await llm.complete(text, model="sim-small", max_tokens=20)).text

        flow = Flow([summarize])
        missed = await flow.run(text="a document", cache=cache)
        hit = await flow.run(text="a document", cache=cache)

    (entry,) = missed.trace
    assert entry.usage is not None
    assert entry.usage.calls == 1
    assert entry.usage.cost == pytest.approx(missed.usage.cost)
    (served,) = hit.trace
    assert served.status is StepStatus.CACHED
    assert served.usage is None
