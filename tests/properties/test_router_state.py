"""One router, run again and again, against a plain model: route, handoff, failure, isolation,
what is learned.

The flow: `decide` (1 or 2 s) picks `a` (one step), `b` (two steps in a chain) or `c` (one
step) and hands `hint` to `b` and `c`, where `b_2` and `c_1` read it; every branch writes
`out`. Each `run` runs it once with a random choice, mode, speculation policy (`Branches`,
`Always` or `Never`), step durations and predictor guess, under a mock clock; each `fail`
runs it the same way with a router that raises instead of answering. The predictor answers
the guess the run hands it (a fixed answer, with or without a guessed `hint`, on time or
late) and learns with `RouteStatistics(decay=1.0)`, so the run's `LearnedState` must hold the
exact tally of the labels the router returned. Invariants, checked after every run:

1. The output is the chosen branch's value (as the step after the router saw it, with the
   handed `hint` where the branch reads it); `routes` is `[("decide", label)]`.
2. A losing branch's steps that ran are `wasted`; none of its values is visible; each of the
   winner's steps ran once as `ok` and not wasted (an attempt started on a refuted guessed
   `hint` is waste, like a loser).
3. The learned counts equal the model's tally of labels (which `forget`, `save` and
   `restore` change as `LearnedState.reset`, `snapshot` and `restore` must); near-match
   calibration stays empty. A router that raised taught nothing.
4. `decide.predict` is in the trace exactly in speculative runs; its guess is recorded
   when it came before the router's answer, and it is waste unless it named the winner.
5. The plan recorded is the policy's when a prediction (or none) came in time, else empty.
   A speculated winner that started on a guessed `hint` keeps it (`handoff_confirmed`)
   exactly when the guess equals the handed value.
6. The run takes at least the router's time and at most the sequential time.
7. A router that raises makes the run raise one `StepFailedError` naming it (never a
   group), with no concurrent failures; `final` is skipped, every branch step in the trace
   is speculative waste, and no branch value is in the error.
8. When `flow.run` returns or raises, no step is running and no task of the run is left.
"""

from __future__ import annotations

import inspect
from collections import Counter
from typing import TYPE_CHECKING, Any

import attrs
import trio
import trio.testing
from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from specroute.engine import Flow, Mode, RunResult, StepStatus, router, step
from specroute.routes import (
    Always,
    Branches,
    LearnedState,
    Never,
    Prediction,
    Route,
    RouteStatistics,
    SpeculationPolicy,
    StepFailedError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from specroute.routes import RouterView

LABELS = ("a", "b", "c")
# Each branch's steps, in order; a branch's last step writes `out`.
STEPS = {"a": ("a_1",), "b": ("b_1", "b_2"), "c": ("c_1",)}
# The branches the router hands `hint` to, and the steps that read it.
HANDED = ("b", "c")
READS_HINT = ("b_2", "c_1")
ROUTER = "decide"
# A guess of this label names whatever the router will choose (a right guess is likelier).
CHOSEN = "="
INPUTS = {"request", "choice", "broken", "guess", "timing"}


class RouterBrokeError(Exception):
    """What the router raises in a `fail` run."""


@attrs.frozen
class Guess:
    """What the predictor will say in one run, and how long it takes to say it.

    `hint` is the handoff it predicts for its label: None (none), "right" (the value the
    router will hand) or "wrong" (another one)."""

    label: str | None
    probability: float
    delay: float
    hint: str | None = None


def hint_of(request: int) -> str:
    return f"hint@{request}"


def handed(label: str, request: int) -> dict[str, str]:
    """The values the router hands branch `label` in run `request`."""
    return {"hint": hint_of(request)} if label in HANDED else {}


@attrs.frozen
class GuessingPredictor:
    """Answers the guess the run hands the router; learns like `RouteStatistics`."""

    statistics: RouteStatistics = attrs.Factory(lambda: RouteStatistics(decay=1.0))

    async def predict(self, router: RouterView, inputs: Mapping[str, Any]) -> Prediction:
        guess: Guess = inputs["guess"]
        await trio.sleep(guess.delay)
        if guess.label is None:
            return Prediction(probabilities={}, source="guess")
        values = {}
        if guess.label in HANDED and guess.hint is not None:
            hint = hint_of(inputs["request"]) if guess.hint == "right" else "stale"
            values = {guess.label: {"hint": hint}}
        return Prediction(
            probabilities={guess.label: guess.probability}, source="guess", values=values
        )

    def observe(self, router: RouterView, inputs: Mapping[str, Any], label: str) -> None:
        self.statistics.observe(router, inputs, label)


def value_of(name: str, request: int, hint: str | None = None) -> str:
    return f"{name}@{request}" if hint is None else f"{name}@{request}+{hint}"


def make_step(name: str, reads: tuple[str, ...], output: str, running: list[str]) -> Any:
    async def body(**values: Any) -> str:
        running.append(name)
        try:
            await trio.sleep(values["timing"][name])
        finally:
            running.remove(name)
        return value_of(name, values["request"], values.get("hint"))

    body.__name__ = name
    body.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in reads]
    )
    return step(output=output)(body)


def make_flow(predictor: GuessingPredictor, running: list[str]) -> Flow:
    @step
    async def decide(
        request: int, choice: str, broken: bool, guess: Guess, timing: dict[str, float]
    ) -> Route:
        await trio.sleep(timing[ROUTER])
        if broken:
            raise RouterBrokeError(f"no route for request {request}")
        return Route(choice, **handed(choice, request))

    def reads(name: str, *more: str) -> tuple[str, ...]:
        hint = ("hint",) if name in READS_HINT else ()
        return ("request", "timing", *more, *hint)

    branches = {
        "a": Flow([make_step("a_1", reads("a_1"), "out", running)], name="a"),
        "b": Flow(
            [
                make_step("b_1", reads("b_1"), "b_mid", running),
                make_step("b_2", reads("b_2", "b_mid"), "out", running),
            ],
            name="b",
        ),
        "c": Flow([make_step("c_1", reads("c_1"), "out", running)], name="c"),
    }

    @step
    async def final(out: str) -> str:
        # Reads the router's output: a loser's value seen here, even for an instant, would
        # start this step with it.
        return f"final({out})"

    handoff = {label: ["hint"] for label in HANDED}
    decision = router(decide, branches, handoff=handoff, predictor=predictor)
    return Flow([decision, final], name="one_router")


def planned(policy: SpeculationPolicy) -> dict[str, int | None]:
    """The plan `policy` makes for the router (the model of the three policies)."""
    if isinstance(policy, Always):
        return dict.fromkeys(LABELS, policy.limit)
    if isinstance(policy, Branches):
        return dict(policy.plans.get(ROUTER, {}))
    assert isinstance(policy, Never)
    return {}


def leftover_tasks() -> list[str]:
    """The names of the tasks of the run still alive (`specroute ...`), from trio's root."""
    names = []
    tasks = [trio.lowlevel.current_root_task()]
    while tasks:
        task = tasks.pop()
        names.append(task.name)
        tasks.extend(child for nursery in task.child_nurseries for child in nursery.child_tasks)
    return [name for name in names if name.startswith("specroute")]


PLANS = st.dictionaries(st.sampled_from(LABELS), st.sampled_from([None, 1]), max_size=3)
POLICIES = st.one_of(
    PLANS.map(lambda plan: Branches({ROUTER: plan})),
    st.sampled_from([Always(), Always(limit=1), Never()]),
)
GUESSES = st.builds(
    Guess,
    label=st.sampled_from([None, CHOSEN, *LABELS]),
    probability=st.sampled_from([0.2, 0.6, 1.0]),
    delay=st.sampled_from([0.0, 0.5, 5.0]),  # 5 s: after any router has answered
    hint=st.sampled_from([None, "right", "wrong"]),
)
TIMINGS = st.fixed_dictionaries(
    {
        ROUTER: st.sampled_from([1.0, 2.0]),
        **{name: st.sampled_from([0.0, 0.5, 3.0]) for names in STEPS.values() for name in names},
    }
)
RUNS = {
    "choice": st.sampled_from(LABELS),
    "mode": st.sampled_from([*Mode, Mode.SPECULATIVE]),
    "policy": POLICIES,
    "guess": GUESSES,
    "timing": TIMINGS,
}


class RouterMachine(RuleBasedStateMachine):
    """Runs of one router flow sharing one `LearnedState`, checked against a tally."""

    def __init__(self) -> None:
        super().__init__()
        self.predictor = GuessingPredictor()
        self.running: list[str] = []
        self.flow = make_flow(self.predictor, self.running)
        self.learned = LearnedState()
        self.tally: Counter[str] = Counter()
        self.runs = 0
        self.saved: tuple[LearnedState, Counter[str]] | None = None
        self.left: list[str] = []

    def execute(self, **kwargs: Any) -> RunResult | Exception:
        """The run's result or what it raised (an `ExceptionGroup` too, to be refused by
        type), noting what it left running."""

        async def main() -> RunResult | Exception:
            try:
                return await self.flow.run(learned=self.learned, **kwargs)
            except Exception as exc:  # the caller checks its exact type (never a group)
                return exc
            finally:
                self.left = [*self.running, *leftover_tasks()]

        return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))

    def start(
        self,
        choice: str,
        mode: Mode,
        policy: SpeculationPolicy,
        guess: Guess,
        timing: dict[str, float],
        *,
        broken: bool,
    ) -> tuple[int, Guess, RunResult | Exception]:
        self.runs += 1
        request = self.runs
        if guess.label == CHOSEN:
            guess = attrs.evolve(guess, label=choice)
        note(f"run {request}: {choice=} {broken=} {mode=} {policy=} {guess=} {timing=}")
        outcome = self.execute(
            request=request,
            choice=choice,
            broken=broken,
            guess=guess,
            timing=timing,
            mode=mode,
            speculate=policy,
        )
        return request, guess, outcome

    @rule(**RUNS)
    def run(
        self,
        choice: str,
        mode: Mode,
        policy: SpeculationPolicy,
        guess: Guess,
        timing: dict[str, float],
    ) -> None:
        request, guess, result = self.start(choice, mode, policy, guess, timing, broken=False)
        if not isinstance(result, RunResult):
            raise result
        self.tally[choice] += 1
        self.check_result(result, choice, mode, planned(policy), guess, timing, request)

    @rule(
        choice=st.sampled_from(HANDED),
        policy=st.sampled_from([Always(), Always(limit=1)]),
        delay=st.sampled_from([0.0, 0.5]),
        hint=st.sampled_from(["right", "wrong"]),
        timing=TIMINGS,
    )
    def run_on_a_guess(
        self,
        choice: str,
        policy: SpeculationPolicy,
        delay: float,
        hint: str,
        timing: dict[str, float],
    ) -> None:
        """`run`, its winner speculated on a guessed hint (rare among `run`'s own draws)."""
        guess = Guess(choice, 1.0, delay, hint)
        self.run(choice, Mode.SPECULATIVE, policy, guess, timing)

    @rule(**RUNS)
    def fail(
        self,
        choice: str,
        mode: Mode,
        policy: SpeculationPolicy,
        guess: Guess,
        timing: dict[str, float],
    ) -> None:
        request, _, error = self.start(choice, mode, policy, guess, timing, broken=True)
        # 7. One error, naming the router; nothing learned (the tally stays).
        assert type(error) is StepFailedError, repr(error)
        assert (error.step, error.branch) == (ROUTER, "")
        assert isinstance(error.__cause__, RouterBrokeError)
        assert error.concurrent_failures == ()
        plan = planned(policy)
        steps = {e.step for e in error.trace}
        (final,) = [e for e in error.trace if e.step == "final"]
        assert final.status is StepStatus.SKIPPED  # it never saw a branch's `out`
        (failed,) = [e for e in error.trace if e.step == ROUTER]
        assert failed.status is StepStatus.FAILED
        assert f"{ROUTER}.predict" in steps or mode is not Mode.SPECULATIVE
        # A prediction is waste unless it named the branch the router chose: here, none.
        assert all(e.wasted for e in error.trace if e.step == f"{ROUTER}.predict")
        reported = [str(error), *(e.error or "" for e in error.trace)]
        for entry in error.trace:
            if not entry.branch:
                continue
            assert mode is Mode.SPECULATIVE, entry
            label = entry.branch.removeprefix(f"{ROUTER}:")
            assert label in plan, entry
            assert entry.speculative, entry
            assert entry.wasted == (entry.status is not StepStatus.SKIPPED), entry
            assert not any(value_of(entry.step, request) in text for text in reported)

    @rule()
    def save(self) -> None:
        self.saved = (self.learned.snapshot(), Counter(self.tally))

    @precondition(lambda self: self.saved is not None)
    @rule()
    def restore(self) -> None:
        assert self.saved is not None
        snapshot, tally = self.saved
        self.learned.restore(snapshot)
        self.tally = Counter(tally)

    @rule()
    def forget(self) -> None:
        self.learned.reset(ROUTER)
        assert ROUTER not in self.learned.routers()
        self.tally.clear()

    def check_result(
        self,
        result: RunResult,
        choice: str,
        mode: Mode,
        plan: dict[str, int | None],
        guess: Guess,
        timing: dict[str, float],
        request: int,
    ) -> None:
        # 1. The chosen branch's value, with what the router handed it, and the one route.
        last = STEPS[choice][-1]
        out = value_of(last, request, hint_of(request) if last in READS_HINT else None)
        assert result.outputs == {"final": f"final({out})"}
        assert result.values["out"] == out
        assert [(r.router, r.branch, r.label) for r in result.routes] == [(ROUTER, "", choice)]
        # 5. The handoff: a winner started on a guessed hint keeps it only if it was right.
        (decision,) = result.decisions
        router_time = timing[ROUTER]
        in_time = guess.delay < router_time
        speculated = mode is Mode.SPECULATIVE and in_time and choice in plan
        on_guess = speculated and guess.label == choice in HANDED and guess.hint is not None
        assert decision.handoff_confirmed == (guess.hint == "right" if on_guess else None)
        # 2. Losers are waste and invisible; the winner's steps ran once each, not wasted,
        # beside an attempt on a refuted guess, which is waste like a loser.
        winner = f"{ROUTER}:{choice}"
        kept = [e for e in result.trace if e.branch == winner and e.status is StepStatus.OK]
        if decision.handoff_confirmed is False:
            kept = [e for e in kept if not e.wasted]
        assert sorted(e.step for e in kept) == sorted(STEPS[choice]), kept
        for entry in result.trace:
            if entry in kept:
                assert not entry.wasted, entry
            elif entry.branch:
                assert mode is Mode.SPECULATIVE, entry
                assert entry.branch.removeprefix(f"{ROUTER}:") in plan, entry
                assert entry.branch != winner or decision.handoff_confirmed is False, entry
                assert entry.wasted == (entry.status is not StepStatus.SKIPPED), entry
        # A branch's inner values (and what its router handed it) stay in its overlay.
        assert set(result.values) == {*INPUTS, "out", "final"}
        # 4. The prediction: asked only when speculating; recorded if it came in time.
        predicts = [e for e in result.trace if e.step == f"{ROUTER}.predict"]
        if mode is not Mode.SPECULATIVE:
            assert predicts == []
            assert decision.prediction is None
            assert decision.plan == {}
        else:
            (predict,) = predicts
            assert predict.speculative
            if in_time:
                assert predict.status is StepStatus.OK
                assert decision.prediction is not None
                assert decision.prediction.likeliest == guess.label
                assert predict.wasted == (guess.label != choice)
                # 5. A prediction in time lets the policy plan.
                assert decision.plan == plan
            else:
                assert predict.status is StepStatus.CANCELLED
                assert predict.wasted
                assert decision.prediction is None
                assert decision.note == "the router answered first"
                assert decision.plan == {}
        assert decision.label == choice
        assert not decision.wasted
        # 6. Never slower than one step at a time, never faster than the router.
        sequential = router_time + sum(timing[name] for name in STEPS[choice])
        assert router_time - 1e-9 <= result.wall_time <= sequential + 1e-9

    @invariant()
    def nothing_is_left_running(self) -> None:
        # 8. Every step and every task of the last run ended before `flow.run` came back.
        assert self.left == []

    @invariant()
    def learned_counts_are_the_tally(self) -> None:
        # 3. Every answer was learned, once, in the run's own state.
        memory = self.learned.routers().get(ROUTER)
        counts = {} if memory is None else memory.predictor.get("counts", {}).get(None, {})
        assert counts == {label: float(n) for label, n in self.tally.items() if n}
        if memory is not None:
            assert memory.calibration.totals() == (0, 0)  # no cache: no near matches


RouterMachine.TestCase.settings = settings(stateful_step_count=16)
TestRouterMachine = RouterMachine.TestCase
