"""Hedged calls in virtual time: when the hedge starts, who wins, what the loser is billed."""

from __future__ import annotations

import json
from functools import partial
from typing import TYPE_CHECKING, Any

import attrs
import httpx
import pytest
import trio
from hedge_mocks import CHUNKS, Scripted, client_over
from llm_mocks import API_KEY
from specroute.engine.llm import (
    CallStatus,
    Hedge,
    HedgeRole,
    HedgeState,
    LLMClient,
    Provider,
    ProviderHTTPError,
    UsageMeter,
    hedging,
    no_hedging,
    tool,
)
from specroute.engine.llm._race import CallArgs, Leg, run_call

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from specroute.engine.llm._call import CallState
    from trio.testing import MockClock


@pytest.fixture
async def http_for() -> AsyncIterator[list[httpx.AsyncClient]]:
    opened: list[httpx.AsyncClient] = []
    yield opened
    for http in opened:
        await http.aclose()


# Ten latencies 1..10 s teach a p90 threshold of 9 s (rank ceil(0.9 * 10) = 9).
WARM = [float(n) for n in range(1, 11)]
TEACH_P90 = Hedge(after=0.9, max_extra=1.0, min_samples=10)


async def warm_up(client: LLMClient) -> None:
    for _ in WARM:
        await client.complete("hi", model="gpt-4o", stream=True)


async def test_hedge_starts_exactly_at_the_learned_quantile_and_the_first_answer_wins(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    server = Scripted([*WARM, 100.0, 2.0])
    client = client_over(server, http_for, hedge=TEACH_P90)
    await warm_up(client)
    started = trio.current_time()

    completion = await client.complete("hi", model="gpt-4o", stream=True)

    assert server.arrivals[-2:] == [started, pytest.approx(started + 9.0, abs=1e-9)]
    assert completion.hedge is HedgeRole.BACKUP
    assert completion.started == started
    assert completion.duration == pytest.approx(11.0)
    assert completion.text == "tok " * CHUNKS
    stats = client.hedge_state.statistics()
    assert (stats.hedges_started, stats.hedges_won) == (1, 1)


async def test_loser_is_cancelled_billed_partially_and_nothing_is_counted_twice(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    server = Scripted([*WARM, 100.0, 2.0])
    client = client_over(server, http_for, hedge=TEACH_P90)
    await warm_up(client)
    mine = UsageMeter()

    completion = await client.complete("hi", model="gpt-4o", stream=True, meter=mine)

    primary, backup = mine.records()
    assert (primary.hedge, primary.status) == (HedgeRole.PRIMARY, CallStatus.CANCELLED)
    assert (backup.hedge, backup.status) == (HedgeRole.BACKUP, CallStatus.COMPLETED)
    # The primary streams a token every 10 s and was cut at 11 s: one token arrived.
    assert primary.usage.partial
    assert primary.usage.output_tokens == 1
    assert completion.usage == backup.usage
    stats = mine.statistics()
    assert (stats.calls, stats.completed, stats.cancelled) == (2, 1, 1)
    assert stats.cancelled_cost == pytest.approx(primary.cost)
    assert stats.cost == pytest.approx(primary.cost + backup.cost)  # type: ignore[operator]
    # No past latency is above 11 s, so no time saved can be shown.
    assert backup.saved == 0.0


async def test_latency_saved_is_the_mean_past_latency_above_the_win(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    # Warm-up latencies 1..9 s and 60 s: p90 is still 9 s; a hedge that wins at 11 s saved
    # 60 - 11 = 49 s by the only past latency above 11 s.
    server = Scripted([*WARM[:9], 60.0, 100.0, 2.0])
    client = client_over(server, http_for, hedge=TEACH_P90)
    await warm_up(client)
    mine = UsageMeter()
    await client.complete("hi", model="gpt-4o", stream=True, meter=mine)
    _, backup = mine.records()
    assert backup.saved == pytest.approx(49.0)


async def test_primary_that_finishes_first_wins_and_the_hedge_is_the_waste(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    server = Scripted([*WARM, 9.5, 5.0])
    client = client_over(server, http_for, hedge=TEACH_P90)
    await warm_up(client)
    mine = UsageMeter()

    completion = await client.complete("hi", model="gpt-4o", stream=True, meter=mine)

    assert completion.hedge is HedgeRole.PRIMARY
    assert completion.duration == pytest.approx(9.5)
    primary, backup = mine.records()
    assert primary.status is CallStatus.COMPLETED
    assert backup.status is CallStatus.CANCELLED
    assert backup.usage.partial
    assert client.hedge_state.statistics().hedges_won == 0


async def test_no_hedge_before_enough_samples_unless_an_initial_delay_is_given(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    server = Scripted([100.0, 1.0])
    waiting = client_over(server, http_for, hedge=Hedge(min_samples=5))
    completion = await waiting.complete("hi", model="gpt-4o", stream=True)
    assert completion.hedge is None
    assert completion.duration == pytest.approx(100.0)

    server = Scripted([100.0, 1.0])
    eager = Hedge(min_samples=5, initial_delay=3.0, max_extra=1.0)
    client = client_over(server, http_for, hedge=eager)
    start = trio.current_time()
    completion = await client.complete("hi", model="gpt-4o", stream=True)
    assert server.arrivals == [start, pytest.approx(start + 3.0, abs=1e-9)]
    assert completion.hedge is HedgeRole.BACKUP


async def test_budget_holds_under_concurrency(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    server = Scripted([10.0])
    state = HedgeState()
    hedge = Hedge(max_extra=0.1, min_samples=1000, initial_delay=1.0, burst=100.0)
    client = client_over(server, http_for, hedge=hedge, state=state, max_in_flight=1000)
    mine = UsageMeter()

    async with trio.open_nursery() as nursery:
        for _ in range(100):
            nursery.start_soon(partial(client.complete, "hi", model="gpt-4o", meter=mine))

    backups = [r for r in mine.records() if r.hedge is HedgeRole.BACKUP]
    stats = state.statistics()
    # 100 calls earn 0.1 hedge each: exactly 10 hedges, however the calls interleave.
    assert len(backups) == stats.hedges_started == 10
    assert stats.over_budget == 90
    assert len(server.arrivals) == 110


async def test_burst_caps_saved_up_budget(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    server = Scripted([10.0])
    hedge = Hedge(max_extra=0.5, min_samples=1000, initial_delay=1.0, burst=3.0)
    client = client_over(server, http_for, hedge=hedge, max_in_flight=1000)

    async with trio.open_nursery() as nursery:
        for _ in range(40):
            nursery.start_soon(partial(client.complete, "hi", model="gpt-4o", stream=True))

    assert client.hedge_state.statistics().hedges_started == 3


async def test_hedges_never_push_a_provider_past_its_cap(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    server = Scripted([10.0])
    hedge = Hedge(max_extra=1.0, min_samples=1000, initial_delay=1.0)
    client = client_over(server, http_for, hedge=hedge, max_in_flight=3)
    # Earn credit first, one call at a time (each is hedged: 2 requests of 3 slots).
    for _ in range(2):
        await client.complete("hi", model="gpt-4o", stream=True)
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, client.provider.statistics().in_flight)
            await trio.sleep(0.1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        async with trio.open_nursery() as calls:
            for _ in range(2):
                calls.start_soon(partial(client.complete, "hi", model="gpt-4o", stream=True))
        nursery.cancel_scope.cancel()

    stats = client.hedge_state.statistics()
    # Two calls hold 2 of 3 slots: one hedge fits, the other finds the provider full.
    assert peak == 3
    assert stats.provider_busy == 1
    assert stats.hedges_started == 3


async def test_calls_inside_no_hedging_are_never_hedged(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    server = Scripted([100.0, 1.0])
    client = client_over(server, http_for, hedge=Hedge(initial_delay=1.0, max_extra=1.0))
    with no_hedging():
        completion = await client.complete("hi", model="gpt-4o", stream=True)
    assert completion.hedge is None
    assert len(server.arrivals) == 1
    # Nor do they earn budget.
    assert client.hedge_state.statistics().calls == 0


async def test_call_option_overrides_the_client(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    server = Scripted([100.0, 1.0])
    client = client_over(server, http_for, hedge=Hedge(initial_delay=1.0, max_extra=1.0))
    completion = await client.complete("hi", model="gpt-4o", stream=True, hedge=False)
    assert completion.hedge is None
    server = Scripted([100.0, 1.0])
    client = client_over(server, http_for, hedge=None)
    completion = await client.complete(
        "hi", model="gpt-4o", stream=True, hedge=Hedge(initial_delay=1.0, max_extra=1.0)
    )
    assert completion.hedge is HedgeRole.BACKUP


async def test_provider_hedge_applies_when_client_and_call_say_nothing(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    server = Scripted([100.0, 1.0])
    client = client_over(server, http_for, hedge=None)
    client.provider.hedge = Hedge(initial_delay=1.0, max_extra=1.0)
    completion = await client.complete("hi", model="gpt-4o", stream=True)
    assert completion.hedge is HedgeRole.BACKUP


async def test_a_hedging_block_hedges_the_calls_inside_it(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    server = Scripted([100.0, 1.0, 100.0])
    client = client_over(server, http_for, hedge=None)
    with hedging(Hedge(initial_delay=1.0, max_extra=1.0)):
        inside = await client.complete("hi", model="gpt-4o", stream=True)
        with no_hedging():
            unhedged = await client.complete("hi", model="gpt-4o", stream=True)
    assert inside.hedge is HedgeRole.BACKUP
    assert unhedged.hedge is None
    assert unhedged.duration == pytest.approx(100.0)
    with pytest.raises(TypeError, match=r"`hedge` must be a Hedge, got 0\.97"):
        hedging(0.97).__enter__()  # type: ignore[arg-type]


async def test_a_failed_primary_waits_for_its_hedge(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    # The primary streams for 5 s, the hedge (sent at 1 s) answers 400 at once, the
    # primary then completes: a failed request does not end a call another can finish.
    server = Scripted([5.0, -1.0])
    client = client_over(server, http_for, hedge=Hedge(initial_delay=1.0, max_extra=1.0))
    mine = UsageMeter()
    completion = await client.complete("hi", model="gpt-4o", stream=True, meter=mine)
    assert completion.hedge is HedgeRole.PRIMARY
    assert [r.status for r in mine.records()] == [CallStatus.COMPLETED, CallStatus.FAILED]


async def test_when_every_request_fails_the_primary_error_is_raised_alone(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    server = Scripted([-1.0])
    client = client_over(server, http_for, hedge=Hedge(initial_delay=1.0, max_extra=1.0))
    with pytest.raises(ProviderHTTPError, match="no such model"):
        await client.complete("hi", model="gpt-4o", stream=True)
    # The primary failed before the hedge timer: no hedge was sent.
    assert len(server.arrivals) == 1


async def test_cancelling_a_hedged_call_raises_bare_cancelled_and_bills_both(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    server = Scripted([100.0])
    client = client_over(server, http_for, hedge=Hedge(initial_delay=1.0, max_extra=1.0))
    mine = UsageMeter()
    caught: list[BaseException] = []
    with trio.move_on_after(25.0):
        try:
            await client.complete("hi", model="gpt-4o", stream=True, meter=mine)
        except BaseException as exc:
            caught.append(exc)
            raise
    assert [type(e) for e in caught] == [trio.Cancelled]
    primary, backup = mine.records()
    assert (primary.status, backup.status) == (CallStatus.CANCELLED, CallStatus.CANCELLED)
    # 25 s of a 10-s-per-token stream, and 24 s of the hedge's.
    assert (primary.usage.output_tokens, backup.usage.output_tokens) == (2, 2)


async def test_a_winning_hedge_teaches_a_censored_latency(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    server = Scripted([*WARM, 100.0, 2.0])
    client = client_over(server, http_for, hedge=TEACH_P90)
    await warm_up(client)
    await client.complete("hi", model="gpt-4o", stream=True)
    window = client.hedge_state.latencies("openai", "gpt-4o")
    # The warm-up's ten, the backup's 2 s and the primary's lower bound, 11 s.
    assert len(window) == 12
    assert window.quantile(1.0) == pytest.approx(11.0)


async def test_answers_in_the_same_instant_count_once(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    # The primary and its hedge (sent at 5 s) both answer at 10 s, in the same batch:
    # neither passes another checkpoint once awake, so both return an answer.
    client = Instant(provider=Provider.openai(api_key=API_KEY, base_url="http://test/v1"))
    leg: Leg[str] = Leg(client=client, model="m")
    args = CallArgs(
        prompt=(), prompt_estimate=1, max_tokens=1, stream=True, temperature=None, meter=None
    )
    answers: list[str] = []

    async def call() -> None:
        answers.append(await run_call(leg, leg, Hedge(initial_delay=5.0, max_extra=1.0), args))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call)
        await trio.sleep(10.0)
        client.answered.set()
    [answer] = answers
    # Trio runs tasks woken together in either order: either may win, never both.
    statuses = {role: status for status, role in client.recorded}
    assert sorted(s.value for s in statuses.values()) == ["cancelled", "completed"]
    winner = 1 if statuses[HedgeRole.PRIMARY] is CallStatus.COMPLETED else 2
    assert answer == f"answer {winner}"


@attrs.define(eq=False)
class Instant:
    """A fake client whose requests all answer when `answered` is set."""

    provider: Provider
    hedge_state: HedgeState = attrs.Factory(HedgeState)
    sent: int = 0
    answered: trio.Event = attrs.Factory(trio.Event)
    recorded: list[tuple[CallStatus, HedgeRole | None]] = attrs.Factory(list)

    async def _complete(self, call: CallState, prompt: object, model: str, *rest: object) -> str:
        self.sent += 1
        number = self.sent
        call.open_attempt()
        # One event for both, so that they wake in the same batch, each with its answer (a
        # sleep's deadline would wake them by cancellation, which the winner's cancel beats).
        await self.answered.wait()
        call.close_attempt(error=None)
        return f"answer {number}"

    def _record(
        self, call: CallState, model: str, status: CallStatus, *rest: object, **marks: Any
    ) -> None:
        self.recorded.append((status, marks["hedge"]))

    def _mark(self, completion: str, **marks: object) -> str:
        return completion


async def test_a_hedge_sends_the_same_tools_and_output_schema(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    bodies: list[bytes] = []
    server = Scripted([100.0, 1.0])

    async def recording(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return await server(request)

    eager = Hedge(min_samples=5, initial_delay=3.0, max_extra=1.0)
    client = client_over(Scripted([0.0]), http_for, hedge=eager)
    client = attrs.evolve(client, http=httpx.AsyncClient(transport=httpx.MockTransport(recording)))
    http_for.append(client.http)

    @tool
    async def lookup(sku: str) -> str:
        """Find an article."""
        return sku

    completion = await client.complete("hi", model="gpt-4o", stream=True, tools=[lookup.spec])
    assert completion.hedge is HedgeRole.BACKUP
    assert len(bodies) == 2
    first, hedge = (json.loads(body)["tools"] for body in bodies)
    assert first == hedge
    assert first[0]["function"]["name"] == "lookup"
