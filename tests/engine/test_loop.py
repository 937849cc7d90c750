"""Bounded loops: iterations in scopes of their own, carried values, the last iteration's
outputs, the bound's outcome chosen by the user, and effects per iteration."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio
from specroute.engine import (
    Always,
    Branches,
    ConfigurationError,
    ConfigurationTypeError,
    Flow,
    LearnedState,
    Loop,
    LoopLimitError,
    LoopResult,
    Never,
    PredictivePolicy,
    Route,
    StepDefinitionError,
    StepFailedError,
    StepStatus,
    loop,
    map_,
    router,
    step,
)

if TYPE_CHECKING:
    from specroute.routes import ValueView
    from trio.testing import MockClock


def repair_flow(
    needed: int,
    *,
    bound: int = 4,
    on_limit: str = "raise",
    fail_at: int = 0,
    speculate: bool = False,
) -> Flow:
    """`generate` (1 s) writes a draft, or repairs the last one; `check` (0.5 s) accepts a
    draft that has been repaired `needed` times; `publish` reads the loop's result."""

    @step
    async def generate(spec: str, last_draft: str | None = None) -> str:
        await trio.sleep(1)
        draft = f"{spec}" if last_draft is None else f"{last_draft}+"
        if draft.count("+") + 1 == fail_at:
            raise ValueError("the model gave up")
        return draft

    @step
    async def check(generate: str) -> bool:
        await trio.sleep(0.5)
        return generate.count("+") >= needed

    @step
    async def publish(checked: LoopResult) -> str:
        return f"{checked['generate']} after {checked.iterations}"

    checked = loop(
        [generate, check],
        until="check",
        into="checked",
        carry={"last_draft": "generate"},
        max_iterations=bound,
        on_limit=on_limit,  # type: ignore[arg-type]
        speculate=speculate,
    )
    return Flow([checked, publish], name="repair")


@pytest.mark.parametrize("mode", ["sequential", "parallel", "speculative"])
async def test_the_loop_repairs_until_the_check_passes(
    mode: str, autojump_clock: MockClock
) -> None:
    result = await repair_flow(needed=2).run(spec="wf", mode=mode)
    assert result.outputs["publish"] == "wf++ after 3"
    checked = result.values["checked"]
    assert checked.converged
    assert checked.outputs == {"generate": "wf++", "check": True}
    assert result.wall_time == 3 * 1.5
    assert [(e.step, e.branch) for e in result.trace if e.branch] == [
        (step_name, f"checked#{k}") for k in (1, 2, 3) for step_name in ("generate", "check")
    ]


async def test_a_check_that_passes_at_once_runs_one_iteration(autojump_clock: MockClock) -> None:
    result = await repair_flow(needed=0).run(spec="wf")
    assert result.outputs["publish"] == "wf after 1"


async def test_the_critical_path_walks_back_through_every_iteration(
    autojump_clock: MockClock,
) -> None:
    result = await repair_flow(needed=1).run(spec="wf")
    path = [(e.step, e.branch) for e in result.critical_path]
    assert path == [
        ("generate", "checked#1"),
        ("check", "checked#1"),
        ("generate", "checked#2"),
        ("check", "checked#2"),
        ("checked", ""),
        ("publish", ""),
    ]
    assert result.sequential_time == 2 * 1.5


async def test_hitting_the_bound_raises_an_error_naming_the_loop(
    autojump_clock: MockClock,
) -> None:
    with pytest.raises(StepFailedError) as caught:
        await repair_flow(needed=5, bound=3).run(spec="wf")
    cause = caught.value.__cause__
    assert isinstance(cause, LoopLimitError)
    assert "loop 'checked' ran its 3 iterations" in str(cause)
    assert "on_limit='last'" in str(cause)
    assert caught.value.step == "checked"


async def test_on_limit_last_goes_on_with_the_last_iteration(autojump_clock: MockClock) -> None:
    result = await repair_flow(needed=5, bound=3, on_limit="last").run(spec="wf")
    checked = result.values["checked"]
    assert (checked.iterations, checked.converged) == (3, False)
    assert result.outputs["publish"] == "wf++ after 3"


async def test_a_failing_iteration_fails_the_run_naming_the_iteration(
    autojump_clock: MockClock,
) -> None:
    for mode in ("sequential", "parallel"):
        with pytest.raises(StepFailedError, match="gave up") as caught:
            await repair_flow(needed=5, fail_at=2).run(spec="wf", mode=mode)
        assert caught.value.branch == "checked#2"
        assert [e.branch for e in caught.value.trace if e.branch == "checked#3"] == []


def effect_flow(sent: list[str]) -> Flow:
    """A router (3 s) picks `a` or `b`; branch `a` loops twice over a step and an effect."""

    @step
    async def decide(choice: str) -> Route:
        await trio.sleep(3)
        return Route(choice)

    @step
    async def attempt(tries: int = 0) -> int:
        await trio.sleep(1)
        return tries + 1

    @step(effect=True)
    async def notify(attempt: int) -> bool:
        sent.append(f"attempt {attempt}")
        return attempt >= 2

    @step(output="answer")
    async def done(attempts: LoopResult) -> int:
        return int(attempts["attempt"])

    @step(output="answer")
    async def other(choice: str) -> int:
        return 0

    retry = loop(
        [attempt, notify],
        until="notify",
        into="attempts",
        carry={"tries": "attempt"},
        max_iterations=3,
    )
    a = Flow([retry, done], outputs=["answer"])
    return Flow([router(decide, {"a": a, "b": Flow([other], outputs=["answer"])})])


async def test_effects_in_iterations_wait_for_their_branch_and_run_per_iteration(
    autojump_clock: MockClock,
) -> None:
    sent: list[str] = []
    result = await effect_flow(sent).run(choice="a", speculate=Branches({"decide": ["a"]}))
    assert sent == ["attempt 1", "attempt 2"]
    assert result.outputs["answer"] == 2
    notify = [e for e in result.trace if e.step == "notify"]
    # Iteration 1's attempt ran beside the router; its effect waited for the choice (3 s).
    assert [(e.branch, e.start) for e in notify] == [
        ("decide:a/attempts#1", 3),
        ("decide:a/attempts#2", 4),
    ]
    assert result.wall_time == 4


async def test_a_lost_branch_cancels_its_loop_and_no_effect_runs(autojump_clock: MockClock) -> None:
    sent: list[str] = []
    result = await effect_flow(sent).run(choice="b", speculate=Branches({"decide": ["a"]}))
    assert sent == []
    assert result.outputs["answer"] == 0
    lost = [e for e in result.trace if e.branch.startswith("decide:a")]
    assert {(e.step, e.status) for e in lost} >= {("attempt", StepStatus.OK)}
    assert all(e.wasted for e in lost if e.status is not StepStatus.SKIPPED)


async def test_loops_and_maps_nest(autojump_clock: MockClock) -> None:
    @step
    async def grow(seed: int, size: int = 0) -> int:
        await trio.sleep(1)
        return size + seed

    @step
    async def big(grow: int) -> bool:
        return grow >= 3

    grown = loop([grow, big], until="big", into="grown", carry={"size": "grow"}, max_iterations=5)
    each = map_([grown], over="seeds", item="seed", into="all")
    result = await Flow([each]).run(seeds=[1, 3])
    assert [r["grow"] for r in result.outputs["all"]] == [3, 3]
    assert [r.iterations for r in result.outputs["all"]] == [3, 1]
    assert result.wall_time == 3


def test_a_loop_is_a_node_reading_what_its_body_reads_from_outside() -> None:
    made = repair_flow(needed=1).nodes[0]
    assert isinstance(made, Loop)
    assert made.params == ("spec",)
    assert "Loop 'checked'" in repr(made)


def test_bad_loops_are_refused_when_built() -> None:
    @step
    async def draft(spec: str, last: str | None = None, strict: bool = True) -> str:
        return spec

    @step
    async def ok(draft: str, hint: str) -> bool:
        return True

    body = [draft, ok]
    with pytest.raises(StepDefinitionError, match="`until='nope'` is not produced"):
        loop(body, until="nope", into="out", max_iterations=2)
    with pytest.raises(StepDefinitionError, match="does not produce"):
        loop(body, until="ok", into="out", max_iterations=2, carry={"last": "nope"})
    with pytest.raises(StepDefinitionError, match="no step of the body reads"):
        loop(body, until="ok", into="out", max_iterations=2, carry={"other": "draft"})
    with pytest.raises(StepDefinitionError, match="give the parameter a default"):
        loop(body, until="ok", into="out", max_iterations=2, carry={"hint": "draft"})
    with pytest.raises(ConfigurationError, match="`max_iterations` must be"):
        loop(body, until="ok", into="out", max_iterations=0)
    with pytest.raises(ConfigurationTypeError, match="`max_iterations` must be"):
        loop(body, until="ok", into="out", max_iterations=2.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="`on_limit` must be"):
        loop(body, until="ok", into="out", max_iterations=2, on_limit="stop")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationTypeError, match="`carry` must be a mapping"):
        loop(body, until="ok", into="out", max_iterations=2, carry=["last"])  # type: ignore[arg-type]
    made = loop(body, until="ok", into="out", max_iterations=2, carry={"last": "draft"})
    assert made.params == ("hint", "spec", "strict")


async def test_a_speculating_loop_starts_the_next_iteration_beside_the_check(
    autojump_clock: MockClock,
) -> None:
    result = await repair_flow(needed=2, speculate=True).run(spec="wf", speculate=Always())
    assert result.outputs["publish"] == "wf++ after 3"
    # Each repair starts when the draft it repairs exists (1 s into its iteration), beside
    # the check: 3 drafts of 1 s and the last check, not 3 x 1.5 s.
    assert result.wall_time == 3 + 0.5
    by_branch = {(e.step, e.branch): e for e in result.trace}
    assert by_branch["generate", "checked#2"].start == 1
    assert by_branch["generate", "checked#2"].speculative
    assert not by_branch["generate", "checked#2"].wasted
    # The fourth iteration started beside the check that passed, and was cancelled.
    fourth = by_branch["generate", "checked#4"]
    assert (fourth.start, fourth.end, fourth.status, fourth.wasted) == (
        3,
        3.5,
        StepStatus.CANCELLED,
        True,
    )
    assert result.wasted_time == 0.5


async def test_the_policy_decides_whether_a_loop_speculates(autojump_clock: MockClock) -> None:
    flow = repair_flow(needed=2, speculate=True)
    assert flow.routers == {"checked": ("again",)}
    named = await flow.run(spec="wf", speculate=Branches({"checked": ["again"]}))
    assert named.wall_time == 3.5
    for policy in (Never(), Branches({})):
        assert (await flow.run(spec="wf", speculate=policy)).wall_time == 4.5
    for mode in ("parallel", "sequential"):
        assert (await flow.run(spec="wf", mode=mode)).wall_time == 4.5
    assert (await repair_flow(needed=2).run(spec="wf", speculate=Always())).wall_time == 4.5
    assert repair_flow(needed=2).routers == {}


def speculative_effects(log: list[str], failing: int = 0) -> Flow:
    """`attempt` (1 s) then, beside each other, `note` (an effect) and `judge` (2 s): the
    third attempt passes; attempt `failing` raises at once."""

    @step
    async def attempt(count: int = 0) -> int:
        if count + 1 == failing:
            raise ValueError("no more attempts")
        await trio.sleep(1)
        return count + 1

    @step(effect=True)
    async def note(attempt: int) -> int:
        log.append(f"attempt {attempt} at {trio.current_time()}")
        return attempt

    @step
    async def judge(attempt: int) -> bool:
        await trio.sleep(2)
        return attempt >= 3

    tries = loop(
        [attempt, note, judge],
        until="judge",
        into="tries",
        carry={"count": "attempt"},
        max_iterations=5,
        speculate=True,
    )
    return Flow([tries])


async def test_effects_of_a_speculative_iteration_wait_until_it_is_chosen(
    autojump_clock: MockClock,
) -> None:
    log: list[str] = []
    result = await speculative_effects(log).run(speculate=Always())
    # Attempt 2 ran 1-2 s beside judge 1 (1-3 s); its note waited for judge 1 to fail (3 s).
    # Attempt 3 started then (its input existed), ran 3-4 s beside judge 2 (2-4 s), and its
    # note waited for judge 2 (4 s); judge 3 passed at 6 s.
    assert log == ["attempt 1 at 1.0", "attempt 2 at 3.0", "attempt 3 at 4.0"]
    assert result.outputs["tries"].iterations == 3
    assert result.wall_time == 6
    # Attempt 4 started beside the passing judge; its note never ran.
    fourth = [(e.step, e.status) for e in result.trace if e.branch == "tries#4"]
    assert ("note", StepStatus.SKIPPED) in fourth


async def test_a_failure_in_a_speculative_iteration_counts_only_if_it_is_chosen(
    autojump_clock: MockClock,
) -> None:
    log: list[str] = []
    # Attempt 4 fails, but it was only speculated beside the judge that passed.
    result = await speculative_effects(log, failing=4).run(speculate=Always())
    assert result.outputs["tries"].iterations == 3
    failed = [e for e in result.trace if e.status is StepStatus.FAILED]
    assert [(e.branch, e.wasted) for e in failed] == [("tries#4", True)]
    # Attempt 3 fails while judge 2 runs: it is chosen, so the run fails.
    with pytest.raises(StepFailedError, match="no more attempts") as caught:
        await speculative_effects(log, failing=3).run(speculate=Always())
    assert caught.value.branch == "tries#3"


def valid_flow(
    needed: int, log: list[str], *, publish_effect: bool = False, check_fails: bool = False
) -> Flow:
    """`generate` (1 s, estimated so) then `check` (0.5 s; it raises if asked) in a
    speculating loop; `publish` (2 s, an effect if asked) reads the loop's result; `log`
    records each publish."""

    @step(estimated_seconds=1.0)
    async def generate(spec: str, last_draft: str | None = None) -> str:
        await trio.sleep(1)
        return spec if last_draft is None else f"{last_draft}+"

    @step(estimated_seconds=0.5)
    async def check(generate: str) -> bool:
        await trio.sleep(0.5)
        if check_fails:
            raise ValueError("the checker is down")
        return generate.count("+") >= needed

    @step(effect=publish_effect, estimated_seconds=2.0, estimated_dollars=0.001)
    async def publish(checked: LoopResult) -> str:
        await trio.sleep(2)
        text = f"{checked['generate']} after {checked.iterations} ({checked['check']})"
        log.append(f"{text} at {trio.current_time()}")
        return text

    checked = loop(
        [generate, check],
        until="check",
        into="checked",
        carry={"last_draft": "generate"},
        max_iterations=4,
        on_limit="last",
        speculate=True,
    )
    return Flow([checked, publish], name="valid")


async def test_a_predicted_valid_starts_the_steps_after_the_loop_beside_the_check(
    autojump_clock: MockClock,
) -> None:
    log: list[str] = []
    learned = LearnedState()
    result = await valid_flow(0, log).run(spec="wf", speculate=Always(), learned=learned)
    # `publish` started on the first draft at 1 s, beside the check (1-1.5 s), and was kept.
    assert result.outputs["publish"] == "wf after 1 (True)"
    assert result.wall_time == 1 + 2
    assert log == ["wf after 1 (True) at 3.0"]
    (published,) = [e for e in result.trace if e.step == "publish"]
    assert (published.branch, published.start, published.wasted) == ("checked:predicted", 1, False)
    (guess,) = result.predicted_values
    assert (guess.step, guess.speculated, guess.confirmed, guess.at) == ("checked", True, True, 1.5)
    assert learned.step("checked").confirmed == 1


async def test_a_refuted_valid_restarts_the_steps_after_the_loop_on_the_last_iteration(
    autojump_clock: MockClock,
) -> None:
    log: list[str] = []
    learned = LearnedState()
    result = await valid_flow(2, log).run(spec="wf", speculate=Always(), learned=learned)
    assert result.outputs["publish"] == "wf++ after 3 (True)"
    # Cancelled when the first check said no (1.5 s), started again on the third draft.
    assert log == ["wf++ after 3 (True) at 5.5"]
    runs = [
        (e.branch, e.start, e.end, e.status, e.wasted) for e in result.trace if e.step == "publish"
    ]
    assert runs == [
        ("checked:predicted", 1, 1.5, StepStatus.CANCELLED, True),
        ("", 3.5, 5.5, StepStatus.OK, False),
    ]
    # Never slower than without the guess: the same 5.5 s as a policy that plans only the
    # next iteration (`Branches` has no `speculate_value`).
    without = await valid_flow(2, []).run(spec="wf", speculate=Branches({"checked": ["again"]}))
    assert without.wall_time == result.wall_time == 5.5
    (unused,) = without.predicted_values
    assert (unused.speculated, unused.note) == (
        False,
        "the speculation policy has no speculate_value",
    )
    (guess,) = result.predicted_values
    assert (guess.speculated, guess.confirmed, guess.at) == (True, False, 1.5)
    assert learned.step("checked").refuted == 1


async def test_an_effect_after_the_loop_waits_for_the_verdict_and_runs_once(
    autojump_clock: MockClock,
) -> None:
    # Valid at once: the effect waits for the check (1.5 s) to confirm the guess. Repaired
    # once: it never runs on the refuted guess, and runs once on the second draft (2.5 s).
    for needed, text, ran_at in ((0, "wf after 1 (True)", 3.5), (1, "wf+ after 2 (True)", 4.5)):
        log: list[str] = []
        result = await valid_flow(needed, log, publish_effect=True).run(
            spec="wf", speculate=Always()
        )
        assert log == [f"{text} at {result.started + ran_at}"]
        assert result.predicted_values[0].confirmed is (needed == 0)


async def test_a_policy_that_declines_a_valid_only_learns(autojump_clock: MockClock) -> None:
    seen: list[ValueView] = []

    class Watching(Always):
        def speculate_value(self, value: ValueView) -> bool:
            seen.append(value)
            return False

    learned = LearnedState()
    result = await valid_flow(0, []).run(spec="wf", speculate=Watching(), learned=learned)
    assert result.wall_time == 1.5 + 2
    (view,) = seen
    assert (view.step, view.similarity, view.confirm_rate, view.settled) == ("checked", 0, 0.5, 0)
    assert (view.step_seconds, view.downstream_steps) == (0.5, ("publish",))
    assert view.downstream_estimates == ((2.0, 0.001),)
    (guess,) = result.predicted_values
    assert (guess.speculated, guess.confirmed) == (False, True)
    assert "declined" in guess.note
    assert learned.step("checked").confirmed == 1


async def test_the_predictive_policy_learns_how_often_a_loop_is_valid_at_once(
    autojump_clock: MockClock,
) -> None:
    learned = LearnedState()
    # Worth it while 0.5 s at $0.003 a second beats $0.001 wasted: a rate above 2/5.
    policy = PredictivePolicy(value_of_time=0.003)
    speculated = []
    for _ in range(4):
        result = await valid_flow(1, []).run(spec="wf", speculate=policy, learned=learned)
        speculated.append(result.predicted_values[0].speculated)
    # 0.5 with no history, 1/3 after one refutation: no longer worth it, still learning.
    assert speculated == [True, False, False, False]
    assert learned.step("checked").refuted == 4


@pytest.mark.parametrize("mode", ["sequential", "parallel"])
async def test_only_a_speculative_run_predicts_a_valid(
    mode: str, autojump_clock: MockClock
) -> None:
    result = await valid_flow(0, []).run(spec="wf", mode=mode)
    assert result.predicted_values == ()
    assert result.wall_time == 3.5


async def test_a_check_that_fails_drops_the_guess_and_the_run_fails_once(
    autojump_clock: MockClock,
) -> None:
    log: list[str] = []
    with pytest.raises(StepFailedError, match="the checker is down") as caught:
        await valid_flow(0, log, check_fails=True).run(spec="wf", speculate=Always())
    assert (caught.value.step, caught.value.branch) == ("check", "checked#1")
    assert log == []
    runs = [(e.branch, e.status, e.wasted) for e in caught.value.trace if e.step == "publish"]
    assert runs == [
        ("checked:predicted", StepStatus.CANCELLED, True),
        ("", StepStatus.SKIPPED, False),
    ]


async def test_a_body_that_reads_its_verdict_predicts_nothing(autojump_clock: MockClock) -> None:
    @step
    async def draft(last: str | None = None) -> str:
        await trio.sleep(1)
        return "d" if last is None else last + "+"

    @step
    async def ok(draft: str) -> bool:
        return True

    @step
    async def label(ok: bool, draft: str) -> str:
        return f"{draft}: {ok}"

    @step
    async def after(out: LoopResult) -> str:
        return out["label"]

    body = [draft, ok, label]
    made = loop(
        body, until="ok", into="out", max_iterations=2, carry={"last": "draft"}, speculate=True
    )
    result = await Flow([made, after]).run(speculate=Always())
    assert result.outputs["after"] == "d: True"
    assert result.predicted_values == ()


async def test_each_map_item_guesses_its_own_loops_valid(autojump_clock: MockClock) -> None:
    @step
    async def draft(task: str, last: str | None = None) -> str:
        await trio.sleep(1)
        return task if last is None else f"{last}+"

    @step
    async def fine(draft: str) -> bool:
        await trio.sleep(0.5)
        return draft.count("+") >= (draft[0] == "b")

    @step
    async def use(checked: LoopResult) -> str:
        await trio.sleep(2)
        return str(checked["draft"])

    checked = loop(
        [draft, fine], until="fine", into="checked", carry={"last": "draft"}, max_iterations=3,
        speculate=True,
    )  # fmt: skip
    body = Flow([checked, use], outputs=["use"])
    flow = Flow([map_(body, over="tasks", item="task", into="out")])
    result = await flow.run(tasks=["a", "b"], speculate=Always())
    assert result.outputs["out"] == ("a", "b+")
    # `a` kept its guess (use at 1-3 s); `b` repaired once (use at 2.5-4.5 s).
    assert result.wall_time == 4.5
    guesses = sorted((g.branch, g.confirmed) for g in result.predicted_values)
    assert guesses == [("out[0]", True), ("out[1]", False)]
    parallel = await flow.run(tasks=["a", "b"], mode="parallel")
    assert (parallel.outputs, parallel.wall_time) == (result.outputs, 5.0)


def draft_then_verdict(verdict_value: object, *, note: bool = False) -> Flow:
    """A speculating loop `[draft, verdict]` whose verdict returns `verdict_value`, then a
    step `after` that reads the loop's value. With `note`, the body also has a step whose
    value nothing reads."""

    @step
    async def draft(spec: str) -> str:
        await trio.sleep(1)
        return spec

    @step(name="note")
    async def noted(draft: str) -> str:
        return draft + "!"

    @step
    async def verdict(draft: str) -> object:
        await trio.sleep(0.5)
        return verdict_value

    @step
    async def after(out: LoopResult) -> str:
        await trio.sleep(1)
        return f"{out['draft']}: {out['verdict']}"

    body = [draft, noted, verdict] if note else [draft, verdict]
    made = loop(body, until="verdict", into="out", max_iterations=2, speculate=True)
    return Flow([made, after])


async def test_a_verdict_other_than_true_refutes_the_guess(autojump_clock: MockClock) -> None:
    # "looks fine" is truthy: the loop ends, but the guess said `True`.
    result = await draft_then_verdict("looks fine").run(spec="d", speculate=Always())
    # What ran on the guess read `True`; the value the run returns reads the real verdict.
    assert result.outputs["after"] == "d: looks fine"
    assert [(g.speculated, g.confirmed) for g in result.predicted_values] == [(True, False)]
    assert result.wall_time == 1.5 + 1


async def test_a_carried_value_no_body_step_reads_still_starts_the_next_iteration(
    autojump_clock: MockClock,
) -> None:
    # `critique` is read by no step of the body, only carried: the iteration's own write
    # hook (not a reader) is what starts the speculative next iteration on it.
    @step
    async def gen(spec: str, prev: str | None = None) -> str:
        await trio.sleep(1)
        return spec if prev is None else prev + "+"

    @step
    async def critique(gen: str) -> str:
        return gen

    @step
    async def check(gen: str) -> bool:
        await trio.sleep(0.5)
        return gen.count("+") >= 1

    made = loop(
        [gen, critique, check],
        until="check",
        into="out",
        carry={"prev": "critique"},
        max_iterations=3,
        speculate=True,
    )
    result = await Flow([made]).run(spec="s", speculate=Always())
    assert result.outputs["out"].iterations == 2
    assert result.outputs["out"]["gen"] == "s+"
    assert result.wall_time == 2.5  # the second draft started at 1 s, beside the first check


async def test_a_body_value_nothing_reads_still_counts_for_the_predicted_valid(
    autojump_clock: MockClock,
) -> None:
    # The predicted "valid" waits for every value of the first iteration but the verdict,
    # `note` included, though no step reads it.
    result = await draft_then_verdict(True, note=True).run(spec="s", speculate=Always())
    assert result.outputs["after"] == "s: True"
    assert [(g.speculated, g.confirmed) for g in result.predicted_values] == [(True, True)]
    assert result.wall_time == 2  # `after` started on the prediction at 1 s
