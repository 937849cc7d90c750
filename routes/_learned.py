"""What runs learn, kept apart from what a flow is: the learned state a run is given.

A flow, its routers and their predictors are definitions that no run changes. Everything
a run learns for later runs (a predictor's statistics, how often near cache matches were
confirmed) goes into a `LearnedState`. Runs share the process's one state unless given
their own, so a user can look at it, copy it, reset it, or give a test a fresh one.
"""

from __future__ import annotations

import copy
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs

from ._prediction import SimilarityCalibration

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["LearnedState", "RouterMemory", "StepMemory", "process_learned_state"]


@attrs.define(eq=False)
class RouterMemory:
    """What has been learned about one router (by name).

    Attributes:
        predictor: The router's predictor's own figures (plain data it reads and updates
            through `RouterView.memory`).
        calibration: How often this router's near cache matches were confirmed.
    """

    predictor: dict[str, Any] = attrs.field(factory=dict)
    calibration: SimilarityCalibration = attrs.field(factory=SimilarityCalibration)


@attrs.define(eq=False)
class StepMemory:
    """What has been learned about one step's predicted values (by step name): how often
    a semantic near match's value agreed with the value the step really computed.

    Attributes:
        confirmed: Predictions the real value confirmed.
        refuted: Predictions the real value refuted.
    """

    confirmed: int = 0
    refuted: int = 0

    @property
    def settled(self) -> int:
        """Predictions confirmed or refuted so far."""
        return self.confirmed + self.refuted

    @property
    def confirm_rate(self) -> float:
        """How often a prediction was confirmed, Laplace-smoothed (0.5 with no history)."""
        return (self.confirmed + 1) / (self.settled + 2)

    def record(self, confirmed: bool) -> None:
        """Count one settled prediction."""
        if confirmed:
            self.confirmed += 1
        else:
            self.refuted += 1


@attrs.define(eq=False)
class LearnedState:
    """Everything runs learn, per router and step name; give it to `Flow.run(learned=...)`.

    One per process serves every run by default (`process_learned_state()`); make your own
    to keep tenants, experiments or tests apart. Not shared between processes (yet).
    """

    _routers: dict[str, RouterMemory] = attrs.field(init=False, factory=dict)
    _steps: dict[str, StepMemory] = attrs.field(init=False, factory=dict)

    def router(self, name: str) -> RouterMemory:
        """Return the memory of router `name`, made empty on first use.

        Args:
            name: The router step's name.

        Returns:
            Its `RouterMemory`, which runs update in place.
        """
        memory = self._routers.get(name)
        if memory is None:
            memory = self._routers[name] = RouterMemory()
        return memory

    def routers(self) -> Mapping[str, RouterMemory]:
        """Return a read-only view of router name -> memory."""
        return MappingProxyType(self._routers)

    def step(self, name: str) -> StepMemory:
        """Return what was learned about step `name`'s predicted values, made on first use.

        Args:
            name: The step's name.

        Returns:
            Its `StepMemory`, which runs update in place.
        """
        memory = self._steps.get(name)
        if memory is None:
            memory = self._steps[name] = StepMemory()
        return memory

    def steps(self) -> Mapping[str, StepMemory]:
        """Return a read-only view of step name -> memory."""
        return MappingProxyType(self._steps)

    def snapshot(self) -> LearnedState:
        """Return a deep copy, to save or to restore later with `restore`."""
        return copy.deepcopy(self)

    def restore(self, snapshot: LearnedState) -> None:
        """Replace what this state holds with a copy of `snapshot`'s."""
        self._routers = copy.deepcopy(snapshot._routers)
        self._steps = copy.deepcopy(snapshot._steps)

    def reset(self, router: str | None = None, *, step: str | None = None) -> None:
        """Forget everything, or only what was learned about `router` or `step`."""
        if router is None and step is None:
            self._routers.clear()
            self._steps.clear()
        if router is not None:
            self._routers.pop(router, None)
        if step is not None:
            self._steps.pop(step, None)


_PROCESS_STATE = LearnedState()


def process_learned_state() -> LearnedState:
    """Return the state runs use when given none: one per process."""
    return _PROCESS_STATE
