"""One call's bookkeeping (`engine/llm/_call.py`): attempts, and what a cut-short one bills."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
from specroute.engine.llm import Usage
from specroute.engine.llm._call import CallState

if TYPE_CHECKING:
    from trio.testing import MockClock


async def test_a_completed_attempt_bills_what_the_provider_reported(
    autojump_clock: MockClock,
) -> None:
    call = CallState(prompt_estimate=50, started=trio.current_time())
    progress = call.open_attempt()
    progress.add_text("hello")
    progress.report_usage(input_tokens=12, output_tokens=2)
    progress.done = True
    await trio.sleep(1.5)
    attempt = call.close_attempt(error=None)
    assert attempt.number == 1
    assert attempt.finished - attempt.started == 1.5
    assert attempt.usage == Usage(input_tokens=12, output_tokens=2)
    assert call.progress is None
    assert call.last_progress is progress


async def test_a_cut_short_attempt_bills_the_prompt_and_the_text_received(
    autojump_clock: MockClock,
) -> None:
    call = CallState(prompt_estimate=50, started=0.0)
    call.open_attempt().add_text("x" * 10)  # 3 tokens' worth, nothing reported
    attempt = call.close_attempt(error="Cancelled")
    assert attempt.error == "Cancelled"
    assert attempt.usage == Usage(input_tokens=50, output_tokens=3, partial=True, estimated=True)


async def test_a_refused_request_and_an_unsent_one_bill_nothing(autojump_clock: MockClock) -> None:
    call = CallState(prompt_estimate=50, started=0.0)
    call.open_attempt().add_text("error body")
    call.status_code = 429
    refused = call.close_attempt(error="ProviderHTTPError: 429")
    assert refused.usage == Usage()
    assert refused.status_code == 429
    call.open_attempt()
    unsent = call.close_attempt(error="limits", billed=False)
    assert unsent.usage == Usage()
    assert [a.number for a in call.attempts] == [1, 2]


async def test_opening_an_attempt_forgets_the_last_ones_status(autojump_clock: MockClock) -> None:
    call = CallState(prompt_estimate=1, started=0.0)
    call.open_attempt()
    call.status_code, call.retry_after = 503, 2.0
    call.close_attempt(error="503")
    call.open_attempt()
    assert call.status_code is None
    assert call.retry_after is None


async def test_usage_sums_every_attempt_and_says_whether_partial(
    autojump_clock: MockClock,
) -> None:
    call = CallState(prompt_estimate=20, started=0.0)
    call.open_attempt().add_text("abcd")
    call.close_attempt(error="dropped")
    second = call.open_attempt()
    second.report_usage(input_tokens=20, output_tokens=5)
    call.close_attempt(error=None)
    total = call.usage(partial=False)
    assert (total.input_tokens, total.output_tokens) == (40, 6)
    assert not total.partial
    assert call.usage(partial=True).partial


async def test_set_delay_marks_the_last_attempt(autojump_clock: MockClock) -> None:
    call = CallState(prompt_estimate=1, started=0.0)
    call.open_attempt()
    call.close_attempt(error="503")
    call.set_delay(0.75)
    assert call.attempts[-1].delay == 0.75
