"""Maps and loops keep every promise flows make: random shapes, every mode, one reference.

A random flow: `make` lists `n` items (0 to 6); a map (`max_parallel` random, failures
raised or collected) runs a chain of one or two steps per item; a loop repairs until its
check passes after `k` iterations, bounded at `bound` (`on_limit` random); `final` (0 to 2
s) reads both, and `announce`, an effect, reads the loop's result. Optionally the map and
loop sit in branch `dyn` of a router that may pick `plain` instead, with either branch
speculated. A speculating loop may start its next iteration beside its check (`"again"`
planned), and the policy may guess "valid" (`speculate_value`): `final` and `announce` then
start on the first iteration beside its check, right when it passes at once, else wrong.

The reference below is written from the README's rules, not from the scheduler:

1. Every mode returns what the reference interpreter says (or raises `StepFailedError` when
   it says the winning path fails), whatever the caps.
   Effects run once each, on the winning values only: `announce` sees the last iteration.
2. Wall time in virtual time is exact: items start in input order as `max_parallel` slots
   free; an item's steps run one after another, an effect among them not before its branch
   is chosen; iterations run one after another; a branch begins with its router if
   speculated, else when it returns; a lost branch adds nothing, and runs no effect. A
   guessed "valid" starts `final` when the first attempt and the map are done: kept if the
   first check passes (the answer comes when both `final` and that check are done), else
   `final` starts again after the loop, as with no guess: a guess never makes a run slower.
3. Cancelled from outside at any moment, a run leaves no step running, and stops at once
   but for effects that had started (they finish); no effect starts after the cancel.
4. A guessed "valid" (speculative mode, the loop speculating, the policy guessing) is
   kept exactly when the first check passes; values and effects are those of the
   reference either way, and the run is never slower than the same run with no guess.
5. A map over a near match's list returns the real list's results, runs each effect once on
   the real list, and takes exactly the shared items that finished on the guess.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import attrs
import trio
import trio.testing
from hypothesis import given, note
from hypothesis import strategies as st
from specroute.cache import CacheOptions, HashingEmbedder, open_cache
from specroute.engine import (
    Always,
    Branches,
    Flow,
    ItemFailed,
    LoopResult,
    Mode,
    Route,
    RunResult,
    StepFailedError,
    loop,
    map_,
    router,
    step,
)

if TYPE_CHECKING:
    from specroute.routes import ValueView

modes = st.sampled_from(list(Mode))


@attrs.frozen
class Spec:
    make: int  # seconds
    item_seconds: tuple[tuple[int, ...], ...]  # per item: its chain's step durations
    fails: frozenset[int]  # items whose first step raises
    effect: bool  # an item's second step is an effect (it waits for its branch)
    collect: bool
    max_parallel: int | None
    loop_seconds: int
    check_seconds: int
    speculate_loop: bool  # the loop may speculate (its next iteration, a predicted valid)
    again: bool  # the policy plans the loop's next iteration
    guess_valid: bool  # the policy starts what follows the loop on a predicted valid
    final_seconds: int
    needed: int  # iterations until the check passes
    bound: int
    last: bool  # on_limit="last"
    router: tuple[int, int, str, frozenset[str]] | None  # seconds, plain's seconds, choice, plan


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    n = draw(st.integers(0, 6))
    chain = draw(st.integers(1, 2))
    routed = draw(st.booleans())
    return Spec(
        make=draw(st.integers(0, 3)),
        item_seconds=tuple(tuple(draw(st.integers(0, 3)) for _ in range(chain)) for _ in range(n)),
        fails=frozenset(draw(st.sets(st.integers(0, max(n - 1, 0)), max_size=2)) if n else ()),
        effect=chain == 2 and draw(st.booleans()),
        collect=draw(st.booleans()),
        max_parallel=draw(st.sampled_from([None, 1, 2, 3])),
        loop_seconds=draw(st.integers(0, 3)),
        check_seconds=draw(st.integers(0, 2)),
        speculate_loop=draw(st.booleans()),
        again=draw(st.booleans()),
        guess_valid=draw(st.booleans()),
        final_seconds=draw(st.integers(0, 2)),
        needed=draw(st.integers(1, 4)),
        bound=draw(st.integers(1, 4)),
        last=draw(st.booleans()),
        router=(
            draw(st.integers(0, 5)),
            draw(st.integers(0, 5)),
            draw(st.sampled_from(["dyn", "plain"])),
            frozenset(draw(st.sets(st.sampled_from(["dyn", "plain"])))),
        )
        if routed
        else None,
    )


class Probe:
    def __init__(self) -> None:
        self.running = 0
        self.started = 0
        self.effects = 0
        self.effects_at: list[float] = []
        self.announced: list[tuple[object, int]] = []


def build(spec: Spec, probe: Probe) -> Flow:
    async def work(seconds: int) -> None:
        probe.running += 1
        probe.started += 1
        try:
            await trio.sleep(seconds)
        finally:
            probe.running -= 1

    @step
    async def make() -> list[int]:
        await work(spec.make)
        return list(range(len(spec.item_seconds)))

    @step
    async def first(item: int) -> int:
        await work(spec.item_seconds[item][0])
        if item in spec.fails:
            raise ValueError(f"item {item} fails")
        return item * 10 + 1

    @step(effect=spec.effect)
    async def second(first: int) -> int:
        probe.effects += spec.effect
        if spec.effect:
            probe.effects_at.append(trio.current_time())
        await work(spec.item_seconds[first // 10][1])
        return first + 1

    @step
    async def attempt(seed: int, previous: int = 0) -> int:
        await work(spec.loop_seconds)
        return previous + seed

    @step
    async def passes(attempt: int, seed: int) -> bool:
        await work(spec.check_seconds)
        return attempt >= spec.needed * seed

    @step(output="answer")
    async def final(mapped: tuple[object, ...], looped: LoopResult) -> object:
        await work(spec.final_seconds)
        return (normal(mapped), looped["attempt"], looped.iterations, looped.converged)

    @step(effect=True)
    async def announce(looped: LoopResult) -> None:
        probe.effects_at.append(trio.current_time())
        probe.announced.append((looped["attempt"], looped.iterations))

    chain = [first, second] if spec.item_seconds and len(spec.item_seconds[0]) == 2 else [first]
    dynamic = [
        map_(
            chain,
            over="make",
            item="item",
            into="mapped",
            result=chain[-1].output,
            max_parallel=spec.max_parallel,
            on_error="collect" if spec.collect else "raise",
        ),
        loop(
            [attempt, passes],
            until="passes",
            into="looped",
            carry={"previous": "attempt"},
            max_iterations=spec.bound,
            on_limit="last" if spec.last else "raise",
            speculate=spec.speculate_loop,
        ),
        final,
        announce,
    ]
    if spec.router is None:
        return Flow([make, *dynamic], name="dynamic")
    seconds, plain_seconds, choice, _ = spec.router

    @step
    async def decide() -> Route:
        await work(seconds)
        return Route(choice)

    @step(output="answer")
    async def plain(seed: int) -> object:
        await work(plain_seconds)
        return "plain"

    branches = {
        "dyn": Flow(dynamic, outputs=["answer"]),
        "plain": Flow([plain], outputs=["answer"]),
    }
    return Flow([make, router(decide, branches)], name="dynamic")


def normal(mapped: tuple[object, ...]) -> tuple[object, ...]:
    return tuple(
        ("failed", value.index) if isinstance(value, ItemFailed) else value for value in mapped
    )


class Guessing(Branches):
    """`Branches`, and every predicted value starts what follows it."""

    def speculate_value(self, value: ValueView) -> bool:
        return True


def policy(spec: Spec, *, guess: bool | None = None) -> Branches:
    plans = {} if spec.router is None else {"decide": sorted(spec.router[3])}
    again = {"looped": ["again"]} if spec.speculate_loop and spec.again else {}
    guessing = spec.guess_valid if guess is None else guess
    return (Guessing if guessing else Branches)({**plans, **again})


def guessed(spec: Spec, mode: Mode) -> bool:
    """Whether `final` starts on a predicted valid (right exactly when one check passes)."""
    return mode is Mode.SPECULATIVE and spec.speculate_loop and spec.guess_valid


@attrs.frozen
class Expected:
    answer: object  # None: the run raises StepFailedError
    wall: float


def _makespan(start: float, spec: Spec, confirm: float) -> float:
    """Items start in input order, each when one of `max_parallel` slots is free; an item
    holds its slot until it ends, its effect waiting for `confirm` (its branch's choice)."""
    count = len(spec.item_seconds)
    slots = [start] * (spec.max_parallel or max(count, 1))
    end = start
    for index, seconds in enumerate(spec.item_seconds):
        slot = min(range(len(slots)), key=lambda i: (slots[i], i))
        done = slots[slot] + seconds[0]
        if index not in spec.fails and len(seconds) == 2:
            done = (max(done, confirm) if spec.effect else done) + seconds[1]
        slots[slot] = done
        end = max(end, done)
    return end


def _loop_end(spec: Spec, mode: Mode, begin: float) -> float:
    """Iteration k is decided when its attempt and check are done. A speculating loop
    starts iteration k + 1 once iteration k is the current one and its attempt (the value
    carried) exists; otherwise when iteration k is decided."""
    iterations = min(spec.needed, spec.bound)
    attempt, check = spec.loop_seconds, spec.check_seconds
    ahead = mode is Mode.SPECULATIVE and spec.speculate_loop and spec.again
    if mode is Mode.SEQUENTIAL or not ahead:
        return begin + iterations * (attempt + check)
    start = current = begin
    for _ in range(iterations - 1):
        decided = start + attempt + check
        start, current = max(current, start + attempt), decided
    return start + attempt + check


def expected(spec: Spec, mode: Mode) -> Expected:
    """What the run returns, and its wall time with no run cap."""
    item_times = [
        seconds[0] if index in spec.fails else sum(seconds)
        for index, seconds in enumerate(spec.item_seconds)
    ]
    iterations = min(spec.needed, spec.bound)
    chain = len(spec.item_seconds[0]) if spec.item_seconds else 1
    mapped = tuple(
        ("failed", index) if index in spec.fails else index * 10 + chain
        for index in range(len(spec.item_seconds))
    )
    dyn_answer = (mapped, iterations, iterations, spec.needed <= spec.bound)
    loop_time = _loop_end(spec, mode, 0)
    final = spec.final_seconds
    if spec.router is None:
        if mode is Mode.SEQUENTIAL:
            return Expected(dyn_answer, spec.make + sum(item_times) + loop_time + final)
        mapped_at = _makespan(spec.make, spec, 0)
        return Expected(dyn_answer, _answered(spec, mode, 0, mapped_at))
    seconds, plain_seconds, choice, plan = spec.router
    if choice == "plain":
        if mode is Mode.SEQUENTIAL:
            return Expected("plain", spec.make + seconds + plain_seconds)
        begin = 0 if mode is Mode.SPECULATIVE and "plain" in plan else seconds
        return Expected("plain", max(spec.make, seconds, begin + plain_seconds))
    if mode is Mode.SEQUENTIAL:
        return Expected(dyn_answer, spec.make + seconds + sum(item_times) + loop_time + final)
    begin = 0 if mode is Mode.SPECULATIVE and "dyn" in plan else seconds
    mapped_at = _makespan(max(spec.make, begin), spec, seconds)
    return Expected(dyn_answer, max(seconds, _answered(spec, mode, begin, mapped_at)))


def _answered(spec: Spec, mode: Mode, begin: float, mapped_at: float) -> float:
    """When `final` is done, the loop having begun at `begin` and the map ended at
    `mapped_at`: after both, or, on a right guess, after the map and the first attempt (and
    never before the check that confirms the guess)."""
    loop_end = _loop_end(spec, mode, begin)
    if guessed(spec, mode) and spec.needed == 1:
        early = max(mapped_at, begin + spec.loop_seconds)
        return max(early + spec.final_seconds, loop_end, mapped_at)
    return max(mapped_at, loop_end) + spec.final_seconds


def failing(spec: Spec) -> bool:
    dyn_fails = (bool(spec.fails) and not spec.collect) or (
        spec.needed > spec.bound and not spec.last
    )
    return dyn_fails and (spec.router is None or spec.router[2] == "dyn")


def run_once(
    spec: Spec, mode: Mode, cap: int | None, probe: Probe, *, guess: bool | None = None
) -> RunResult | None:
    outcome: list[RunResult | None] = []

    async def main() -> None:
        flow = build(spec, probe)
        speculate = policy(spec, guess=guess)
        try:
            outcome.append(
                await flow.run(seed=1, mode=mode, speculate=speculate, max_concurrency=cap)
            )
        except StepFailedError:
            outcome.append(None)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return outcome[0]


@given(spec=specs(), mode=modes, cap=st.sampled_from([None, None, 1, 2]))
def test_every_mode_returns_the_reference_answer(spec: Spec, mode: Mode, cap: int | None) -> None:
    """1."""
    note(repr(spec))
    probe = Probe()
    result = run_once(spec, mode, cap, probe)
    assert probe.running == 0
    if failing(spec):
        assert result is None
        return
    assert result is not None
    assert result.outputs["answer"] == expected(spec, mode).answer
    # No effect of a lost branch runs; each item of a chosen one runs its effect once.
    dyn_won = spec.router is None or spec.router[2] == "dyn"
    assert probe.effects == (len(spec.item_seconds) - len(spec.fails)) * (spec.effect and dyn_won)
    iterations = min(spec.needed, spec.bound)
    assert probe.announced == [(iterations, iterations)] * dyn_won
    reference = run_once(spec, Mode.SEQUENTIAL, None, Probe())
    assert reference is not None
    assert result.outputs == reference.outputs


@given(spec=specs(), mode=modes)
def test_wall_time_in_virtual_time_is_exact(spec: Spec, mode: Mode) -> None:
    """2."""
    note(repr(spec))
    if failing(spec):
        return
    result = run_once(spec, mode, None, Probe())
    assert result is not None
    assert result.wall_time == expected(spec, mode).wall


@given(spec=specs(), mode=modes, cancel_after=st.integers(0, 12))
def test_outside_cancellation_leaves_nothing_running(
    spec: Spec, mode: Mode, cancel_after: int
) -> None:
    """3."""
    note(repr(spec))
    probe = Probe()
    cancel_at = cancel_after + 0.5  # never on a step boundary (durations are whole seconds)

    async def main() -> None:
        with trio.move_on_after(cancel_at):
            with contextlib.suppress(StepFailedError):
                await build(spec, probe).run(seed=1, mode=mode, speculate=policy(spec))
        # The run stopped the moment it was cancelled, but for effects that had started:
        # they run to their end (the default grace is longer than any of them)...
        assert all(at <= cancel_at for at in probe.effects_at)
        longest_effect = max((s[1] for s in spec.item_seconds if spec.effect), default=0)
        assert trio.current_time() <= cancel_at + longest_effect
        assert probe.running == 0
        # ...and nothing of it is left to wake up: no step, item or iteration starts later.
        started = probe.started
        await trio.sleep(100)
        assert probe.started == started

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert probe.running == 0


@given(
    spec=specs(),
    needed=st.sampled_from([1, 1, 2, 3]),
    cap=st.sampled_from([None, None, 1, 2]),
)
def test_a_guessed_valid_is_kept_only_when_right_and_never_slows_a_run(
    spec: Spec, needed: int, cap: int | None
) -> None:
    """4."""
    spec = attrs.evolve(spec, speculate_loop=True, guess_valid=True, needed=needed)
    note(repr(spec))
    probe = Probe()
    result = run_once(spec, Mode.SPECULATIVE, cap, probe)
    assert probe.running == 0
    if failing(spec):
        assert result is None
        return
    assert result is not None
    want = expected(spec, Mode.SPECULATIVE)
    assert result.outputs["answer"] == want.answer
    dyn_won = spec.router is None or spec.router[2] == "dyn"
    iterations = min(spec.needed, spec.bound)
    # The effect after the loop ran once, on the last iteration, right guess or wrong.
    assert probe.announced == [(iterations, iterations)] * dyn_won
    guesses = [(g.speculated, g.confirmed) for g in result.predicted_values]
    if dyn_won:
        assert guesses == [(True, spec.needed == 1)]
    if cap is None:
        assert result.wall_time == want.wall
        unguessed = run_once(spec, Mode.SPECULATIVE, None, Probe(), guess=False)
        assert unguessed is not None
        assert result.wall_time <= unguessed.wall_time


LETTERS = "abc"
PLAN_SECONDS = (2, 4)
WORK_SECONDS = {"a": 1, "b": 3, "c": 5}  # odd: never ends the instant `plan` does


@given(
    stored=st.lists(st.sampled_from(LETTERS), max_size=4),
    real=st.lists(st.sampled_from(LETTERS), max_size=4),
    plan_seconds=st.sampled_from(PLAN_SECONDS),
    effect=st.booleans(),
)
def test_a_map_on_a_predicted_list_matches_the_reference(
    stored: list[str], real: list[str], plan_seconds: int, effect: bool
) -> None:
    """5. A map over a near match's list: its items start on the predicted list; kept whole
    when the lists are equal, else the real map takes the items both share that finished
    on the guess (none with an effect, which never runs on a guess) and runs the rest."""
    log: list[str] = []

    @step(cache=CacheOptions(semantic="request"))
    async def plan(request: str) -> list[str]:
        await trio.sleep(plan_seconds)
        return stored if request == "Plan?" else real

    @step(effect=effect)
    async def work(task: str) -> str:
        await trio.sleep(WORK_SECONDS[task])
        log.append(task)
        return task.upper()

    flow = Flow([plan, map_(work, over="plan", item="task", into="done")])
    outcome: list[RunResult] = []

    async def main() -> None:
        async with open_cache(embedder=HashingEmbedder()) as cache:
            await flow.run(request="Plan?", cache=cache, speculate=Always())
            log.clear()
            outcome.append(await flow.run(request="plan", cache=cache, speculate=Always()))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    (result,) = outcome
    assert result.outputs["done"] == tuple(task.upper() for task in real)
    if stored == real:
        # Kept whole; an effect waited for the guess to be confirmed (when `plan` ended).
        longest = max((WORK_SECONDS[task] for task in real), default=0)
        wall = plan_seconds + longest if effect else max(plan_seconds, longest)
        ran_after: list[str] = []
    else:
        # Finished on the guess: every stored item shorter than `plan`, unless effects.
        left = [t for t in stored if WORK_SECONDS[t] < plan_seconds and not effect]
        ran_after = []
        for task in real:
            if task in left:
                left.remove(task)
            else:
                ran_after.append(task)
        wall = plan_seconds + max((WORK_SECONDS[task] for task in ran_after), default=0)
    assert result.wall_time == wall
    if effect:
        # Each effect ran once, on the real list only.
        assert sorted(log) == sorted(real)
    reused = [e for e in result.trace if e.step == "done.reused"]
    assert len(reused) == (0 if stored == real else len(real) - len(ran_after))
