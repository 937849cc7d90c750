"""Predicted values are lossless: random flows, random near matches on random steps, each
right or wrong, checked against the sequential reference.

With the default `agree` (equality), a run returns exactly what the reference computes, no
effect runs on a refuted guess, and a guess never makes a run slower than no guess at all
(a refuted one costs nothing on the critical path; a confirmed one may save time). With a
`agree` that accepts anything, the weaker promise holds: every step's own value is the one
its function computes from the inputs it was given, and only values downstream of an
accepted wrong guess may differ from the reference.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, note
from hypothesis import strategies as st
from specroute.cache import CacheOptions
from specroute.engine import LearnedState, Mode, RunResult
from specroute.routes import Branches, ValueView

from tests.properties.test_speculation import expected_timing
from tests.strategies import (
    FlowSpec,
    GuessingCache,
    Probe,
    StepSpec,
    build,
    flow_specs,
    reference,
    steps_of,
)


@attrs.frozen
class BranchesAndValues(Branches):
    """The spec's branch plans, and every predicted value speculated."""

    def speculate_value(self, value: ValueView) -> bool:
        return True


def branches_and_values(spec: FlowSpec) -> BranchesAndValues:
    return BranchesAndValues({r.name: r.plan for r in spec.routers() if r.plan})


def accept_anything(predicted: Any, real: Any) -> bool:
    return True


@st.composite
def guesses_for(draw: st.DrawFn, spec: FlowSpec) -> dict[str, bool]:
    """Some steps get a near match: right (their real value) or wrong."""
    names = [s.name for s in steps_of(spec)]
    chosen = draw(st.lists(st.sampled_from(names), unique=True)) if names else []
    return {name: draw(st.booleans()) for name in chosen}


def run(
    spec: FlowSpec, guesses: dict[str, bool], mode: Mode, probe: Probe, agree: Any = None
) -> RunResult:
    options = CacheOptions(agree=agree)
    flow = build(spec, probe, cached_steps=dict.fromkeys(guesses, options))

    async def main() -> RunResult:
        return await flow.run(
            mode=mode,
            speculate=branches_and_values(spec),
            cache=GuessingCache(guesses),  # type: ignore[arg-type]
            learned=LearnedState(),
        )

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


@given(spec=flow_specs(failures=False), data=st.data(), mode=st.sampled_from(list(Mode)))
def test_guesses_right_or_wrong_never_change_the_answer(
    spec: FlowSpec, data: st.DataObject, mode: Mode
) -> None:
    note(spec.describe())
    guesses = data.draw(guesses_for(spec), label="guesses")
    ref = reference(spec)
    probe = Probe()
    result = run(spec, guesses, mode, probe)
    assert probe.running == 0
    assert dict(result.values) == ref.values
    assert sorted((t.router, t.label) for t in result.routes) == sorted(ref.routes)
    started = sorted(name for kind, name in probe.effects if kind == "start")
    assert started == sorted(ref.winning_effects)
    # A refuted guess costs nothing on the critical path; a confirmed one may save time.
    assert result.wall_time <= expected_timing(spec, mode).wall + 1e-9
    for guess in result.predicted_values:
        # Settled by the real value: confirmed exactly when the guess was right.
        if guess.confirmed is not None:
            assert guess.confirmed == guesses[guess.step]
        assert guess.speculated <= (mode is Mode.SPECULATIVE)
    if mode is Mode.SPECULATIVE and not any(guesses.values()):
        assert result.wall_time == pytest.approx(expected_timing(spec, mode).wall)


def tainted_values(spec: FlowSpec, wrong: set[str]) -> set[str]:
    """The values computed downstream of a wrong guess (a router's output counts when a
    wrong guess is anywhere in its branches, or a step of its branches reads a value that
    follows one): what an accepting `agree` may change."""
    tainted: set[str] = set()
    sources = set()  # values a wrong guess stood in for, for the steps that read them
    for node in spec.nodes:
        reads = set(node.reads)
        if not isinstance(node, StepSpec):
            for inner in steps_of(FlowSpec((node,))):
                reads.update(inner.reads)
        if reads & (tainted | sources) or (
            not isinstance(node, StepSpec)
            and any(s.name in wrong for s in steps_of(FlowSpec((node,))))
        ):
            tainted.add(node.writes)
        if isinstance(node, StepSpec) and node.name in wrong:
            sources.add(node.writes)
    return tainted


@given(spec=flow_specs(failures=False), data=st.data())
def test_an_accepting_agree_changes_only_what_follows_a_wrong_guess(
    spec: FlowSpec, data: st.DataObject
) -> None:
    note(spec.describe())
    guesses = data.draw(guesses_for(spec), label="guesses")
    ref = reference(spec)
    probe = Probe()
    result = run(spec, guesses, Mode.SPECULATIVE, probe, agree=accept_anything)
    assert probe.running == 0
    tainted = tainted_values(spec, {name for name, right in guesses.items() if not right})
    note(f"tainted: {sorted(tainted)}")
    values = dict(result.values)
    assert values.keys() == ref.values.keys()
    for name, expected in ref.values.items():
        if name not in tainted:
            # A guessed step's own value is always its real one, and so is everything
            # that does not follow an accepted wrong guess.
            assert values[name] == expected, name
    assert sorted((t.router, t.label) for t in result.routes) == sorted(ref.routes)
