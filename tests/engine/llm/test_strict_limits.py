"""`ProviderLimits(strict=True)`: never more than the limit in any sliding minute (issue 13),
against the token bucket's 2N. The sliding-window log it rests on is tested in
`test_sliding.py`."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import httpx
import pytest
import trio
from llm_mocks import MakeClient, openai_answer
from specroute.engine.llm import LLMConfigError, Provider, ProviderLimits

if TYPE_CHECKING:
    from trio.testing import MockClock


class Recorder:
    """Answers at once and records when each request came."""

    def __init__(self) -> None:
        self.times: list[float] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.times.append(trio.current_time())
        return httpx.Response(200, json=openai_answer("ok", prompt_tokens=5, completion_tokens=1))


def most_in_any_window(times: list[float], window: float) -> int:
    """The most requests seen in any half-open interval [t, t + window)."""
    ordered = sorted(times)
    return max(
        sum(1 for u in ordered if t <= u < t + window - 1e-9) for t in ordered
    )  # a window starting at a request holds the most


async def _burst(make_client: MakeClient, limits: ProviderLimits, calls: int) -> list[float]:
    recorder = Recorder()
    client = make_client(recorder, limits=limits)
    start = trio.current_time()
    # A quiet minute first: the bucket is full again, the log empty.
    await client.complete("hi", model="gpt-4o", max_tokens=5)
    await trio.sleep(60)
    # Calls that wait minutes for the budget: `max_tokens` sets a deadline long enough
    # (`AnswerBounds`: 60 s + 0.2 s a token).
    async with trio.open_nursery() as nursery:
        for _ in range(calls):
            nursery.start_soon(
                partial(client.complete, "hi", model="gpt-4o", max_tokens=500, stream=False)
            )
    return [t - start for t in recorder.times]


async def test_the_bucket_admits_up_to_twice_the_limit_in_a_minute(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    """Why strict mode exists: a full bucket, then its refill, within one minute."""
    times = await _burst(make_client, ProviderLimits(requests_per_minute=4), 12)
    assert most_in_any_window(times, 60.0) > 4


async def test_strict_mode_never_exceeds_the_limit_in_any_minute(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    times = await _burst(make_client, ProviderLimits(requests_per_minute=4, strict=True), 12)
    assert most_in_any_window(times, 60.0) == 4
    # The first request left the log at 60 s, so the burst starts with 4 at once.
    assert times[1:5] == pytest.approx([60.0] * 4)
    assert times[-1] == pytest.approx(180.0)


async def test_strict_tokens_count_what_was_used(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    recorder = Recorder()
    provider = Provider.openai(
        api_key="k",
        base_url="http://test/v1",
        limits=ProviderLimits(tokens_per_minute=600, strict=True),
    )
    client = make_client(recorder, provider=provider)
    # Each call reserves 5 + 295 = 300 tokens and uses 6: the rest comes back at once.
    for _ in range(3):
        await client.complete("hi", model="gpt-4o", max_tokens=295, stream=False)
    assert recorder.times == pytest.approx([recorder.times[0]] * 3)
    assert provider.statistics().tokens_available == 600 - 3 * 6
    with pytest.raises(LLMConfigError, match="can never fit"):
        await client.complete("hi", model="gpt-4o", max_tokens=700)


def test_strict_limits_validate_their_flag() -> None:
    with pytest.raises(TypeError):
        ProviderLimits(strict="yes")  # type: ignore[arg-type]
