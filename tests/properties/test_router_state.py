"""One router, run again and again, against a plain model: route, isolation, what is learned.

The flow: `decide` (1 or 2 s) picks `a` (one step), `b` (two steps in a chain) or `c` (one
step); every branch writes `out`. Each rule runs it once with a random choice, mode,
speculation plan (`Branches`), step durations and predictor guess, under a mock clock. The
predictor answers the guess the run hands it (a fixed answer, on time or late) and learns
with `RouteStatistics(decay=1.0)`, so the run's `LearnedState` must hold the exact tally of
the labels the router returned. Invariants, checked after every run:

1. The output is the chosen branch's value (as the step after the router saw it);
   `routes` is `[("decide", label)]`.
2. A losing branch's steps that ran are `wasted`; none of its values is visible; the
   winner's steps are neither wasted nor anything but `ok`.
3. The learned counts equal the model's tally of labels (which `forget`, `save` and
   `restore` change as `LearnedState.reset`, `snapshot` and `restore` must); near-match
   calibration stays empty.
4. `decide.predict` is in the trace exactly in speculative runs; its guess is recorded
   when it came before the router's answer, and it is waste unless it named the winner.
5. The plan recorded is the policy's when a prediction (or none) came in time, else empty.
6. The run takes at least the router's time and at most the sequential time.
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
from specroute.routes import Branches, LearnedState, Prediction, Route, RouteStatistics

if TYPE_CHECKING:
    from collections.abc import Mapping

    from specroute.routes import RouterView

LABELS = ("a", "b", "c")
# Each branch's steps, in order; a branch's last step writes `out`.
STEPS = {"a": ("a_1",), "b": ("b_1", "b_2"), "c": ("c_1",)}
ROUTER = "decide"


@attrs.frozen
class Guess:
    """What the predictor will say in one run, and how long it takes to say it."""

    label: str | None
    probability: float
    delay: float


@attrs.frozen
class GuessingPredictor:
    """Answers the guess the run hands the router; learns like `RouteStatistics`."""

    statistics: RouteStatistics = attrs.Factory(lambda: RouteStatistics(decay=1.0))

    async def predict(self, router: RouterView, inputs: Mapping[str, Any]) -> Prediction:
        guess: Guess = inputs["guess"]
        await trio.sleep(guess.delay)
        if guess.label is None:
            return Prediction(probabilities={}, source="guess")
        return Prediction(probabilities={guess.label: guess.probability}, source="guess")

    def observe(self, router: RouterView, inputs: Mapping[str, Any], label: str) -> None:
        self.statistics.observe(router, inputs, label)


def value_of(name: str, request: int) -> str:
    return f"{name}@{request}"


def make_step(name: str, reads: tuple[str, ...], output: str) -> Any:
    async def body(**values: Any) -> str:
        await trio.sleep(values["timing"][name])
        return value_of(name, values["request"])

    body.__name__ = name
    body.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in reads]
    )
    return step(output=output)(body)


def make_flow(predictor: GuessingPredictor) -> Flow:
    @step
    async def decide(request: int, choice: str, guess: Guess, timing: dict[str, float]) -> Route:
        await trio.sleep(timing[ROUTER])
        return Route(choice)

    base = ("request", "timing")
    branches = {
        "a": Flow([make_step("a_1", base, "out")], name="a"),
        "b": Flow(
            [make_step("b_1", base, "b_mid"), make_step("b_2", (*base, "b_mid"), "out")],
            name="b",
        ),
        "c": Flow([make_step("c_1", base, "out")], name="c"),
    }

    @step
    async def final(out: str) -> str:
        # Reads the router's output: a loser's value seen here, even for an instant, would
        # start this step with it.
        return f"final({out})"

    return Flow([router(decide, branches, predictor=predictor), final], name="one_router")


PLANS = st.dictionaries(st.sampled_from(LABELS), st.sampled_from([None, 1]), max_size=3)
GUESSES = st.builds(
    Guess,
    label=st.sampled_from([None, *LABELS]),
    probability=st.sampled_from([0.2, 0.6, 1.0]),
    delay=st.sampled_from([0.0, 0.5, 5.0]),  # 5 s: after any router has answered
)
TIMINGS = st.fixed_dictionaries(
    {
        ROUTER: st.sampled_from([1.0, 2.0]),
        **{name: st.sampled_from([0.0, 0.5, 3.0]) for names in STEPS.values() for name in names},
    }
)


class RouterMachine(RuleBasedStateMachine):
    """Runs of one router flow sharing one `LearnedState`, checked against a tally."""

    def __init__(self) -> None:
        super().__init__()
        self.predictor = GuessingPredictor()
        self.flow = make_flow(self.predictor)
        self.learned = LearnedState()
        self.tally: Counter[str] = Counter()
        self.runs = 0
        self.saved: tuple[LearnedState, Counter[str]] | None = None

    def execute(self, **kwargs: Any) -> RunResult:
        async def main() -> RunResult:
            return await self.flow.run(learned=self.learned, **kwargs)

        return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))

    @rule(
        choice=st.sampled_from(LABELS),
        mode=st.sampled_from(list(Mode)),
        plan=PLANS,
        guess=GUESSES,
        timing=TIMINGS,
    )
    def run(
        self,
        choice: str,
        mode: Mode,
        plan: dict[str, int | None],
        guess: Guess,
        timing: dict[str, float],
    ) -> None:
        self.runs += 1
        request = self.runs
        result = self.execute(
            request=request,
            choice=choice,
            guess=guess,
            timing=timing,
            mode=mode,
            speculate=Branches({ROUTER: plan}),
        )
        note(f"run {request}: {choice=} {mode=} {plan=} {guess=} {timing=}")
        self.tally[choice] += 1
        self.check_result(result, choice, mode, plan, guess, timing, request)

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
        # 1. The chosen branch's value, and the one route.
        out = value_of(STEPS[choice][-1], request)
        assert result.outputs == {"final": f"final({out})"}
        assert result.values["out"] == out
        assert [(r.router, r.branch, r.label) for r in result.routes] == [(ROUTER, "", choice)]
        # 2. Losers are waste and invisible; the winner is neither.
        winner = f"{ROUTER}:{choice}"
        for entry in result.trace:
            if entry.branch == winner:
                assert entry.status is StepStatus.OK, entry
                assert not entry.wasted, entry
            elif entry.branch:
                assert mode is Mode.SPECULATIVE, entry
                assert entry.branch.removeprefix(f"{ROUTER}:") in plan, entry
                assert entry.wasted == (entry.status is not StepStatus.SKIPPED), entry
        # A branch's inner values stay in its overlay, the winner's too.
        assert set(result.values) == {"request", "choice", "guess", "timing", "out", "final"}
        # 4. The prediction: asked only when speculating; recorded if it came in time.
        predicts = [e for e in result.trace if e.step == f"{ROUTER}.predict"]
        (decision,) = result.decisions
        router_time = timing[ROUTER]
        in_time = guess.delay < router_time
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
    def learned_counts_are_the_tally(self) -> None:
        # 3. Every answer was learned, once, in the run's own state.
        memory = self.learned.routers().get(ROUTER)
        counts = {} if memory is None else memory.predictor.get("counts", {}).get(None, {})
        assert counts == {label: float(n) for label, n in self.tally.items() if n}
        if memory is not None:
            assert memory.calibration.totals() == (0, 0)  # no cache: no near matches


RouterMachine.TestCase.settings = settings(stateful_step_count=8)
TestRouterMachine = RouterMachine.TestCase
