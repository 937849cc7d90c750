"""Speculation policies (`routes/_speculation.py`): plans, equality with dicts, `check()`."""

from __future__ import annotations

import copy
import pickle

import pytest
from specroute.routes import (
    Always,
    Branches,
    Never,
    Plan,
    PlanReason,
    RouterView,
    UnknownBranchError,
    ValuePolicy,
)

ROUTERS = {"pick": ("left", "right"), "inner": ("x",)}


def view(name: str = "pick") -> RouterView:
    labels = ROUTERS[name]
    return RouterView(name=name, labels=labels, branch_sizes=dict.fromkeys(labels, 2))


def test_never_plans_nothing_and_checks_nothing() -> None:
    Never().check({})
    assert Never().plan(view()) == {}
    assert isinstance(Never().plan(view()), Plan)


def test_always_plans_every_label_with_its_limit() -> None:
    assert Always().plan(view()) == {"left": None, "right": None}
    assert Always(limit=2).plan(view()) == {"left": 2, "right": 2}
    # One `Plan` per router's labels and limit, made once.
    assert Always(limit=2).plan(view()) is Always(limit=2).plan(view())
    assert isinstance(Always().plan(view("inner")), Plan)


def test_only_policies_that_decide_on_predicted_values_are_value_policies() -> None:
    assert isinstance(Never(), ValuePolicy)
    assert isinstance(Always(), ValuePolicy)
    assert not isinstance(Branches({"pick": ["left"]}), ValuePolicy)


def test_a_plan_refuses_a_reason_that_is_not_a_plan_reason() -> None:
    # The run log stores reasons as `PlanReason`s: anything else would make a log that
    # cannot be read back, so the plan refuses it where the policy builds it.
    with pytest.raises(TypeError, match=r"reason for branch 'left' of a `Plan` must be a Plan"):
        Plan({"left": 1}, {"left": "likely"})  # type: ignore[dict-item]


@pytest.mark.parametrize("limit", [0, -1, 1.5, "2"])
def test_a_limit_must_be_none_or_a_positive_int(limit: object) -> None:
    with pytest.raises(ValueError, match=r"`limit` must be None \(whole branch\) or an int >= 1"):
        Always(limit=limit)  # type: ignore[arg-type]


def test_branches_plans_only_the_router_it_names() -> None:
    policy = Branches({"pick": ["right"], "inner": {"x": 1}})
    assert policy.plan(view("pick")) == {"right": None}
    assert policy.plan(view("inner")) == {"x": 1}
    assert Branches({"inner": ["x"]}).plan(view("pick")) == {}
    # Made once, frozen: a run records its limits without copying them.
    made = policy.plan(view("pick"))
    assert isinstance(made, Plan)
    assert made is policy.plan(view("pick"))
    assert made.reasons == {}
    with pytest.raises(TypeError):
        made.limits["left"] = 1  # type: ignore[index]


def test_branches_refuses_a_bare_string_and_bad_limits() -> None:
    with pytest.raises(TypeError, match=r"write \['right'\]"):
        Branches({"pick": "right"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"`pick.left` must be None"):
        Branches({"pick": {"left": 0}})


def test_branches_equal_when_their_plans_do() -> None:
    assert Branches({"pick": ["left"]}) == Branches({"pick": {"left": None}})
    assert Branches({"pick": ["left"]}) != Branches({"pick": {"left": 1}})


def test_check_names_the_unknown_router_and_the_known_ones() -> None:
    with pytest.raises(UnknownBranchError, match=r"router 'nope'.*\(routers: inner, pick\)"):
        Branches({"nope": ["left"]}).check(ROUTERS)
    with pytest.raises(UnknownBranchError, match=r"\(routers: none\)"):
        Branches({"nope": ["left"]}).check({})


def test_check_names_the_unknown_label_and_the_labels_there_are() -> None:
    with pytest.raises(UnknownBranchError, match=r"branch 'up' of router 'pick'.*'left', 'right'"):
        Branches({"pick": ["up"]}).check(ROUTERS)
    Branches({"pick": ["left"], "inner": {"x": 2}}).check(ROUTERS)


def test_a_plan_equals_the_dict_it_stands_for() -> None:
    reason = PlanReason(probability=0.7, steps=1, saving=0.1, waste=0.01)
    plan = Plan({"left": 1, "right": None}, {"left": reason})
    assert plan == {"left": 1, "right": None}
    assert plan != {"left": 1}
    assert dict(plan) == {"left": 1, "right": None}
    assert len(plan) == 2
    assert plan["left"] == 1
    assert plan.reasons["left"].note == ""


def test_a_plan_is_read_only_and_copies_what_it_was_given() -> None:
    limits: dict[str, int | None] = {"left": 1}
    plan = Plan(limits)
    limits["right"] = None
    assert list(plan) == ["left"]
    with pytest.raises(TypeError):
        plan.limits["left"] = 2  # type: ignore[index]
    assert Plan() == {}


@pytest.mark.parametrize(
    "policy",
    [
        Plan({"left": 1}, {"left": PlanReason(probability=0.7, steps=1, saving=0.1, waste=0.0)}),
        Branches({"pick": {"left": 2, "right": None}, "inner": ["x"]}),
        Always(limit=2),
        Never(),
    ],
)
def test_policies_and_plans_copy_and_pickle(policy: object) -> None:
    # Definitions are values: a worker process or a test gets an equal copy.
    for copied in (copy.deepcopy(policy), pickle.loads(pickle.dumps(policy))):
        assert copied == policy
        assert type(copied) is type(policy)
        if isinstance(policy, Plan):
            assert copied.reasons == policy.reasons  # type: ignore[attr-defined]
