"""Effects are all or nothing: random flows with effects in every position, cancelled from
outside at random moments or stopped by a failing step.

The invariants match the README ("When things go wrong"):

8. An effect that started runs to its end, unless it was still running `effect_grace`
   seconds after the cancellation: then, and only then, it is cut off, at that moment.
9. No effect of a losing branch starts, and none starts once the run is cancelled.
10. The trace says which effects completed: `ok` for each that did, `cancelled` (with its
    grace named in `error`) for each cut off, and never `ok` for one that did not finish.
"""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import given, note
from hypothesis import strategies as st
from specroute.engine import Mode, StepStatus
from specroute.routes import StepFailedError

from tests.strategies import FlowSpec, Probe, build, flow_specs, policy, reference

modes = st.sampled_from(list(Mode))
# Cancels come at whole or half seconds, steps end at whole seconds: with these graces an
# effect is never cut off in the very instant it would end (which way a tie goes is not
# part of the promise).
GRACES = st.sampled_from([None, 0.25, 1.25, 2.75])


def spec_durations(spec: FlowSpec) -> dict[str, int]:
    found: dict[str, int] = {}
    for node in spec.nodes:
        found[node.name] = node.duration
        for branch in getattr(node, "branches", {}).values():
            found.update(spec_durations(branch))
    return found


def check_effects(probe: Probe, durations: dict[str, int], cancel_at: float, grace: float) -> None:
    """8: every effect that started and did not end was cut off at `cancel_at + grace`."""
    ended = {name for kind, name in probe.effects if kind == "end"}
    for name, start in probe.started_at.items():
        if name in ended:
            continue
        # started before the cancellation, and its body needed more than the grace after it
        assert start <= cancel_at, f"{name} started at {start}, after the cancel at {cancel_at}"
        assert start + durations[name] > cancel_at + grace, (
            f"effect {name} started at {start} for {durations[name]}s and was cut off, "
            f"though the run was cancelled at {cancel_at} with a grace of {grace}s"
        )


@given(
    spec=flow_specs(failures=False),
    mode=modes,
    cancel_after=st.integers(0, 20),
    grace=GRACES,
)
def test_outside_cancellation_never_leaves_an_effect_half_done(
    spec: FlowSpec, mode: Mode, cancel_after: int, grace: float | None
) -> None:
    note(spec.describe())
    probe = Probe()
    cancel_at = cancel_after + 0.5  # never on a step boundary (durations are whole seconds)

    async def main() -> None:
        with trio.move_on_after(cancel_at):
            await build(spec, probe, effect_grace=grace).run(mode=mode, speculate=policy(spec))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert probe.running == 0
    # 9. nothing of a losing branch, nothing after the cancel
    assert set(probe.started_at) <= reference(spec).winning_effects
    # 8. (the default grace, 30 s, is longer than any of these steps: all of them finish)
    check_effects(probe, spec_durations(spec), cancel_at, 30.0 if grace is None else grace)


@given(spec=flow_specs(), mode=modes, grace=GRACES)
def test_a_failing_step_never_leaves_an_effect_half_done(
    spec: FlowSpec, mode: Mode, grace: float | None
) -> None:
    note(spec.describe())
    probe = Probe()
    failed: list[StepFailedError] = []

    async def main() -> None:
        try:
            await build(spec, probe, effect_grace=grace).run(mode=mode, speculate=policy(spec))
        except StepFailedError as error:
            failed.append(error)
            failed_at.append(trio.current_time())

    failed_at: list[float] = []
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert probe.running == 0
    if not failed:
        return
    error = failed[0]
    cancel_at = _cancelled_at(error, reference(spec).winning_failures)
    failing = {node for node, dur in spec_durations(spec).items() if _fails(spec, node)}
    durations = spec_durations(spec)
    for name in failing:
        durations.pop(name)  # a failing effect ends by raising, not by finishing
    probe.started_at = {n: t for n, t in probe.started_at.items() if n not in failing}
    check_effects(probe, durations, cancel_at, 30.0 if grace is None else grace)
    # 10. the trace says which effects completed
    ended = {name for kind, name in probe.effects if kind == "end"}
    for entry in error.trace:
        if entry.step in probe.started_at and entry.step not in failing:
            completed = entry.status is StepStatus.OK
            assert completed == (entry.step in ended), entry
            if entry.status is StepStatus.CANCELLED:
                assert "effect_grace" in (entry.error or "")


def _cancelled_at(error: StepFailedError, winning_failures: set[str]) -> float:
    """When the failure became the run's, so the run was cancelled: the failing step's end,
    or, for a step that failed while its branch was still speculative, the moment the
    routers above it chose that branch (the failure surfaces then)."""
    trace = error.trace
    moments = []
    for entry in trace:
        if entry.status is not StepStatus.FAILED or entry.step not in winning_failures:
            continue
        moment = entry.end
        parent = ""
        for part in entry.branch.split("/") if entry.branch else ():
            router = part.split(":")[0]
            moment = max(
                [moment] + [r.end for r in trace if r.step == router and r.branch == parent]
            )
            parent = f"{parent}/{part}" if parent else part
        moments.append(moment)
    return min(moments)


def _fails(spec: FlowSpec, name: str) -> bool:
    for node in spec.nodes:
        if node.name == name:
            return node.fails
        for branch in getattr(node, "branches", {}).values():
            if _fails(branch, name):
                return True
    return False
