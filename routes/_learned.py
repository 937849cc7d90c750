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

__all__ = ["LearnedState", "RouterMemory", "process_learned_state"]


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
class LearnedState:
    """Everything runs learn, per router name; give it to `Flow.run(learned=...)`.

    One per process serves every run by default (`process_learned_state()`); make your own
    to keep tenants, experiments or tests apart. Not shared between processes (yet).
    """

    _routers: dict[str, RouterMemory] = attrs.field(init=False, factory=dict)

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

    def snapshot(self) -> LearnedState:
        """Return a deep copy, to save or to restore later with `restore`."""
        return copy.deepcopy(self)

    def restore(self, snapshot: LearnedState) -> None:
        """Replace what this state holds with a copy of `snapshot`'s."""
        self._routers = copy.deepcopy(snapshot._routers)

    def reset(self, router: str | None = None) -> None:
        """Forget everything, or only what was learned about `router`."""
        if router is None:
            self._routers.clear()
        else:
            self._routers.pop(router, None)


_PROCESS_STATE = LearnedState()


def process_learned_state() -> LearnedState:
    """Return the state runs use when given none: one per process."""
    return _PROCESS_STATE
