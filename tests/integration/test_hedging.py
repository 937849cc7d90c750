"""Hedged calls against the real local server's heavy-tail mode (issue 19).

Real sleeps: each test takes well under two seconds.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import pytest
import trio
from llm_server import LLMServer, serve_llm
from specroute.engine.llm import (
    DEFAULT_PRICES,
    CallStatus,
    Completion,
    Hedge,
    HedgeRole,
    HedgeState,
    ModelPrice,
    Provider,
    ProviderLimits,
    UsageMeter,
    open_llm_client,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.integration

# Half the requests (the 2nd, 4th...) take 20 times 0.05 s; the others 0.05 s.
TAIL = "tail-50-20-0.05"
PRICES = DEFAULT_PRICES.with_prices(
    {TAIL: ModelPrice(input_per_million=1.0, output_per_million=2.0)}
)
HEDGE = Hedge(initial_delay=0.15, max_extra=1.0)


@pytest.fixture
async def server() -> AsyncIterator[LLMServer]:
    async with serve_llm() as running:
        yield running


def provider(server: LLMServer, *, max_in_flight: int) -> Provider:
    return Provider.openai(
        api_key="sk-local-test",
        base_url=server.base_url,
        limits=ProviderLimits(max_in_flight=max_in_flight),
    )


async def test_the_losing_stream_is_closed_and_the_server_sees_the_disconnect(
    server: LLMServer,
) -> None:
    mine = UsageMeter()
    async with open_llm_client(
        provider(server, max_in_flight=8), prices=PRICES, hedge=HEDGE, hedge_state=HedgeState()
    ) as llm:
        first = await llm.complete("hi", model=TAIL, stream=True, meter=mine)  # fast: no hedge
        second = await llm.complete("hi", model=TAIL, stream=True, meter=mine)  # slow: hedged
        with trio.fail_after(2):
            await server.disconnected.wait()

    assert first.hedge is None
    assert second.hedge is HedgeRole.BACKUP
    assert second.duration < 0.5  # the slow primary would have taken 1 s
    assert len(server.disconnects) == 1
    assert server.seen[TAIL] == 3
    _, primary, backup = mine.records()
    assert (primary.hedge, primary.status) == (HedgeRole.PRIMARY, CallStatus.CANCELLED)
    assert primary.usage.partial
    assert primary.cost is not None
    assert primary.cost > 0  # billed for the prompt and what arrived
    assert backup.status is CallStatus.COMPLETED


async def test_hedges_never_exceed_the_providers_in_flight_cap(server: LLMServer) -> None:
    state = HedgeState()
    answers: list[Completion] = []
    async with open_llm_client(
        provider(server, max_in_flight=2), prices=PRICES, hedge=HEDGE, hedge_state=state
    ) as llm:

        async def call() -> None:
            answers.append(await llm.complete("hi", model=TAIL, stream=True))

        async with trio.open_nursery() as nursery:
            for _ in range(6):
                nursery.start_soon(partial(call))

    stats = state.statistics()
    assert len(answers) == 6
    assert server.max_in_flight <= 2
    assert server.seen[TAIL] == 6 + stats.hedges_started
    # A slow primary outlives its 0.15 s threshold: a hedge was sent or found the cap full.
    assert stats.hedges_started + stats.provider_busy >= 1
