"""Route decisions, speculation policies and the error hierarchy: plain synchronous objects."""

from ._errors import BranchError as BranchError
from ._errors import ConfigurationError as ConfigurationError
from ._errors import ConfigurationTypeError as ConfigurationTypeError
from ._errors import CycleError as CycleError
from ._errors import DuplicateProducerError as DuplicateProducerError
from ._errors import FlowError as FlowError
from ._errors import HandoffError as HandoffError
from ._errors import MissingInputError as MissingInputError
from ._errors import ObserverFailedError as ObserverFailedError
from ._errors import RunError as RunError
from ._errors import RunTimeoutError as RunTimeoutError
from ._errors import SpecrouteError as SpecrouteError
from ._errors import StepDefinitionError as StepDefinitionError
from ._errors import StepFailedError as StepFailedError
from ._errors import StepTimeoutError as StepTimeoutError
from ._errors import UnknownBranchError as UnknownBranchError
from ._errors import UnknownInputError as UnknownInputError
from ._errors import UnknownRouteError as UnknownRouteError
from ._learned import LearnedFigure as LearnedFigure
from ._learned import LearnedState as LearnedState
from ._learned import RouterMemory as RouterMemory
from ._learned import StepMemory as StepMemory
from ._learned import process_learned_state as process_learned_state
from ._prediction import Blend as Blend
from ._prediction import PredictivePolicy as PredictivePolicy
from ._prediction import Predictor as Predictor
from ._prediction import RouteStatistics as RouteStatistics
from ._prediction import SimilarityCalibration as SimilarityCalibration
from ._prediction import WasteBudget as WasteBudget
from ._public import show_public_module as _show_public_module
from ._route import Route as Route
from ._speculation import Always as Always
from ._speculation import Branches as Branches
from ._speculation import Never as Never
from ._speculation import Plan as Plan
from ._speculation import PlanReason as PlanReason
from ._speculation import SpeculationPlan as SpeculationPlan
from ._speculation import SpeculationPolicy as SpeculationPolicy
from ._speculation import ValuePolicy as ValuePolicy
from ._view import Prediction as Prediction
from ._view import RouterView as RouterView
from ._view import StepEstimate as StepEstimate
from ._view import ValueView as ValueView

__all__ = [
    "Always",
    "Blend",
    "BranchError",
    "Branches",
    "ConfigurationError",
    "ConfigurationTypeError",
    "CycleError",
    "DuplicateProducerError",
    "FlowError",
    "HandoffError",
    "LearnedFigure",
    "LearnedState",
    "MissingInputError",
    "Never",
    "ObserverFailedError",
    "Plan",
    "PlanReason",
    "Prediction",
    "PredictivePolicy",
    "Predictor",
    "Route",
    "RouteStatistics",
    "RouterMemory",
    "RouterView",
    "RunError",
    "RunTimeoutError",
    "SimilarityCalibration",
    "SpecrouteError",
    "SpeculationPlan",
    "SpeculationPolicy",
    "StepDefinitionError",
    "StepEstimate",
    "StepFailedError",
    "StepMemory",
    "StepTimeoutError",
    "UnknownBranchError",
    "UnknownInputError",
    "UnknownRouteError",
    "ValuePolicy",
    "ValueView",
    "WasteBudget",
    "process_learned_state",
]


_show_public_module(__name__, globals(), __all__)
