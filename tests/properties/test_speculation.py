"""Speculation is lossless: random flows, every mode, checked against a sequential reference.

The timing model below is written from the rules in the README, not from the scheduler: a
node starts when its inputs exist and its branch has begun; a speculated branch begins with
its router, another when its router returns; past its step limit a branch waits to be
chosen; an effect waits until every enclosing branch is confirmed; a losing branch stops
the moment its router returns.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import attrs
import pytest
import trio
import trio.testing
from hypothesis import example, given, note
from hypothesis import strategies as st
from specroute.engine import Mode, RunResult
from specroute.routes import PredictivePolicy, StepFailedError

from tests.strategies import (
    INF,
    AdversarialCache,
    FlowSpec,
    Probe,
    RouterSpec,
    StepSpec,
    build,
    flow_specs,
    policy,
    predictions_for,
    reference,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

NOT_PLANNED = object()


@attrs.define
class Timing:
    wall: float = 0.0
    wasted: float = 0.0

    def account(self, committed: bool, start: float, end: float) -> None:
        if committed:
            self.wall = max(self.wall, end)
        else:
            self.wasted += end - start


def simulate(
    spec: FlowSpec,
    lookup: Callable[[str], float],
    timing: Timing,
    *,
    speculate: bool,
    begin: float = 0.0,
    chosen_at: float = 0.0,
    confirm_at: float = 0.0,
    cancel_at: float = INF,
    limit: int | None = None,
    committed: bool = True,
    plans: Mapping[str, Mapping[str, int | None]] | None = None,
) -> dict[str, float]:
    """When each value of `spec` becomes available; adds up wall and wasted time."""
    local: dict[str, float] = {}

    def available(name: str) -> float:
        return local[name] if name in local else lookup(name)

    for index, node in enumerate(spec.nodes):
        start = max([begin, *(available(name) for name in node.reads)])
        if limit is not None and index >= limit:
            start = max(start, chosen_at)
        if getattr(node, "effect", False):
            start = max(start, confirm_at)
        if start >= cancel_at or start == INF:
            local[node.writes] = INF
            continue
        end = start + node.duration
        timing.account(committed, start, min(end, cancel_at))
        if not isinstance(node, RouterSpec):
            local[node.writes] = end if end < cancel_at or committed else INF
            continue
        decided = end < cancel_at or committed
        local[node.writes] = INF
        for label, branch in node.branches.items():
            won = decided and label == node.choice
            planned = node.plan if plans is None else plans.get(node.name, {})
            step_limit = planned.get(label, NOT_PLANNED) if speculate else NOT_PLANNED
            if step_limit is not NOT_PLANNED:
                branch_begin = start
            elif won:
                branch_begin, step_limit = end, None
            else:
                continue
            times = simulate(
                branch,
                available,
                timing,
                speculate=speculate,
                begin=branch_begin,
                chosen_at=end if won else INF,
                confirm_at=max(end, confirm_at) if won else INF,
                cancel_at=cancel_at if won else min(end, cancel_at),
                limit=step_limit,  # type: ignore[arg-type]
                committed=committed and won,
                plans=plans,
            )
            if won:
                local[node.writes] = max(end, times[node.writes])
    return local


def expected_timing(
    spec: FlowSpec, mode: Mode, plans: Mapping[str, Mapping[str, int | None]] | None = None
) -> Timing:
    """Wall and wasted time; `plans` replaces the spec's own speculation plans."""
    if mode is Mode.SEQUENTIAL:
        # One step at a time: the sum of what the sequential reference runs; nothing wasted.
        return Timing(wall=reference(spec).sequential_time)
    timing = Timing()
    simulate(spec, lambda name: math.nan, timing, speculate=mode is Mode.SPECULATIVE, plans=plans)
    return timing


async def run_spec(spec: FlowSpec, mode: Mode, probe: Probe) -> RunResult:
    flow = build(spec, probe)
    return await flow.run(mode=mode, speculate=policy(spec))


def run_in_virtual_time(spec: FlowSpec, mode: Mode, probe: Probe) -> RunResult | StepFailedError:
    async def main() -> RunResult | StepFailedError:
        try:
            return await run_spec(spec, mode, probe)
        except StepFailedError as error:
            return error

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


modes = st.sampled_from(list(Mode))

# A losing branch speculated only one step deep: its second step must wait, not run.
STEP_LIMITED_LOSER = FlowSpec(
    (
        RouterSpec(
            "r0", (), 3, "b",
            {"a": FlowSpec((StepSpec("r0a_s0", (), 1), StepSpec("r0a_s1", (), 1),
                            StepSpec("r0a_out", (), 1, output="o_r0"))),
             "b": FlowSpec((StepSpec("r0b_out", (), 1, output="o_r0"),))},
            {"a": 1},
        ),
    )
)  # fmt: skip


@given(spec=flow_specs(failures=False), mode=modes)
@example(spec=STEP_LIMITED_LOSER, mode=Mode.SPECULATIVE)
def test_speculation_is_lossless_and_timed_exactly(spec: FlowSpec, mode: Mode) -> None:
    note(spec.describe())
    ref = reference(spec)
    probe = Probe()
    outcome = run_in_virtual_time(spec, mode, probe)
    assert not isinstance(outcome, StepFailedError), outcome
    # 5. nothing is left running
    assert probe.running == 0
    # 1. same values and routes as the sequential reference (no loser's value is visible)
    assert dict(outcome.values) == ref.values
    assert sorted((t.router, t.label) for t in outcome.routes) == sorted(ref.routes)
    # 3. no effect of a losing branch started; every winning effect ran exactly once
    assert sorted(name for kind, name in probe.effects if kind == "start") == sorted(
        ref.winning_effects
    )
    assert sorted(name for kind, name in probe.effects if kind == "end") == sorted(
        ref.winning_effects
    )
    # 2. wall time equals the critical path from the durations and routing
    timing = expected_timing(spec, mode)
    assert outcome.wall_time == pytest.approx(timing.wall)
    # 6. wasted time is the time spent in branches that lost, and nothing else
    assert outcome.wasted_time == pytest.approx(timing.wasted)
    assert outcome.sequential_time == pytest.approx(ref.sequential_time)


@given(spec=flow_specs(), mode=modes)
def test_only_winning_failures_fail_the_run(spec: FlowSpec, mode: Mode) -> None:
    note(spec.describe())
    ref = reference(spec)
    probe = Probe()
    outcome = run_in_virtual_time(spec, mode, probe)
    # 5. nothing is left running, whatever happened
    assert probe.running == 0
    # 3. no effect of a losing branch ever started
    assert {name for kind, name in probe.effects if kind == "start"} <= ref.winning_effects
    if isinstance(outcome, StepFailedError):
        # 4. a winner's failure fails the run, naming a failing step of the winning path
        assert ref.failed is not None, f"run failed at {outcome.step}; reference succeeded"
        assert outcome.step in ref.winning_failures
        assert outcome.trace
    else:
        # 4. a losing branch's failure never fails the run
        assert ref.failed is None, f"reference fails at {ref.failed}; the run did not fail"
        assert dict(outcome.values) == ref.values


@given(spec=flow_specs(failures=False), mode=modes, cancel_after=st.integers(0, 30))
def test_outside_cancellation_leaves_nothing_running(
    spec: FlowSpec, mode: Mode, cancel_after: int
) -> None:
    note(spec.describe())
    ref = reference(spec)
    probe = Probe()
    finished: list[RunResult] = []
    cancel_at = cancel_after + 0.5  # never on a step boundary (durations are whole seconds)

    async def main() -> None:
        with trio.move_on_after(cancel_at):
            finished.append(await run_spec(spec, mode, probe))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    # 7. nothing runs after the cancellation, no losing effect started, and every effect the
    # model says finished before the cancel did finish (nothing committed is lost)
    assert probe.running == 0
    started = {name for kind, name in probe.effects if kind == "start"}
    assert started <= ref.winning_effects
    timing = expected_timing(spec, mode)
    if timing.wall < cancel_at:
        assert finished
        assert dict(finished[0].values) == ref.values
    else:
        assert not finished


@given(
    spec=flow_specs(failures=False),
    data=st.data(),
    value_of_time=st.sampled_from([0.0, 0.0005, 0.002, 1.0]),
)
def test_any_predictor_or_near_match_leaves_the_answer_alone(
    spec: FlowSpec, data: st.DataObject, value_of_time: float
) -> None:
    """Random and adversarial predictions, and near matches predicting any label, never
    change what a run returns; time and waste follow from the plans the policy chose."""
    note(spec.describe())
    predictions = data.draw(predictions_for(spec), label="predictions")
    routers = [r.name for r in spec.routers()]
    near = data.draw(
        st.fixed_dictionaries(
            {},
            optional={
                name: st.sampled_from(list(r.branches)) for r in spec.routers() for name in [r.name]
            },
        ),
        label="near matches",
    )
    ref = reference(spec)
    probe = Probe()
    flow = build(spec, probe, predictions=predictions, cached_routers=frozenset(near))

    async def main() -> RunResult:
        return await flow.run(
            speculate=PredictivePolicy(value_of_time=value_of_time),
            cache=AdversarialCache(dict(near)),  # type: ignore[arg-type]
        )

    result = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert probe.running == 0
    assert dict(result.values) == ref.values
    assert sorted((t.router, t.label) for t in result.routes) == sorted(ref.routes)
    assert {n for kind, n in probe.effects if kind == "start"} == ref.winning_effects
    decided = {d.router for d in result.decisions}
    assert decided <= set(routers)
    # a verified near match always starts its predicted branch
    for decision in result.decisions:
        if decision.router in near:
            assert decision.cache == "semantic (verified)"
            assert near[decision.router] in decision.plan
    plans = {d.router: dict(d.plan) for d in result.decisions}
    timing = expected_timing(spec, Mode.SPECULATIVE, plans)
    assert result.wall_time == pytest.approx(timing.wall)
    assert result.wasted_time == pytest.approx(timing.wasted)
