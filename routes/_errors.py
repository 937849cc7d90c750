"""The errors specroute raises, all under one root.

The hierarchy (each class says when it is raised)::

    SpecrouteError                     anything specroute raises on purpose
    ├── ConfigurationError             an argument or setting out of range (also a
    │   │                              `ValueError`); raised when the object is built
    │   │                              or before a run starts
    │   └── ConfigurationTypeError     an argument of the wrong kind: a string where a
    │                                  list of names is expected, something that is not
    │                                  a policy, cache, predictor or observer (also a
    │                                  `TypeError`)
    ├── FlowError                      a flow that cannot be built; raised by `Flow(...)`
    │   ├── CycleError                 steps that wait on each other (the cycle is named)
    │   ├── MissingInputError          a value read that nothing produces and no input gives
    │   ├── DuplicateProducerError     two steps could write one value
    │   ├── BranchError                a router's branches do not fit together
    │   ├── StepDefinitionError        a step function or option that cannot run
    │   ├── UnknownInputError          a run input that no step reads, or that a step
    │   │                              already produces
    │   └── UnknownBranchError         a speculation policy names a router or branch that
    │                                  does not exist
    ├── RunError                       a run that started and did not finish
    │   ├── StepFailedError            a step on the winning path raised; `__cause__` is
    │   │                              the step's own exception
    │   ├── UnknownRouteError          a router returned a label with no branch
    │   ├── HandoffError               a router handed over values its branch does not take
    │   ├── RunTimeoutError            the run's own deadline passed
    │   └── ObserverFailedError        the run's observer raised; `__cause__` is its
    │                                  exception
    ├── StepTimeoutError               a step's own deadline passed (the cause of a
    │                                  `StepFailedError`, never raised by `run` itself)
    ├── LoopLimitError                 specroute.engine: a loop hit `max_iterations` (the
    │                                  cause of a `StepFailedError`, like StepTimeoutError)
    ├── CacheError                     specroute.cache: CacheConfigError,
    │                                  UnencodableInputError, UncacheableValueError,
    │                                  SemanticInputError, EmbeddingError,
    │                                  ComputationFailedError, SingleFlightClosedError
    ├── LLMError                       specroute.engine.llm: LLMConfigError,
    │                                  ProviderHTTPError, ProviderConnectionError,
    │                                  ProviderTimeoutError, ProviderResponseError,
    │                                  RetryBudgetExceededError
    └── RunLogError                    specroute.engine.report: a damaged or unknown run
                                       log line, in strict reading

Configuration errors are about one argument's value and are raised where it is given (a
`StepOptions`, a policy, `Flow(...)`, `router(...)`, or `Flow.run` before any step runs);
build-time errors derive from `FlowError` and are about how a flow's parts fit together,
also raised before any step runs; run-time failures derive from `RunError` and are raised
by `Flow.run`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BranchError",
    "ConfigurationError",
    "ConfigurationTypeError",
    "CycleError",
    "DuplicateProducerError",
    "FlowError",
    "HandoffError",
    "MissingInputError",
    "ObserverFailedError",
    "RunError",
    "RunTimeoutError",
    "SpecrouteError",
    "StepDefinitionError",
    "StepFailedError",
    "StepTimeoutError",
    "UnknownBranchError",
    "UnknownInputError",
    "UnknownRouteError",
]


class SpecrouteError(Exception):
    """Root of every error specroute raises on purpose."""


class ConfigurationError(SpecrouteError, ValueError):
    """An argument or setting out of range, refused where it is given: when the object is
    built (`StepOptions`, a policy, `Flow(...)`, `router(...)`) or by `Flow.run` before any
    step runs, whatever the mode. The message names the argument, states the rule and
    echoes the value: "`max_concurrency` must be None, an int >= 1 or a
    trio.CapacityLimiter, got 0".

    It is also a `ValueError`, as `CacheConfigError` is, so code that catches bad arguments
    generically still does. Unlike `FlowError`, it is about one argument, not about how
    the steps of a flow fit together.
    """


class ConfigurationTypeError(ConfigurationError, TypeError):
    """An argument of the wrong kind: a string where a list of names is expected (which
    would otherwise be read letter by letter), or an object that is not a policy, cache,
    predictor or observer. The message says what was expected and how to write it.

    It is also a `TypeError`, and, as a `ConfigurationError`, a `ValueError`: one
    `except ConfigurationError` catches every bad argument.
    """


class FlowError(SpecrouteError):
    """A flow definition that cannot run; raised when the flow is built or a run is set up.

    Unlike `RunError`, nothing has run when this is raised.
    """


class CycleError(FlowError):
    """Steps that wait on each other's values; the message names the cycle."""


class MissingInputError(FlowError):
    """A step reads a value that no step produces and no run input provides."""


class DuplicateProducerError(FlowError):
    """Two steps (or a step and a router's branches) could write the same value."""


class BranchError(FlowError):
    """A router's branches do not fit: no branches, or outputs that differ between them."""


class StepDefinitionError(FlowError):
    """A step that cannot be scheduled: not an `async def`, `*args`, a bad option."""


class UnknownInputError(FlowError):
    """A run input that no step reads (a typo?), or that a step of the flow produces itself."""


class UnknownBranchError(FlowError):
    """A speculation policy names a router or branch label the flow does not have."""


class RunError(SpecrouteError):
    """A run that started and could not finish; every task has stopped when it is raised.

    Attributes:
        concurrent_failures: Other failures recorded while the run was stopping (in the
            same instant as this one, or caused by the same cancellation).
        trace: What ran before the failure, as `TraceEntry` objects (empty if unknown).
    """

    concurrent_failures: tuple[RunError, ...] = ()
    trace: tuple[Any, ...] = ()


class StepFailedError(RunError):
    """A step on the winning path raised.

    The step's own exception is `__cause__`. When several steps fail in the same instant the
    first one recorded is raised and the others are in `concurrent_failures`: a run is one
    computation, so its caller gets one error, never an `ExceptionGroup` (the others are
    consequences or coincidences, and all of them are in the trace).

    Attributes:
        step: The failing step's name.
        branch: The branch path the step ran in (`""` for the top level).
    """

    def __init__(self, message: str, *, step: str, branch: str) -> None:
        super().__init__(message)
        self.step = step
        self.branch = branch


class UnknownRouteError(RunError):
    """A router returned a label that has no branch; the message lists the known labels."""


class HandoffError(RunError):
    """A router handed over values that differ from the names its branch declared."""


class RunTimeoutError(RunError):
    """The deadline given to `Flow.run(timeout=...)` passed; every task was cancelled."""


class ObserverFailedError(RunError):
    """The run's observer (`Flow.run(observer=...)`) raised; its exception is `__cause__`.

    An observer is told of every step on the scheduler's path, so one that breaks would
    otherwise tear through the run's nurseries. Instead the run stops as it does for a
    failing step, and this one error names the observer and the method that raised. The
    observer is told nothing more once it has raised. Unlike `StepFailedError`, no step
    failed: the trace shows each step as it really ended.
    """


class StepTimeoutError(SpecrouteError):
    """A step ran past its own `timeout` option; the cause of a `StepFailedError`."""
