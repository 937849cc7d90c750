"""specroute: speculative, cancellable dataflow for LLM pipelines on trio.

This is the one namespace a flow author imports from: steps, flows and routers; routes,
speculation policies and predictors; the learned state; cache options and the cache
protocol; the LLM client's entry points; and every error a run can raise. Each name is
defined in exactly one module (`specroute.routes`, `specroute.cache`, `specroute.engine.llm`
or the engine itself) and gathered here, the way `trio` and `httpx` present one namespace.
"""

from specroute.cache import CacheConfigError as CacheConfigError
from specroute.cache import CacheError as CacheError
from specroute.cache import CacheHit as CacheHit
from specroute.cache import CacheMiss as CacheMiss
from specroute.cache import CacheOptions as CacheOptions
from specroute.cache import CacheStatistics as CacheStatistics
from specroute.cache import ComputationFailedError as ComputationFailedError
from specroute.cache import EmbeddingError as EmbeddingError
from specroute.cache import RedisUnavailableError as RedisUnavailableError
from specroute.cache import SemanticInputError as SemanticInputError
from specroute.cache import SingleFlightClosedError as SingleFlightClosedError
from specroute.cache import StepCache as StepCache
from specroute.cache import UncacheableValueError as UncacheableValueError
from specroute.cache import UndecodableValueError as UndecodableValueError
from specroute.cache import UnencodableInputError as UnencodableInputError
from specroute.cache import open_cache as open_cache
from specroute.routes import Always as Always
from specroute.routes import Blend as Blend
from specroute.routes import BranchError as BranchError
from specroute.routes import Branches as Branches
from specroute.routes import ConfigurationError as ConfigurationError
from specroute.routes import ConfigurationTypeError as ConfigurationTypeError
from specroute.routes import CycleError as CycleError
from specroute.routes import DuplicateProducerError as DuplicateProducerError
from specroute.routes import FlowError as FlowError
from specroute.routes import HandoffError as HandoffError
from specroute.routes import LearnedState as LearnedState
from specroute.routes import MissingInputError as MissingInputError
from specroute.routes import Never as Never
from specroute.routes import ObserverFailedError as ObserverFailedError
from specroute.routes import Plan as Plan
from specroute.routes import PlanReason as PlanReason
from specroute.routes import Prediction as Prediction
from specroute.routes import PredictivePolicy as PredictivePolicy
from specroute.routes import Predictor as Predictor
from specroute.routes import Route as Route
from specroute.routes import RouterMemory as RouterMemory
from specroute.routes import RouterView as RouterView
from specroute.routes import RouteStatistics as RouteStatistics
from specroute.routes import RunError as RunError
from specroute.routes import RunTimeoutError as RunTimeoutError
from specroute.routes import SpecrouteError as SpecrouteError
from specroute.routes import SpeculationPolicy as SpeculationPolicy
from specroute.routes import StepDefinitionError as StepDefinitionError
from specroute.routes import StepEstimate as StepEstimate
from specroute.routes import StepFailedError as StepFailedError
from specroute.routes import StepMemory as StepMemory
from specroute.routes import StepTimeoutError as StepTimeoutError
from specroute.routes import UnknownBranchError as UnknownBranchError
from specroute.routes import UnknownInputError as UnknownInputError
from specroute.routes import UnknownRouteError as UnknownRouteError
from specroute.routes import ValuePolicy as ValuePolicy
from specroute.routes import ValueView as ValueView
from specroute.routes import WasteBudget as WasteBudget
from specroute.routes import process_learned_state as process_learned_state
from specroute.routes._public import show_public_module as _show_public_module

from ._asyncio import AsyncioBridgeError as AsyncioBridgeError
from ._asyncio import AsyncioPortal as AsyncioPortal
from ._asyncio import AsyncioPortalStatistics as AsyncioPortalStatistics
from ._asyncio import asyncio_portal as asyncio_portal
from ._asyncio import on_asyncio as on_asyncio
from ._flow import Flow as Flow
from ._graph import Router as Router
from ._graph import router as router
from ._loop import Loop as Loop
from ._loop import LoopLimitError as LoopLimitError
from ._loop import LoopResult as LoopResult
from ._loop import loop as loop
from ._map import ItemFailed as ItemFailed
from ._map import Map as Map
from ._map import map_ as map_
from ._mode import Mode as Mode
from ._model_predictor import ModelPredictor as ModelPredictor
from ._observer import RunObserver as RunObserver
from ._step import DEFAULT_EFFECT_GRACE as DEFAULT_EFFECT_GRACE
from ._step import Step as Step
from ._step import StepOptions as StepOptions
from ._step import step as step
from ._stream import DEFAULT_STREAM_BUFFER as DEFAULT_STREAM_BUFFER
from ._stream import StreamAbortedError as StreamAbortedError
from ._stream import StreamReader as StreamReader
from ._trace import PredictedValue as PredictedValue
from ._trace import RouterDecision as RouterDecision
from ._trace import RouteTaken as RouteTaken
from ._trace import RunResult as RunResult
from ._trace import StepStatus as StepStatus
from ._trace import TraceEntry as TraceEntry
from ._usage import StepUsage as StepUsage
from .llm import FailoverExhaustedError as FailoverExhaustedError
from .llm import LLMConfigError as LLMConfigError
from .llm import LLMError as LLMError
from .llm import Provider as Provider
from .llm import ProviderConnectionError as ProviderConnectionError
from .llm import ProviderHTTPError as ProviderHTTPError
from .llm import ProviderResponseError as ProviderResponseError
from .llm import ProviderTimeoutError as ProviderTimeoutError
from .llm import RetryBudgetExceededError as RetryBudgetExceededError
from .llm import SpendCapExceededError as SpendCapExceededError
from .llm import StreamInterruptedError as StreamInterruptedError
from .llm import StructuredOutputError as StructuredOutputError
from .llm import ToolEffectError as ToolEffectError
from .llm import ToolFailedError as ToolFailedError
from .llm import ToolLoopError as ToolLoopError
from .llm import ToolRoundsExceededError as ToolRoundsExceededError
from .llm import UnknownModelPriceWarning as UnknownModelPriceWarning
from .llm import open_llm_client as open_llm_client

__all__ = [  # noqa: RUF022 -- plain sorted() order, which tests/test_exports.py checks
    "Always",
    "AsyncioBridgeError",
    "AsyncioPortal",
    "AsyncioPortalStatistics",
    "Blend",
    "BranchError",
    "Branches",
    "CacheConfigError",
    "CacheError",
    "CacheHit",
    "CacheMiss",
    "CacheOptions",
    "CacheStatistics",
    "ComputationFailedError",
    "ConfigurationError",
    "ConfigurationTypeError",
    "CycleError",
    "DEFAULT_EFFECT_GRACE",
    "DEFAULT_STREAM_BUFFER",
    "DuplicateProducerError",
    "EmbeddingError",
    "FailoverExhaustedError",
    "Flow",
    "FlowError",
    "HandoffError",
    "ItemFailed",
    "LLMConfigError",
    "LLMError",
    "LearnedState",
    "Loop",
    "LoopLimitError",
    "LoopResult",
    "Map",
    "MissingInputError",
    "Mode",
    "ModelPredictor",
    "Never",
    "ObserverFailedError",
    "Plan",
    "PlanReason",
    "PredictedValue",
    "Prediction",
    "PredictivePolicy",
    "Predictor",
    "Provider",
    "ProviderConnectionError",
    "ProviderHTTPError",
    "ProviderResponseError",
    "ProviderTimeoutError",
    "RedisUnavailableError",
    "RetryBudgetExceededError",
    "Route",
    "RouteStatistics",
    "RouteTaken",
    "Router",
    "RouterDecision",
    "RouterMemory",
    "RouterView",
    "RunError",
    "RunObserver",
    "RunResult",
    "RunTimeoutError",
    "SemanticInputError",
    "SingleFlightClosedError",
    "SpecrouteError",
    "SpeculationPolicy",
    "SpendCapExceededError",
    "Step",
    "StepCache",
    "StepDefinitionError",
    "StepEstimate",
    "StepFailedError",
    "StepMemory",
    "StepOptions",
    "StepStatus",
    "StepTimeoutError",
    "StepUsage",
    "StreamAbortedError",
    "StreamInterruptedError",
    "StreamReader",
    "StructuredOutputError",
    "ToolEffectError",
    "ToolFailedError",
    "ToolLoopError",
    "ToolRoundsExceededError",
    "TraceEntry",
    "UncacheableValueError",
    "UndecodableValueError",
    "UnencodableInputError",
    "UnknownBranchError",
    "UnknownInputError",
    "UnknownModelPriceWarning",
    "UnknownRouteError",
    "ValuePolicy",
    "ValueView",
    "WasteBudget",
    "asyncio_portal",
    "loop",
    "map_",
    "on_asyncio",
    "open_cache",
    "open_llm_client",
    "process_learned_state",
    "router",
    "step",
]


_show_public_module(__name__, globals(), __all__)
