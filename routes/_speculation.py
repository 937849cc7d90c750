"""Speculation policies: which branches start beside their router, and how far they may run.

A policy is a plain synchronous object. The engine asks it once per router execution, when the
router starts, and the answer is a `SpeculationPlan`: branch label -> step limit, where `None`
lets the whole branch run before the route is known and an integer `k` lets only the branch's
first `k` steps (in its topological order) start early. Branches missing from the plan start
only if and when their router picks them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

import attrs

from ._errors import ConfigurationError, ConfigurationTypeError, UnknownBranchError

if TYPE_CHECKING:
    from ._view import RouterView, ValueView

__all__ = [
    "Always",
    "Branches",
    "Never",
    "Plan",
    "PlanReason",
    "SpeculationPlan",
    "SpeculationPolicy",
    "ValuePolicy",
]

#: Branch label -> how many of its steps may start before the route is known (None: all).
SpeculationPlan: TypeAlias = Mapping[str, int | None]


@attrs.frozen(kw_only=True)
class PlanReason:
    """Why a policy speculated a branch as far as it did (recorded in the run's trace).

    Attributes:
        probability: The branch's predicted probability.
        steps: Steps speculated (0: none).
        saving: Expected dollars of time saved at that depth.
        waste: Expected dollars wasted at that depth.
        note: Why not, when the answer is no ("budget spent", "no prediction").
    """

    probability: float
    steps: int
    saving: float
    waste: float
    note: str = ""


def _frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


def _frozen_reasons(value: Mapping[str, PlanReason]) -> Mapping[str, PlanReason]:
    # Checked here, where a policy builds them: the run log stores reasons as `PlanReason`s,
    # and a run that wrote anything else would leave a log no one can read back.
    for label, reason in value.items():
        if not isinstance(reason, PlanReason):
            raise ConfigurationTypeError(
                f"the reason for branch {label!r} of a `Plan` must be a PlanReason, got "
                f"{reason!r} (write PlanReason(probability=..., steps=..., saving=..., "
                "waste=..., note=...))"
            )
    return MappingProxyType(dict(value))


# Equality is the mapping's (label -> limit), so a plan equals the dict it stands for.
@attrs.frozen(eq=False)
class Plan(Mapping[str, "int | None"]):
    """A speculation plan with the reasons behind it: a mapping label -> step limit.

    Policies may return any mapping label -> step limit; return a `Plan` to have the
    reasons recorded in the run's router decisions.

    Args:
        limits: Label -> how many of the branch's steps may start early (None: all).
        reasons: Label -> the numbers behind that choice (any label, speculated or not).
    """

    limits: Mapping[str, int | None] = attrs.field(factory=dict, converter=_frozen_mapping)
    reasons: Mapping[str, PlanReason] = attrs.field(factory=dict, converter=_frozen_reasons)

    def __getitem__(self, label: str) -> int | None:
        return self.limits[label]

    def __iter__(self) -> Iterator[str]:
        return iter(self.limits)

    def __len__(self) -> int:
        return len(self.limits)

    def __reduce__(self) -> tuple[type[Plan], tuple[dict[str, int | None], dict[str, PlanReason]]]:
        # Its read-only views do not pickle: it is rebuilt from plain copies (so a policy
        # that holds plans copies, pickles and crosses to a worker process).
        return Plan, (dict(self.limits), dict(self.reasons))


_NO_PLAN = Plan()


class SpeculationPolicy(Protocol):
    """Decides, per router execution, which branches to speculate and how far.

    A policy that is also a `ValuePolicy` (it defines `speculate_value`) decides whether
    predicted values start work early too. Without it, predicted values are never
    speculated: the step computes, and its downstream steps start on its real value.
    """

    def check(self, routers: Mapping[str, tuple[str, ...]]) -> None:
        """Raise `UnknownBranchError` if the policy names a router or label not in `routers`.

        Called before a run starts, with every router of the flow and its labels.
        """

    def plan(self, router: RouterView) -> SpeculationPlan:
        """Return the branches to start beside `router`, each with its step limit."""


@runtime_checkable
class ValuePolicy(Protocol):
    """A speculation policy that also decides on predicted values (`Never`, `Always` and
    `PredictivePolicy` are ones)."""

    def speculate_value(self, value: ValueView) -> bool:
        """Whether a predicted value (a semantic cache near match on a step, a loop's
        predicted "valid") starts the steps downstream of it before the step returns."""


def _check_limit(name: str, limit: int | None) -> None:
    if limit is None:
        return
    message = f"`{name}` must be None (whole branch) or an int >= 1, got {limit!r}"
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise ConfigurationTypeError(message)
    if limit < 1:
        raise ConfigurationError(message)


@attrs.frozen
class Never:
    """Speculate nothing: every branch starts after its router returns."""

    def check(self, routers: Mapping[str, tuple[str, ...]]) -> None:
        """Nothing to check: the policy names no router."""

    def plan(self, router: RouterView) -> SpeculationPlan:
        """Return an empty plan."""
        return _NO_PLAN

    def speculate_value(self, value: ValueView) -> bool:
        """Never start downstream steps on a predicted value."""
        return False


@attrs.frozen(kw_only=True)
class Always:
    """Speculate every branch of every router.

    Args:
        limit: Steps each branch may start before its route is known (None: the whole branch).
    """

    limit: int | None = None

    def __attrs_post_init__(self) -> None:
        _check_limit("limit", self.limit)

    def check(self, routers: Mapping[str, tuple[str, ...]]) -> None:
        """Nothing to check: the policy names no router."""

    def plan(self, router: RouterView) -> SpeculationPlan:
        """Return every label of `router` with this policy's limit."""
        return _every_label(router.labels, self.limit)

    def speculate_value(self, value: ValueView) -> bool:
        """Always start downstream steps on a predicted value (the real value still decides
        what the run returns; a refuted prediction's downstream work is wasted)."""
        return True


@functools.lru_cache(maxsize=256)
def _every_label(labels: tuple[str, ...], limit: int | None) -> Plan:
    # One `Plan` per router's labels, not one per router execution.
    return Plan(dict.fromkeys(labels, limit))


def _normalize(
    plans: Mapping[str, Mapping[str, int | None] | Iterable[str]],
) -> Mapping[str, SpeculationPlan]:
    if not isinstance(plans, Mapping):
        raise ConfigurationTypeError(
            f"`plans` must be a mapping router name -> branches, got {plans!r} "
            f"(write {{'router': ['label']}})"
        )
    result: dict[str, SpeculationPlan] = {}
    for router, plan in plans.items():
        if isinstance(plan, str):
            raise ConfigurationTypeError(
                f"branches for router {router!r} must be a list of labels or a mapping "
                f"label -> limit, got the string {plan!r} (write [{plan!r}])"
            )
        if not isinstance(plan, Iterable):
            raise ConfigurationTypeError(
                f"branches for router {router!r} must be a list of labels or a mapping "
                f"label -> limit, got {plan!r}"
            )
        if isinstance(plan, Mapping):
            normalized = dict(plan)
        else:
            normalized = dict.fromkeys(plan)
        for label, limit in normalized.items():
            _check_limit(f"{router}.{label}", limit)
        result[router] = MappingProxyType(normalized)
    return MappingProxyType(result)


@attrs.frozen
class Branches:
    """Speculate named branches of named routers; anything not named is not speculated.

    Args:
        plans: Router name -> the labels to speculate (a list: whole branches) or a mapping
            label -> step limit (None: whole branch).

    Example:
        `Branches({"discovery": {"generate": 1}})` starts only the first step of the
        `generate` branch beside the `discovery` router.
    """

    plans: Mapping[str, SpeculationPlan] = attrs.field(converter=_normalize)
    # Each router's plan made once: a run records a `Plan`'s frozen limits as they are,
    # where it copies any other mapping.
    _made: Mapping[str, Plan] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        made = {router: Plan(limits=plan) for router, plan in self.plans.items()}
        object.__setattr__(self, "_made", made)

    def check(self, routers: Mapping[str, tuple[str, ...]]) -> None:
        """Raise `UnknownBranchError` naming the first unknown router or label."""
        for router, plan in self.plans.items():
            if router not in routers:
                known = ", ".join(sorted(routers)) or "none"
                raise UnknownBranchError(
                    f"speculation policy names router {router!r}, which the flow does not "
                    f"have (routers: {known})"
                )
            for label in plan:
                if label not in routers[router]:
                    raise UnknownBranchError(
                        f"speculation policy names branch {label!r} of router {router!r}, "
                        f"which has only {', '.join(map(repr, routers[router]))}"
                    )

    def plan(self, router: RouterView) -> SpeculationPlan:
        """Return the plan named for `router` (a `Plan` with no reasons), or nothing."""
        return self._made.get(router.name, _NO_PLAN)

    def __reduce__(self) -> tuple[type[Branches], tuple[dict[str, dict[str, int | None]]]]:
        # Rebuilt from plain copies of its plans, as `Plan` is.
        return Branches, ({router: dict(plan) for router, plan in self.plans.items()},)
