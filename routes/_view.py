"""What a speculation policy or predictor sees: of a router (`RouterView`, `Prediction`)
and of a predicted step value (`ValueView`)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs

from ._errors import ConfigurationTypeError

if TYPE_CHECKING:
    from collections.abc import MutableMapping

__all__ = ["Prediction", "RouterView", "StepEstimate", "ValueView"]


def _probabilities(values: Mapping[str, float]) -> Mapping[str, float]:
    for label, probability in values.items():
        if not (isinstance(probability, int | float) and 0.0 <= probability <= 1.0):
            raise ValueError(f"probability of {label!r} must be in [0, 1], got {probability!r}")
    if sum(values.values()) > 1.0 + 1e-9:
        raise ValueError(f"probabilities must sum to at most 1, got {dict(values)!r}")
    return MappingProxyType(dict(values))


def _handoff_values(values: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Mapping[str, Any]]:
    if not isinstance(values, Mapping):
        raise ConfigurationTypeError(
            f"`values` must map a label to the values its branch is handed, got {values!r}"
        )
    for label, handed in values.items():
        if not isinstance(handed, Mapping):
            raise ConfigurationTypeError(
                f"`values[{label!r}]` must map handoff names to predicted values, got {handed!r}"
            )
    return MappingProxyType({label: MappingProxyType(dict(v)) for label, v in values.items()})


class StepEstimate(NamedTuple):
    """What one step is expected to cost: a tuple, so `seconds, dollars = estimate` works.

    Attributes:
        seconds: Its expected duration.
        dollars: Its expected cost.
    """

    seconds: float
    dollars: float


@attrs.frozen(kw_only=True)
class Prediction:
    """How likely each label of a router is, before the router returns.

    Attributes:
        probabilities: Label -> probability in [0, 1]; together at most 1 (the rest is
            "don't know").
        source: Who predicted it, for the trace ("statistics", "semantic cache", ...).
        parts: The predictions it was made of (`Blend`), in the blended predictors' order,
            so each is told how its own guess fared.
        values: Label -> the values the router is predicted to hand that branch (its
            `handoff`): a speculated branch starts the steps that read them at once,
            instead of waiting for the router. Kept when the router's real `Route` agrees
            (equal values, or the router's `CacheOptions(agree=...)`), else the branch
            starts again on the real values. Only complete sets count: a label's values
            must name exactly the branch's handoff.
    """

    probabilities: Mapping[str, float] = attrs.field(converter=_probabilities)
    source: str = ""
    parts: tuple[Prediction, ...] = ()
    values: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict, converter=_handoff_values)

    @property
    def likeliest(self) -> str | None:
        """The most probable label, or None for an empty prediction."""
        if not self.probabilities:
            return None
        return max(self.probabilities, key=lambda label: self.probabilities[label])


@attrs.frozen(kw_only=True)
class RouterView:
    """What a policy may know about a router when it starts.

    Attributes:
        name: The router step's name.
        labels: The router's branch labels, in declaration order.
        branch_sizes: Label -> number of steps (and nested routers) in that branch.
        prediction: What the router's predictor (or a semantic cache hit) expects, if any.
        branch_estimates: Label -> what each step of the branch is expected to cost,
            in its order (from `StepOptions.estimated_seconds` / `estimated_dollars`).
        branch_steps: Label -> the names of the branch's steps, in the same order.
        router_seconds: The router step's expected duration: the most speculation can hide.
        now: `trio.current_time()` when the router started.
        memory: What the run's `LearnedState` keeps for this router's predictor: plain
            data the predictor reads and updates (see `Predictor`).
    """

    name: str
    labels: tuple[str, ...]
    branch_sizes: Mapping[str, int]
    prediction: Prediction | None = None
    branch_estimates: Mapping[str, tuple[StepEstimate, ...]] = attrs.field(factory=dict)
    branch_steps: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    router_seconds: float = 0.0
    now: float = 0.0
    memory: MutableMapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.frozen(kw_only=True)
class ValueView:
    """What a speculation policy sees of a predicted step value: a semantic cache near
    match that could start the steps downstream of `step` before the step returns.

    Attributes:
        step: The step's name.
        similarity: How near the match is (cosine similarity).
        confirm_rate: How often this step's predicted values were confirmed by its real
            value (`agree`), Laplace-smoothed: 0.5 with no history.
        settled: How many of its predictions were confirmed or refuted so far.
        step_seconds: The step's expected duration: the most speculation can hide.
        downstream_steps: The names of the steps that would start on the prediction, in
            topological order.
        downstream_estimates: What each of them is expected to cost, in that order.
        now: `trio.current_time()` when the prediction was made.
    """

    step: str
    similarity: float
    confirm_rate: float
    settled: int
    step_seconds: float = 0.0
    downstream_steps: tuple[str, ...] = ()
    downstream_estimates: tuple[StepEstimate, ...] = ()
    now: float = 0.0
