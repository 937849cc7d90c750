"""What runs learn, kept apart from what a flow is: the learned state a run is given.

A flow, its routers and their predictors are definitions that no run changes. Everything
a run learns for later runs (a predictor's statistics, how often near cache matches were
confirmed) goes into a `LearnedState`. Runs share the process's one state unless given
their own, so a user can look at it, copy it, reset it, or give a test a fresh one.

Every number a state holds has an address, a `LearnedFigure`: `figures()` lists them and
`update_figures()` sets them. That is what sharing a state between processes builds on
(`specroute.cache.open_shared_learned` pushes each worker's changes and pulls the merged
totals); it reads and writes only plain numbers, never a predictor's other data.
"""

from __future__ import annotations

import copy
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ._prediction import SimilarityCalibration

if TYPE_CHECKING:
    from collections.abc import Hashable, Iterator, Mapping

__all__ = [
    "LearnedFigure",
    "LearnedState",
    "RouterMemory",
    "StepMemory",
    "process_learned_state",
]

#: The kinds of number a `LearnedState` holds (see `LearnedFigure`).
FigureKind = Literal["predictor", "calibration", "step"]
_STEP_FIELDS = ("confirmed", "refuted")


@attrs.frozen
class LearnedFigure:
    """The address of one number a `LearnedState` holds.

    Attributes:
        kind: `"predictor"`: a number in a router's predictor memory; `"calibration"`: a
            router's near-match counts; `"step"`: a step's confirmed or refuted predictions.
        owner: The router's or the step's name.
        path: Where the number is. For a predictor, the keys leading to it through the
            memory's nested dicts (`("counts", None, "search")`); for a calibration,
            `(bucket_width, bucket, "confirmed" | "refuted")`; for a step,
            `("confirmed",)` or `("refuted",)`.
    """

    kind: FigureKind
    owner: str
    path: tuple[Hashable, ...]


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
        to keep tenants, experiments or tests apart. To share one between worker processes, open
    it through Redis with `specroute.cache.open_shared_learned`.
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

    def figures(self) -> dict[LearnedFigure, int | float]:
        """Return every number this state holds, by address; zero counts are left out.

        A predictor's numbers are the `int` and `float` values (not `bool`) found through
        nested dicts in its memory; its other data (strings, lists) is not a figure.

        Returns:
            A new dict of address -> value.
        """
        found: dict[LearnedFigure, int | float] = {}
        for name, memory in self._routers.items():
            for path, value in _numbers(memory.predictor, ()):
                found[LearnedFigure("predictor", name, path)] = value
            calibration = memory.calibration
            # Same package: the calibration's buckets are read here rather than widening
            # its public surface for this one reader.
            for bucket, counts in calibration._counts.items():
                for field, count in zip(_STEP_FIELDS, counts, strict=True):
                    if count:
                        path = (calibration.bucket_width, bucket, field)
                        found[LearnedFigure("calibration", name, path)] = count
        for name, step in self._steps.items():
            for field in _STEP_FIELDS:
                count = getattr(step, field)
                if count:
                    found[LearnedFigure("step", name, (field,))] = count
        return found

    def update_figures(self, values: Mapping[LearnedFigure, int | float]) -> set[LearnedFigure]:
        """Set the numbers at the given addresses; a value of 0 removes the number.

        Memories and nested predictor dicts are made as needed. A calibration figure whose
        bucket width is not the router's calibration's width, or a predictor figure whose
        path runs through a value that is not a dict, cannot be set and is returned.

        Args:
            values: Address -> new value.

        Returns:
            The addresses that could not be set.
        """
        skipped: set[LearnedFigure] = set()
        for figure, value in values.items():
            if not _set(self, figure, value):
                skipped.add(figure)
        return skipped

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


def _numbers(
    memory: Mapping[Any, Any], path: tuple[Hashable, ...]
) -> Iterator[tuple[tuple[Hashable, ...], int | float]]:
    """The (path, number) of each number in nested dicts."""
    for key, value in memory.items():
        if isinstance(value, dict):
            yield from _numbers(value, (*path, key))
        elif isinstance(value, int | float) and not isinstance(value, bool) and value:
            yield (*path, key), value


def _set(state: LearnedState, figure: LearnedFigure, value: int | float) -> bool:
    """Set one figure; say whether it could be."""
    path = figure.path
    if figure.kind == "step":
        if len(path) != 1 or path[0] not in _STEP_FIELDS:
            return False
        setattr(state.step(figure.owner), str(path[0]), int(value))
        return True
    if not value and figure.owner not in state._routers:
        return True
    memory = state.router(figure.owner)
    if figure.kind == "calibration":
        calibration = memory.calibration
        if len(path) != 3 or path[0] != calibration.bucket_width or path[2] not in _STEP_FIELDS:
            return False
        bucket = path[1]
        if not isinstance(bucket, int) or isinstance(bucket, bool):
            return False
        counts = calibration._counts.setdefault(bucket, [0, 0])
        counts[_STEP_FIELDS.index(str(path[2]))] = int(value)
        if counts == [0, 0]:
            del calibration._counts[bucket]
        return True
    if not path:
        return False
    *parents, last = figure.path
    node: Any = memory.predictor
    for key in parents:
        node = node.get(key) if not value else node.setdefault(key, {})
        if not isinstance(node, dict):
            # A zero for a number that is not there is already so; else a non-dict is in
            # the way.
            return not value and node is None
    if value:
        node[last] = value
    else:
        node.pop(last, None)
    return True


_PROCESS_STATE = LearnedState()


def process_learned_state() -> LearnedState:
    """Return the state runs use when given none: one per process."""
    return _PROCESS_STATE
