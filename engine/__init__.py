"""The scheduler: steps, flows, runs, speculation and cancellation on trio."""

from ._flow import Flow as Flow
from ._graph import Router as Router
from ._graph import router as router
from ._mode import Mode as Mode
from ._model_predictor import ModelPredictor as ModelPredictor
from ._observer import RunObserver as RunObserver
from ._step import Step as Step
from ._step import StepOptions as StepOptions
from ._step import step as step
from ._trace import RouterDecision as RouterDecision
from ._trace import RouteTaken as RouteTaken
from ._trace import RunResult as RunResult
from ._trace import StepStatus as StepStatus
from ._trace import TraceEntry as TraceEntry
from ._usage import StepUsage as StepUsage

__all__ = [
    "Flow",
    "Mode",
    "ModelPredictor",
    "RouteTaken",
    "Router",
    "RouterDecision",
    "RunObserver",
    "RunResult",
    "Step",
    "StepOptions",
    "StepStatus",
    "StepUsage",
    "TraceEntry",
    "router",
    "step",
]
