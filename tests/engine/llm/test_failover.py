"""Failover in virtual time: the next target on failure, circuits, hedges to the next target."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio
from hedge_mocks import Scripted, client_over
from specroute.cache import StepIdentity, make_key
from specroute.engine.llm import (
    Breaker,
    CallStatus,
    Failover,
    FailoverExhaustedError,
    Hedge,
    HedgeRole,
    HedgeState,
    ProviderHTTPError,
    Target,
    UsageMeter,
    call_dependencies,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import httpx
    from trio.testing import MockClock


@pytest.fixture
async def http_for() -> AsyncIterator[list[httpx.AsyncClient]]:
    opened: list[httpx.AsyncClient] = []
    yield opened
    for http in opened:
        await http.aclose()


def pair(
    first: Scripted,
    second: Scripted,
    opened: list[httpx.AsyncClient],
    *,
    breaker: Breaker | None = None,
    hedge: Hedge | None = None,
) -> Failover:
    state = HedgeState()
    return Failover(
        targets=[
            Target(client=client_over(first, opened, hedge=None, state=state), model="gpt-4o"),
            Target(
                client=client_over(second, opened, hedge=None, state=state, name="backup"),
                model="gpt-4o-mini",
            ),
        ],
        breaker=breaker or Breaker(),
        hedge=hedge,
    )


async def test_a_failed_target_fails_over_to_the_next_and_the_answer_says_which(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    first, second = Scripted([-1.0]), Scripted([1.0])
    chat = pair(first, second, http_for)
    mine = UsageMeter()

    completion = await chat.complete("hi", stream=True, meter=mine)

    assert (completion.provider, completion.model, completion.failover) == (
        "backup",
        "gpt-4o-mini",
        1,
    )
    failed, answered = mine.records()
    assert (failed.status, failed.failover, failed.provider) == (CallStatus.FAILED, 0, "openai")
    assert (answered.status, answered.failover) == (CallStatus.COMPLETED, 1)


async def test_first_target_answers_when_it_works(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    first, second = Scripted([1.0]), Scripted([1.0])
    completion = await pair(first, second, http_for).complete("hi", stream=True)
    assert (completion.provider, completion.failover) == ("openai", 0)
    assert second.arrivals == []


async def test_every_target_failing_raises_one_error_naming_each(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    chat = pair(Scripted([-1.0]), Scripted([-1.0]), http_for)
    with pytest.raises(FailoverExhaustedError, match=r"openai/gpt-4o: ProviderHTTPError") as caught:
        await chat.complete("hi", stream=True)
    assert len(caught.value.failures) == 2
    assert "backup/gpt-4o-mini" in caught.value.failures[1]
    assert isinstance(caught.value.__cause__, ProviderHTTPError)


async def test_a_tripped_circuit_skips_its_target_until_the_cooldown_ends(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    first, second = Scripted([-1.0, -1.0, 1.0]), Scripted([1.0])
    breaker = Breaker(failure_rate=1.0, window=2, min_calls=2, cooldown=60.0)
    chat = pair(first, second, http_for, breaker=breaker)
    for _ in range(2):
        await chat.complete("hi", stream=True)
    assert [t.circuit for t in chat.statistics().targets] == ["open", "closed"]

    completion = await chat.complete("hi", stream=True)
    assert completion.failover == 1
    assert len(first.arrivals) == 2  # skipped while open

    await trio.sleep(60.0)
    assert chat.statistics().targets[0].circuit == "half-open"
    completion = await chat.complete("hi", stream=True)  # the probe succeeds
    assert completion.failover == 0
    first_stats = chat.statistics().targets[0]
    assert (first_stats.circuit, first_stats.answered, first_stats.failed) == ("closed", 1, 2)


async def test_a_failed_probe_opens_the_circuit_again(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    breaker = Breaker(failure_rate=1.0, window=2, min_calls=2, cooldown=60.0)
    chat = pair(Scripted([-1.0]), Scripted([1.0]), http_for, breaker=breaker)
    for _ in range(2):
        await chat.complete("hi", stream=True)
    await trio.sleep(60.0)
    await chat.complete("hi", stream=True)
    assert chat.statistics().targets[0].circuit == "open"


async def test_every_circuit_open_raises_without_sending(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    first, second = Scripted([-1.0]), Scripted([-1.0])
    breaker = Breaker(failure_rate=1.0, window=1, min_calls=1)
    chat = pair(first, second, http_for, breaker=breaker)
    with pytest.raises(FailoverExhaustedError):
        await chat.complete("hi", stream=True)
    with pytest.raises(FailoverExhaustedError, match="circuit is open") as caught:
        await chat.complete("hi", stream=True)
    assert caught.value.__cause__ is None
    assert (len(first.arrivals), len(second.arrivals)) == (1, 1)


async def test_a_hedge_can_go_to_the_next_target(
    http_for: list[httpx.AsyncClient], autojump_clock: MockClock
) -> None:
    first, second = Scripted([100.0]), Scripted([2.0])
    hedge = Hedge(initial_delay=5.0, max_extra=1.0, to_next=True)
    chat = pair(first, second, http_for, hedge=hedge)
    mine = UsageMeter()
    start = trio.current_time()

    completion = await chat.complete("hi", stream=True, meter=mine)

    assert second.arrivals == [pytest.approx(start + 5.0, abs=1e-9)]
    assert (completion.provider, completion.failover, completion.hedge) == (
        "backup",
        1,
        HedgeRole.BACKUP,
    )
    primary, backup = mine.records()
    assert (primary.status, primary.failover) == (CallStatus.CANCELLED, 0)
    assert (backup.status, backup.failover) == (CallStatus.COMPLETED, 1)
    # The winner's circuit counts the answer; the cancelled primary counts for nothing.
    answered = [t.answered for t in chat.statistics().targets]
    failed = [t.failed for t in chat.statistics().targets]
    assert (answered, failed) == ([0, 1], [0, 0])


def test_failover_needs_targets() -> None:
    with pytest.raises(ValueError, match="`targets` must name at least one Target"):
        Failover(targets=[])
    with pytest.raises(TypeError, match="must hold `Target"):
        Failover(targets=["gpt-4o"])  # type: ignore[list-item]


async def test_target_needs_a_model(http_for: list[httpx.AsyncClient]) -> None:
    client = client_over(Scripted([1.0]), http_for, hedge=None)
    with pytest.raises(ValueError, match="`model` must be a non-empty model name, got ''"):
        Target(client=client, model="")


def test_breaker_checks_its_fields() -> None:
    with pytest.raises(ValueError, match=r"`failure_rate` must be a rate in \(0, 1\], got 0"):
        Breaker(failure_rate=0)
    with pytest.raises(ValueError, match=r"`min_calls` must be <= `window` \(3\), got 4"):
        Breaker(window=3, min_calls=4)


STEP = StepIdentity(name="answer", function="tests.answer")


async def test_a_failovers_models_key_a_cached_step_in_their_order(
    http_for: list[httpx.AsyncClient],
) -> None:
    chat = pair(Scripted([1.0]), Scripted([1.0]), http_for)
    assert chat.models == ("openai/gpt-4o", "backup/gpt-4o-mini")
    key = call_dependencies(model=chat.models)
    assert key == {"model": ["openai/gpt-4o", "backup/gpt-4o-mini"]}
    reordered = call_dependencies(model=tuple(reversed(chat.models)))
    assert make_key(STEP, "1", "t", {}, depends_on=key) != make_key(
        STEP, "1", "t", {}, depends_on=reordered
    )
