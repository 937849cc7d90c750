"""Step costs measured from a log, and a predictive policy that uses them."""

from __future__ import annotations

import copy
import math
import pickle

import pytest
from report_records import entry, run
from specroute.engine.report import measured_costs
from specroute.routes import (
    ConfigurationError,
    Prediction,
    PredictivePolicy,
    RouterView,
    StepEstimate,
)


def test_costs_are_means_of_the_steps_that_completed() -> None:
    records = [
        run(wall=900, steps=[entry("plan", 0, 400, cost=0.002), entry("write", 400, 900)]),
        run(wall=700, steps=[entry("plan", 0, 600, cost=0.004),
                             entry("write", 0, 100, status="cancelled")]),
    ]  # fmt: skip
    costs = measured_costs(records)
    assert costs["plan"] == pytest.approx((0.5, 0.003))
    assert costs["write"] == pytest.approx((0.5, 0.0))  # the cancelled one does not count
    assert isinstance(costs["plan"], StepEstimate)
    assert costs["plan"].dollars == pytest.approx(0.003)


def test_policy_prefers_measured_costs_to_estimates() -> None:
    router = RouterView(
        name="discovery",
        labels=("generate",),
        branch_sizes={"generate": 2},
        prediction=Prediction(probabilities={"generate": 0.5}),
        branch_estimates={"generate": ((0.4, 0.0), (0.4, 0.0))},  # estimated free
        branch_steps={"generate": ("plan", "write")},
        router_seconds=0.5,
    )
    assert PredictivePolicy(value_of_time=0.001).plan(router) == {"generate": None}
    # Measured, the first step is dear: speculating it no longer pays.
    dear = PredictivePolicy(value_of_time=0.001, costs={"plan": (0.4, 0.01)})
    assert dear.plan(router) == {}


def test_policy_costs_are_step_estimates_from_pairs_or_estimates() -> None:
    policy = PredictivePolicy(
        value_of_time=0.001, costs={"plan": (0.4, 0.01), "write": StepEstimate(1, 0)}
    )
    assert policy.costs == {"plan": StepEstimate(0.4, 0.01), "write": StepEstimate(1.0, 0.0)}
    assert policy.costs["plan"].seconds == 0.4


def test_a_policy_with_costs_copies_and_pickles() -> None:
    policy = PredictivePolicy(value_of_time=0.001, costs={"plan": (0.4, 0.01)})
    assert copy.deepcopy(policy) == policy
    assert pickle.loads(pickle.dumps(policy)) == policy


@pytest.mark.parametrize(
    ("costs", "error", "message"),
    [
        ({"plan": 0.4}, TypeError, r"the cost of step 'plan' in `costs` must be a pair"),
        ({"plan": "12"}, TypeError, r"must be a pair \(seconds, dollars\) of numbers >= 0"),
        ({"plan": ("a", 1)}, TypeError, r"the cost of step 'plan' .* got \('a', 1\)"),
        ({"plan": (1, 2, 3)}, TypeError, r"the cost of step 'plan' .* got \(1, 2, 3\)"),
        ({"plan": (0.4, -0.01)}, ValueError, r"of numbers >= 0, got \(0.4, -0.01\)"),
        ({"plan": (math.nan, 0)}, ValueError, r"of numbers >= 0, got \(nan, 0\)"),
        ([("plan", 0.4)], TypeError, r"`costs` must be a mapping step name -> \(seconds"),
    ],
)
def test_policy_refuses_costs_that_are_not_pairs_of_amounts(
    costs: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as raised:
        PredictivePolicy(value_of_time=0.001, costs=costs)  # type: ignore[arg-type]
    assert isinstance(raised.value, ConfigurationError)
