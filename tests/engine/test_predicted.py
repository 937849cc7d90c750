"""Predicted values: a semantic near match on a step is a guess, never the answer.

Every test stores one request's value, then asks a near match of it ("Refund policy?" is
embedded as "refund policy" by `Same`, so the two match at similarity 1.0 without being
the same key). The step still computes; the steps downstream of it may start on the guess.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import trio
from rich.console import Console
from specroute.cache import CacheOptions, open_cache
from specroute.engine import (
    Always,
    Flow,
    LearnedState,
    Mode,
    Never,
    PredictivePolicy,
    StepFailedError,
    StepStatus,
    step,
)
from specroute.engine.report import (
    RunLog,
    speculated,
    summarize,
    summary_tables,
    value_predictions,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from numpy.typing import NDArray
    from specroute.routes import ValueView
    from trio.testing import MockClock

STORED, ASKED = "Refund policy?", "refund policy"


class Same:
    """An embedder that sees only letters: case and punctuation make no difference."""

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        rows = []
        for text in texts:
            letters = "".join(c for c in text.lower() if c.isalpha())
            row = np.zeros(26, dtype=np.float32)
            for c in letters:
                row[ord(c) - 97] += 1
            rows.append(row)
        return np.array(rows, dtype=np.float32)


def make_flow(
    answers: dict[str, str],
    log: list[str],
    agree: Any = None,
    trust: bool = False,
    effect_log: list[str] | None = None,
) -> Flow:
    options = CacheOptions(
        semantic="query", agree=agree, on_semantic_hit="trust" if trust else None
    )

    @step(cache=options, estimated_seconds=2.0)
    async def retrieve(query: str) -> str:
        await trio.sleep(2)
        log.append(f"retrieve {query}")
        return answers[query]

    @step(estimated_seconds=1.0, estimated_dollars=0.001)
    async def summarize(retrieve: str) -> str:
        await trio.sleep(1)
        log.append(f"summarize {retrieve}")
        return f"summary of {retrieve}"

    @step
    async def cite(summarize: str, query: str) -> str:
        return f"{summarize} for {query}"

    nodes: list[Any] = [retrieve, summarize, cite]
    if effect_log is not None:

        @step(effect=True)
        async def send(cite: str) -> str:
            effect_log.append(cite)
            return "sent"

        nodes.append(send)
    return Flow(nodes, name="qa")


async def run_twice(flow: Flow, **options: Any) -> Any:
    async with open_cache(embedder=Same()) as cache:
        await flow.run(query=STORED, cache=cache, **options)
        return await flow.run(query=ASKED, cache=cache, **options)


async def test_a_confirmed_prediction_starts_the_steps_downstream_early(
    autojump_clock: MockClock,
) -> None:
    log: list[str] = []
    flow = make_flow({STORED: "doc A", ASKED: "doc A"}, log)
    learned = LearnedState()
    result = await run_twice(flow, learned=learned)
    assert result.outputs == {"cite": "summary of doc A for refund policy"}
    # summarize ran on the guess beside retrieve: 2 s, not 3.
    assert result.wall_time == pytest.approx(2.0)
    (guess,) = result.predicted_values
    assert (guess.step, guess.speculated, guess.confirmed) == ("retrieve", True, True)
    assert guess.similarity == pytest.approx(1.0)
    entries = {(entry.step, entry.branch): entry for entry in result.trace}
    assert entries["retrieve", ""].status is StepStatus.OK  # computed, not served
    kept = entries["summarize", "retrieve:predicted"]
    assert kept.speculative
    assert not kept.wasted
    assert result.wasted_time == 0
    assert learned.step("retrieve").confirmed == 1
    assert log.count("summarize doc A") == 2  # once per run, never twice in one
    # The report counts the overlay as speculation that was right, with its head start.
    (judged,) = speculated(result)
    assert (judged.branch, judged.right, judged.wasted_ms) == ("retrieve:predicted", True, 0)
    assert judged.head_start_ms == pytest.approx(1000)  # summarize's 1 s, before 2 s


async def test_a_refuted_prediction_is_dropped_and_the_real_value_decides(
    autojump_clock: MockClock,
) -> None:
    log: list[str] = []
    # The asked document differs from the stored one (a new price): the near match's
    # value is another document's.
    flow = make_flow({STORED: "doc A ($10)", ASKED: "doc A ($12)"}, log)
    learned = LearnedState()
    result = await run_twice(flow, learned=learned)
    assert result.values["retrieve"] == "doc A ($12)"
    assert result.outputs == {"cite": "summary of doc A ($12) for refund policy"}
    (guess,) = result.predicted_values
    assert (guess.speculated, guess.confirmed) == (True, False)
    wasted = [e for e in result.trace if e.wasted]
    assert [(e.step, e.branch) for e in wasted] == [
        ("summarize", "retrieve:predicted"),
        ("cite", "retrieve:predicted"),
    ]
    assert result.wall_time == pytest.approx(3.0)  # as if there had been no guess
    assert learned.step("retrieve").refuted == 1
    (judged,) = speculated(result)
    assert (judged.branch, judged.right) == ("retrieve:predicted", False)
    assert judged.wasted_ms == pytest.approx(1000)  # summarize's 1 s on the wrong value


async def test_a_users_agree_keeps_work_done_on_an_accepted_guess(
    autojump_clock: MockClock,
) -> None:
    log: list[str] = []

    def same_words(guess: str, real: str) -> bool:
        return guess.lower() == real.lower()

    flow = make_flow({STORED: "doc A", ASKED: "DOC A"}, log, agree=same_words)
    result = await run_twice(flow)
    # The step's own value is always the real one; what was computed downstream of the
    # accepted guess was computed from the guess (the weaker promise of a custom agree).
    assert result.values["retrieve"] == "DOC A"
    assert result.outputs == {"cite": "summary of doc A for refund policy"}
    assert result.wall_time == pytest.approx(2.0)


async def test_trust_serves_the_near_match_without_computing(autojump_clock: MockClock) -> None:
    log: list[str] = []
    flow = make_flow({STORED: "doc A", ASKED: "doc B"}, log, trust=True)
    result = await run_twice(flow)
    assert result.values["retrieve"] == "doc A"  # the opt-in: a near match is the answer
    assert result.predicted_values == ()
    assert log.count(f"retrieve {ASKED}") == 0


@pytest.mark.parametrize("mode", [Mode.PARALLEL, Mode.SEQUENTIAL])
async def test_without_speculation_a_guess_only_learns(
    autojump_clock: MockClock, mode: Mode
) -> None:
    log: list[str] = []
    flow = make_flow({STORED: "doc A", ASKED: "doc A"}, log)
    learned = LearnedState()
    options: dict[str, Any] = {"mode": mode, "learned": learned}
    if mode is Mode.PARALLEL:
        options["speculate"] = Never()
    result = await run_twice(flow, **options)
    assert result.wall_time == pytest.approx(3.0)
    assert [(g.speculated, g.confirmed) for g in result.predicted_values] == [(False, True)]
    assert learned.step("retrieve").confirmed == 1


async def test_the_predictive_policy_stops_speculating_where_guesses_are_refuted(
    autojump_clock: MockClock,
) -> None:
    log: list[str] = []
    answers = {STORED: "doc A", ASKED: "doc A"}
    flow = make_flow(answers, log)
    learned = LearnedState()
    # Worth it while 1 s at $0.003 a second beats $0.001 wasted: a confirm rate above 1/4.
    policy = PredictivePolicy(value_of_time=0.003)
    speculated = []
    for attempt in range(6):
        answers[ASKED] = f"doc A v{attempt}"  # free text: equality never confirms
        async with open_cache(embedder=Same()) as cache:
            await flow.run(query=STORED, cache=cache, speculate=policy, learned=learned)
            result = await flow.run(query=ASKED, cache=cache, speculate=policy, learned=learned)
        (guess,) = result.predicted_values
        assert guess.confirmed is False
        speculated.append(guess.speculated)
    # 0.5 with no history, 1/3 after one refutation, then 1/4: no longer worth it.
    assert speculated == [True, True, False, False, False, False]
    assert "declined" in result.predicted_values[0].note
    assert learned.step("retrieve").refuted == 6  # still learning while it declines


async def test_a_policy_asked_about_a_value_sees_the_learned_rate(
    autojump_clock: MockClock,
) -> None:
    seen: list[ValueView] = []

    class Watching(Always):
        def speculate_value(self, value: ValueView) -> bool:
            seen.append(value)
            return False

    flow = make_flow({STORED: "doc A", ASKED: "doc A"}, [])
    await run_twice(flow, speculate=Watching(), learned=LearnedState())
    (view,) = seen
    assert (view.step, view.confirm_rate, view.settled) == ("retrieve", 0.5, 0)
    assert view.downstream_steps == ("summarize", "cite")
    assert view.downstream_estimates[0] == (1.0, 0.001)
    assert view.step_seconds == 2.0


async def test_a_failing_step_drops_its_guess_and_fails_once(autojump_clock: MockClock) -> None:
    calls = 0

    @step(cache=CacheOptions(semantic="query"))
    async def retrieve(query: str) -> str:
        nonlocal calls
        calls += 1
        await trio.sleep(1)
        if calls > 1:
            raise RuntimeError("index down")
        return "doc"

    @step
    async def summarize(retrieve: str) -> str:
        await trio.sleep(0.5)
        return retrieve

    flow = Flow([retrieve, summarize])
    async with open_cache(embedder=Same()) as cache:
        await flow.run(query=STORED, cache=cache)
        with pytest.raises(StepFailedError, match="index down") as raised:
            await flow.run(query=ASKED, cache=cache)
    assert raised.value.step == "retrieve"


async def test_an_effect_downstream_waits_for_the_real_value(autojump_clock: MockClock) -> None:
    sent: list[str] = []
    flow = make_flow({STORED: "doc A ($10)", ASKED: "doc A ($12)"}, [], effect_log=sent)
    result = await run_twice(flow)
    # The effect never ran on the refuted guess: once per run, on the real value.
    assert sent == [
        "summary of doc A ($10) for Refund policy?",
        "summary of doc A ($12) for refund policy",
    ]
    assert result.outputs["send"] == "sent"


async def test_a_confirmed_effect_runs_once_after_the_guess_is_confirmed(
    autojump_clock: MockClock,
) -> None:
    sent: list[str] = []
    flow = make_flow({STORED: "doc A", ASKED: "doc A"}, [], effect_log=sent)
    result = await run_twice(flow)
    assert sent == ["summary of doc A for Refund policy?", "summary of doc A for refund policy"]
    (entry,) = [e for e in result.trace if e.step == "send"]
    # Held until retrieve's real value confirmed the guess.
    assert entry.start - result.started == pytest.approx(2.0)
    assert not entry.wasted


async def test_a_broken_agree_only_costs_the_speculation(autojump_clock: MockClock) -> None:
    def agree(guess: str, real: str) -> bool:
        raise ValueError("cannot compare")

    flow = make_flow({STORED: "doc A", ASKED: "doc A"}, [], agree=agree)
    result = await run_twice(flow)
    assert result.outputs == {"cite": "summary of doc A for refund policy"}
    (guess,) = result.predicted_values
    assert guess.confirmed is False
    assert "agree failed: ValueError: cannot compare" in guess.note


async def test_the_corrected_value_is_stored_under_the_asked_request(
    autojump_clock: MockClock,
) -> None:
    log: list[str] = []
    flow = make_flow({STORED: "doc A", ASKED: "doc B"}, log)
    async with open_cache(embedder=Same()) as cache:
        await flow.run(query=STORED, cache=cache)
        await flow.run(query=ASKED, cache=cache)
        again = await flow.run(query=ASKED, cache=cache)
    assert again.values["retrieve"] == "doc B"
    assert again.predicted_values == ()  # an exact hit now, no guess
    assert log.count(f"retrieve {ASKED}") == 1


async def test_the_report_shows_each_steps_confirm_rate(
    autojump_clock: MockClock, tmp_path: Path
) -> None:
    answers = {STORED: "doc A", ASKED: "doc A"}
    flow = make_flow(answers, [])
    log = RunLog(tmp_path / "runs.jsonl")
    for asked in ("doc A", "doc B", "doc A"):  # confirmed, refuted, confirmed
        answers[ASKED] = asked
        async with open_cache(embedder=Same()) as cache:
            await flow.run(query=STORED, cache=cache, learned=LearnedState())
            log.append(await flow.run(query=ASKED, cache=cache, learned=LearnedState()))
    reading = log.read()  # flushes the queued lines first
    assert reading.problems == ()
    (summary,) = value_predictions(reading.records)
    assert (summary.step, summary.near_matches, summary.speculated) == ("retrieve", 3, 3)
    assert (summary.confirmed, summary.refuted) == (2, 1)
    assert summary.confirm_rate == pytest.approx(2 / 3)
    assert summary.wasted_ms == pytest.approx(1000.0)  # summarize's 1 s on "doc A"
    console = Console(width=200, record=True)
    console.print(summary_tables(summarize(reading.records)))
    text = console.export_text()
    assert "Predicted values" in text
    assert "67%" in text
