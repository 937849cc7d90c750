"""Step costs measured from a log, and a predictive policy that uses them."""

from __future__ import annotations

import pytest
from report_records import entry, run
from specroute.engine.report import measured_costs
from specroute.routes import Prediction, PredictivePolicy, RouterView


def test_costs_are_means_of_the_steps_that_completed() -> None:
    records = [
        run(wall=900, steps=[entry("plan", 0, 400, cost=0.002), entry("write", 400, 900)]),
        run(wall=700, steps=[entry("plan", 0, 600, cost=0.004),
                             entry("write", 0, 100, status="cancelled")]),
    ]  # fmt: skip
    costs = measured_costs(records)
    assert costs["plan"] == pytest.approx((0.5, 0.003))
    assert costs["write"] == pytest.approx((0.5, 0.0))  # the cancelled one does not count


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
