"""The usage ledger: every call recorded, cancelled ones billed for what arrived."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest
import trio
from llm_mocks import MakeClient, openai_answer, paced, sse
from specroute.engine.llm import (
    CallRecord,
    CallStatus,
    ProviderHTTPError,
    Usage,
    UsageMeter,
    UsageStatistics,
    record_usage,
)

if TYPE_CHECKING:
    from trio.testing import MockClock


async def streams_a_token_every_second(request: httpx.Request) -> httpx.Response:
    chunk = sse({"choices": [{"index": 0, "delta": {"content": "abcd"}}]})
    return httpx.Response(200, content=paced([chunk] * 100, every=1.0))


async def answers_ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=openai_answer("ok", prompt_tokens=10, completion_tokens=2))


async def test_cancelled_stream_is_billed_for_what_arrived(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    client = make_client(streams_a_token_every_second)
    mine = UsageMeter()
    with trio.move_on_after(10.5):
        await client.complete("abcdefgh", model="gpt-4o", max_tokens=500, meter=mine)

    [record] = mine.records()
    assert record.status is CallStatus.CANCELLED
    # 10 chunks of 4 characters arrived; the prompt: 2 tokens of text + 4 of framing.
    assert record.usage == Usage(input_tokens=6, output_tokens=10, partial=True, estimated=True)
    assert record.cost == pytest.approx((6 * 2.50 + 10 * 10.00) / 1e6)
    [attempt] = record.attempts
    assert attempt.error is not None
    assert attempt.error.startswith("Cancelled")
    assert client.meter.records() == (record,)


async def test_record_usage_covers_tasks_started_inside(make_client: MakeClient) -> None:
    client = make_client(answers_ok)
    branch = UsageMeter()
    with record_usage(branch):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: client.complete("a", model="gpt-4o", max_tokens=5))
            nursery.start_soon(lambda: client.complete("b", model="gpt-4o", max_tokens=5))
    await client.complete("outside", model="gpt-4o", max_tokens=5)

    assert branch.statistics().calls == 2
    assert client.meter.statistics().calls == 3


async def test_a_meter_both_passed_and_active_records_once(make_client: MakeClient) -> None:
    client = make_client(answers_ok)
    meter = UsageMeter()
    with record_usage(meter), record_usage(meter):
        await client.complete("a", model="gpt-4o", max_tokens=5, meter=meter)
    assert meter.statistics().calls == 1


async def test_failed_call_is_recorded_with_its_error(make_client: MakeClient) -> None:
    async def forbids(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"error": {"message": "no access"}})

    client = make_client(forbids)
    with pytest.raises(ProviderHTTPError):
        await client.complete("a", model="gpt-4o", max_tokens=5)
    [record] = client.meter.records()
    assert record.status is CallStatus.FAILED
    assert record.error is not None
    assert record.error.startswith("ProviderHTTPError: openai answered 403 Forbidden: no access")


def record(status: CallStatus, cost: float | None, tokens: int = 1) -> CallRecord:
    usage = Usage(input_tokens=tokens, output_tokens=tokens)
    return CallRecord(
        provider="p",
        model="m",
        status=status,
        usage=usage,
        cost=cost,
        attempts=(),
        started=0.0,
        finished=1.0,
    )


def test_statistics_totals_and_wasted_dollars() -> None:
    meter = UsageMeter(max_records=2)
    meter.record(record(CallStatus.COMPLETED, 1.0))
    meter.record(record(CallStatus.CANCELLED, 0.25))
    meter.record(record(CallStatus.FAILED, None))
    assert meter.statistics() == UsageStatistics(
        calls=3,
        completed=1,
        failed=1,
        cancelled=1,
        input_tokens=3,
        output_tokens=3,
        cost=1.25,
        cancelled_cost=0.25,
        unpriced_calls=1,
    )
    assert [r.status for r in meter.records()] == [CallStatus.CANCELLED, CallStatus.FAILED]


def test_meter_validation() -> None:
    with pytest.raises(ValueError, match="`max_records` must be an int >= 1, got 0"):
        UsageMeter(max_records=0)
