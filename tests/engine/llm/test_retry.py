"""Retries, backoff and deadlines, in virtual time (`autojump_clock`), with exact timings."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import httpx
import pytest
import trio
from llm_mocks import MakeClient, openai_answer
from specroute.engine.llm import (
    CallStatus,
    ProviderHTTPError,
    ProviderResponseError,
    RetryBudgetExceededError,
    RetryPolicy,
    Usage,
)
from specroute.engine.llm._retry import parse_retry_after

if TYPE_CHECKING:
    from trio.testing import MockClock


class Recorder:
    """Answers from a script of responses and remembers when each request came."""

    def __init__(self, *script: httpx.Response | Exception) -> None:
        self.script = list(script)
        self.times: list[float] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.times.append(trio.current_time())
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step
        return step

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]


def ok() -> httpx.Response:
    return httpx.Response(200, json=openai_answer("fine"))


async def test_always_503_backs_off_with_full_jitter_then_gives_up(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    always_503 = Recorder(httpx.Response(503, json={"error": {"message": "busy"}}))
    policy = RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=3.0, deadline=None)
    client = make_client(always_503, retry=policy, seed=7)

    with pytest.raises(RetryBudgetExceededError, match="gave up after 4 attempt") as caught:
        await client.complete("hi", model="gpt-4o", max_tokens=5)

    rng = random.Random(7)
    expected = [rng.uniform(0, 1.0), rng.uniform(0, 2.0), rng.uniform(0, 3.0)]
    assert always_503.gaps() == pytest.approx(expected)
    assert [a.delay for a in caught.value.attempts] == pytest.approx([*expected, None])
    assert [a.status_code for a in caught.value.attempts] == [503] * 4
    assert isinstance(caught.value.__cause__, ProviderHTTPError)
    [record] = client.meter.records()
    assert record.status is CallStatus.FAILED
    assert record.usage == Usage(partial=True)  # refused requests are not billed


async def test_same_seed_same_waits(make_client: MakeClient, autojump_clock: MockClock) -> None:
    runs = []
    for _ in range(2):
        always_500 = Recorder(httpx.Response(500))
        client = make_client(always_500, retry=RetryPolicy(max_attempts=3, deadline=None), seed=3)
        with pytest.raises(RetryBudgetExceededError):
            await client.complete("hi", model="gpt-4o", max_tokens=5)
        runs.append(always_500.gaps())
    assert runs[0] == pytest.approx(runs[1])


async def test_retry_after_seconds_is_honoured(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    rate_limited_then_ok = Recorder(httpx.Response(429, headers={"retry-after": "2"}), ok())
    completion = await make_client(rate_limited_then_ok).complete(
        "hi", model="gpt-4o", max_tokens=5
    )

    assert rate_limited_then_ok.gaps() == pytest.approx([2.0])
    assert completion.text == "fine"
    assert [(a.status_code, a.retry_after, a.delay) for a in completion.attempts] == [
        (429, 2.0, 2.0),
        (200, None, None),
    ]


async def test_retry_after_http_date_counts_from_the_date_header(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    headers = {
        "date": "Wed, 21 Oct 2015 07:28:00 GMT",
        "retry-after": "Wed, 21 Oct 2015 07:28:03 GMT",
    }
    busy_until_a_date_then_ok = Recorder(httpx.Response(503, headers=headers), ok())
    await make_client(busy_until_a_date_then_ok).complete("hi", model="gpt-4o", max_tokens=5)
    assert busy_until_a_date_then_ok.gaps() == pytest.approx([3.0])


async def test_retry_after_ms_is_honoured(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    rate_limited_in_ms_then_ok = Recorder(
        httpx.Response(429, headers={"retry-after-ms": "250"}), ok()
    )
    await make_client(rate_limited_in_ms_then_ok).complete("hi", model="gpt-4o", max_tokens=5)
    assert rate_limited_in_ms_then_ok.gaps() == pytest.approx([0.25])


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
async def test_retryable_statuses(
    make_client: MakeClient, autojump_clock: MockClock, status: int
) -> None:
    fails_once_then_ok = Recorder(httpx.Response(status), ok())
    completion = await make_client(fails_once_then_ok).complete("hi", model="gpt-4o", max_tokens=5)
    assert [a.status_code for a in completion.attempts] == [status, 200]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
async def test_other_4xx_fail_at_once(
    make_client: MakeClient, autojump_clock: MockClock, status: int
) -> None:
    always_4xx = Recorder(httpx.Response(status, json={"error": {"message": "no"}}))
    with pytest.raises(ProviderHTTPError) as caught:
        await make_client(always_4xx).complete("hi", model="gpt-4o", max_tokens=5)
    assert caught.value.status == status
    assert len(always_4xx.times) == 1


async def test_connection_errors_and_timeouts_are_retried(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    request = httpx.Request("POST", "http://test")
    flaky = Recorder(
        httpx.ConnectError("refused", request=request),
        httpx.ReadTimeout("slow", request=request),
        httpx.RemoteProtocolError("peer closed", request=request),
        ok(),
    )
    completion = await make_client(flaky, seed=1).complete("hi", model="gpt-4o", max_tokens=5)

    errors = [a.error for a in completion.attempts]
    assert errors[0] is not None
    assert errors[0].startswith("ProviderConnectionError: openai: ConnectError (refused)")
    assert errors[1] is not None
    assert errors[1].startswith("ProviderTimeoutError")
    assert errors[2] is not None
    assert errors[2].startswith("ProviderConnectionError")
    assert errors[3] is None
    # Nothing was sent before the refused connection; later attempts may have been read.
    assert completion.attempts[0].usage == Usage()
    assert completion.attempts[1].usage.partial


async def test_response_errors_are_not_retried(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    garbled = Recorder(httpx.Response(200, text="not json"))
    with pytest.raises(ProviderResponseError):
        await make_client(garbled).complete("hi", model="gpt-4o", max_tokens=5)
    assert len(garbled.times) == 1


async def test_retry_after_beyond_the_deadline_fails_without_waiting(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    rate_limited_for_a_minute = Recorder(httpx.Response(429, headers={"retry-after": "60"}))
    client = make_client(rate_limited_for_a_minute, retry=RetryPolicy(deadline=10.0))
    start = trio.current_time()

    with pytest.raises(RetryBudgetExceededError, match="past the call's deadline"):
        await client.complete("hi", model="gpt-4o", max_tokens=5)
    assert trio.current_time() == start


async def test_deadline_cuts_a_slow_attempt(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    async def slow_then_ok(request: httpx.Request) -> httpx.Response:
        await trio.sleep(100)
        return ok()

    client = make_client(slow_then_ok, retry=RetryPolicy(deadline=5.0))
    start = trio.current_time()
    with pytest.raises(RetryBudgetExceededError, match=r"deadline \(5.0 s\) passed") as caught:
        await client.complete("hi", model="gpt-4o", max_tokens=5)

    assert trio.current_time() - start == pytest.approx(5.0)
    [attempt] = caught.value.attempts
    assert attempt.error is not None
    assert attempt.error.startswith("Deadline")
    assert attempt.usage.partial  # the prompt was sent: billed, estimated


def test_parse_retry_after() -> None:
    assert parse_retry_after(None, date=None, now=0.0) is None
    assert parse_retry_after(" 1.5 ", date=None, now=0.0) == 1.5
    assert parse_retry_after("-3", date=None, now=0.0) == 0.0
    assert parse_retry_after("soon", date=None, now=0.0) is None
    # An HTTP date without a Date header counts from `now`.
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", date=None, now=4.0) == 6.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", date="garbage", now=4.0) == 6.0


def test_policy_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="`max_attempts` must be an int >= 1, got 0"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="`max_delay` must be >= `base_delay`"):
        RetryPolicy(base_delay=2.0, max_delay=1.0)


async def test_a_linear_schedule_waits_base_delay_times_the_retry(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    always_503 = Recorder(httpx.Response(503, json={"error": {"message": "busy"}}))
    policy = RetryPolicy(
        max_attempts=4, base_delay=1.0, max_delay=2.5, deadline=None, schedule="linear"
    )
    client = make_client(always_503, retry=policy)
    with pytest.raises(RetryBudgetExceededError):
        await client.complete("hi", model="gpt-4o", max_tokens=5)
    assert always_503.gaps() == pytest.approx([1.0, 2.0, 2.5])  # 1 s x attempt, capped


async def test_only_the_statuses_named_are_retried(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=0.1, statuses={502, 503})
    busy = Recorder(httpx.Response(503, json={"error": {"message": "busy"}}), ok())
    assert (await make_client(busy, retry=policy).complete("hi", model="gpt-4o", max_tokens=5)).text
    assert len(busy.times) == 2
    broken = Recorder(httpx.Response(500, json={"error": {"message": "boom"}}), ok())
    with pytest.raises(ProviderHTTPError):
        await make_client(broken, retry=policy).complete("hi", model="gpt-4o", max_tokens=5)
    assert len(broken.times) == 1  # a 500 is not among them: never retried


def test_a_schedule_must_be_one_of_the_two() -> None:
    with pytest.raises(ValueError, match="'schedule' must be in"):
        RetryPolicy(schedule="exponential")  # type: ignore[arg-type]
