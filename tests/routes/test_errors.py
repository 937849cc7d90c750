"""The error hierarchy (`routes/_errors.py`): one root, build-time beside run-time."""

from __future__ import annotations

import pytest
from specroute.routes import (
    BranchError,
    CycleError,
    DuplicateProducerError,
    FlowError,
    HandoffError,
    MissingInputError,
    RunError,
    RunTimeoutError,
    SpecrouteError,
    StepDefinitionError,
    StepFailedError,
    StepTimeoutError,
    UnknownBranchError,
    UnknownInputError,
    UnknownRouteError,
)

BUILD_ERRORS = (
    CycleError,
    MissingInputError,
    DuplicateProducerError,
    BranchError,
    StepDefinitionError,
    UnknownInputError,
    UnknownBranchError,
)
RUN_ERRORS = (StepFailedError, UnknownRouteError, HandoffError, RunTimeoutError)


@pytest.mark.parametrize("error", BUILD_ERRORS)
def test_build_errors_are_flow_errors_and_not_run_errors(error: type[Exception]) -> None:
    assert issubclass(error, FlowError)
    assert issubclass(error, SpecrouteError)
    assert not issubclass(error, RunError)


@pytest.mark.parametrize("error", RUN_ERRORS)
def test_run_errors_are_run_errors_and_not_flow_errors(error: type[Exception]) -> None:
    assert issubclass(error, RunError)
    assert not issubclass(error, FlowError)


def test_a_step_timeout_is_a_cause_not_a_run_error() -> None:
    assert issubclass(StepTimeoutError, SpecrouteError)
    assert not issubclass(StepTimeoutError, RunError | FlowError)


def test_step_failed_error_names_the_step_and_branch() -> None:
    error = StepFailedError("step 'x' failed", step="x", branch="pick:left")
    assert (error.step, error.branch) == ("x", "pick:left")
    assert str(error) == "step 'x' failed"


def test_run_errors_start_with_no_trace_and_no_concurrent_failures() -> None:
    error = RunTimeoutError("late")
    assert error.trace == ()
    assert error.concurrent_failures == ()
    # Setting one instance's trace leaves the class default alone.
    error.trace = ("entry",)
    assert RunTimeoutError("other").trace == ()


def test_the_root_is_a_plain_exception_not_a_base_exception_only() -> None:
    assert issubclass(SpecrouteError, Exception)
    with pytest.raises(SpecrouteError):
        raise UnknownRouteError("no branch 'up'")
