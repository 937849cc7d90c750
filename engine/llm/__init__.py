"""LLM calls over httpx: OpenAI-compatible and Anthropic clients, limits, retries, prices.

Every client is made one way, `open_llm_client(provider)`: with `Provider.simulated()`
(offline, no key), `Provider.openai()`, `Provider.anthropic()`, or `Provider(format=...)` for
another API's `WireFormat`. Every call is recorded in a `UsageMeter`, cancelled ones included
(see `record_usage`). `HTTPEmbedder` embeds through a provider, sharing its key and limits.
`structured` asks for an answer that fits a JSON schema (or an attrs class) and validates it;
`run_tool_loop` lets the model call `Tool`s, in a bounded loop whose executions a run traces.
"""

from specroute.routes._public import show_public_module as _show_public_module

from ._anthropic import DEFAULT_ANTHROPIC_BASE_URL as DEFAULT_ANTHROPIC_BASE_URL
from ._anthropic import AnthropicFormat as AnthropicFormat
from ._bounds import DEFAULT_BOUNDS as DEFAULT_BOUNDS
from ._bounds import AnswerBounds as AnswerBounds
from ._client import DEFAULT_HTTP_TIMEOUT as DEFAULT_HTTP_TIMEOUT
from ._client import DEFAULT_MAX_TOKENS as DEFAULT_MAX_TOKENS
from ._client import DEFAULT_STREAM_MIN_TOKENS as DEFAULT_STREAM_MIN_TOKENS
from ._client import Completion as Completion
from ._client import LLMClient as LLMClient
from ._client import RetryEvent as RetryEvent
from ._client import open_llm_client as open_llm_client
from ._deprecated import __getattr__ as __getattr__
from ._embedder import DEFAULT_EMBEDDINGS_TIMEOUT as DEFAULT_EMBEDDINGS_TIMEOUT
from ._embedder import HTTPEmbedder as HTTPEmbedder
from ._errors import LLMConfigError as LLMConfigError
from ._errors import LLMError as LLMError
from ._errors import ProviderConnectionError as ProviderConnectionError
from ._errors import ProviderHTTPError as ProviderHTTPError
from ._errors import ProviderResponseError as ProviderResponseError
from ._errors import ProviderTimeoutError as ProviderTimeoutError
from ._errors import RetryBudgetExceededError as RetryBudgetExceededError
from ._errors import SpendCapExceededError as SpendCapExceededError
from ._failover import DEFAULT_BREAKER as DEFAULT_BREAKER
from ._failover import Breaker as Breaker
from ._failover import Failover as Failover
from ._failover import FailoverExhaustedError as FailoverExhaustedError
from ._failover import FailoverStatistics as FailoverStatistics
from ._failover import Target as Target
from ._failover import TargetStatistics as TargetStatistics
from ._hedge import DEFAULT_HEDGE_MIN_SAMPLES as DEFAULT_HEDGE_MIN_SAMPLES
from ._hedge import Hedge as Hedge
from ._hedge import HedgeState as HedgeState
from ._hedge import HedgeStatistics as HedgeStatistics
from ._hedge import hedging as hedging
from ._hedge import no_hedging as no_hedging
from ._hedge import process_hedge_state as process_hedge_state
from ._jsonschema import SchemaViolation as SchemaViolation
from ._jsonschema import schema_of as schema_of
from ._jsonschema import validate_json as validate_json
from ._latency import DEFAULT_LATENCY_WINDOW as DEFAULT_LATENCY_WINDOW
from ._latency import LatencyWindow as LatencyWindow
from ._limits import DEFAULT_LIMITS as DEFAULT_LIMITS
from ._limits import ProviderLimits as ProviderLimits
from ._limits import ProviderStatistics as ProviderStatistics
from ._messages import Message as Message
from ._messages import MessageLike as MessageLike
from ._messages import Role as Role
from ._messages import ToolCall as ToolCall
from ._meter import DEFAULT_MAX_RECORDS as DEFAULT_MAX_RECORDS
from ._meter import Attempt as Attempt
from ._meter import CallRecord as CallRecord
from ._meter import CallStatus as CallStatus
from ._meter import HedgeRole as HedgeRole
from ._meter import UsageMeter as UsageMeter
from ._meter import UsageStatistics as UsageStatistics
from ._meter import record_usage as record_usage
from ._openai import DEFAULT_OPENAI_BASE_URL as DEFAULT_OPENAI_BASE_URL
from ._openai import OpenAIFormat as OpenAIFormat
from ._prices import DEFAULT_PRICES as DEFAULT_PRICES
from ._prices import PRICES_AS_OF as PRICES_AS_OF
from ._prices import ModelPrice as ModelPrice
from ._prices import PriceTable as PriceTable
from ._prices import UnknownModelPriceWarning as UnknownModelPriceWarning
from ._provider import Provider as Provider
from ._retry import DEFAULT_RETRY as DEFAULT_RETRY
from ._retry import RetryPolicy as RetryPolicy
from ._shared_hedge import SharedHedgeState as SharedHedgeState
from ._shared_hedge import open_shared_hedge_state as open_shared_hedge_state
from ._shared_limits import SharedLimits as SharedLimits
from ._shared_limits import SharedLimitsConfig as SharedLimitsConfig
from ._shared_limits import SharedLimitsStatistics as SharedLimitsStatistics
from ._simulated import SIMULATED_PRICES as SIMULATED_PRICES
from ._simulated import SimulatedModel as SimulatedModel
from ._simulated import SimulatedStatistics as SimulatedStatistics
from ._simulated import SimulatedTransport as SimulatedTransport
from ._spend import SharedSpendLedger as SharedSpendLedger
from ._spend import SpendCap as SpendCap
from ._spend import Spending as Spending
from ._spend import SpendLedger as SpendLedger
from ._spend import spend_caps as spend_caps
from ._sse import ServerSentEvent as ServerSentEvent
from ._sse import SSEDecoder as SSEDecoder
from ._streaming import StreamInterruptedError as StreamInterruptedError
from ._structured import DEFAULT_STRUCTURED_RETRIES as DEFAULT_STRUCTURED_RETRIES
from ._structured import Structured as Structured
from ._structured import StructuredOutputError as StructuredOutputError
from ._structured import output_schema as output_schema
from ._structured import structured as structured
from ._tools import DEFAULT_MAX_TOOL_ROUNDS as DEFAULT_MAX_TOOL_ROUNDS
from ._tools import ToolEffectError as ToolEffectError
from ._tools import ToolFailedError as ToolFailedError
from ._tools import ToolLoopError as ToolLoopError
from ._tools import ToolLoopResult as ToolLoopResult
from ._tools import ToolObserver as ToolObserver
from ._tools import ToolRecord as ToolRecord
from ._tools import ToolRoundsExceededError as ToolRoundsExceededError
from ._tools import observe_tools as observe_tools
from ._tools import run_tool_loop as run_tool_loop
from ._toolspec import OutputSchema as OutputSchema
from ._toolspec import Tool as Tool
from ._toolspec import ToolSpec as ToolSpec
from ._toolspec import call_dependencies as call_dependencies
from ._toolspec import tool as tool
from ._usage import Usage as Usage
from ._usage import estimate_prompt_tokens as estimate_prompt_tokens
from ._usage import estimate_tokens as estimate_tokens
from ._wire import Progress as Progress
from ._wire import StreamDecoder as StreamDecoder
from ._wire import WireFormat as WireFormat

# Plain `sorted()` order, which tests/test_exports.py checks; ruff's RUF022 wants isort order.
__all__ = [  # noqa: RUF022
    "AnswerBounds",
    "AnthropicFormat",
    "Attempt",
    "Breaker",
    "CallRecord",
    "CallStatus",
    "Completion",
    "DEFAULT_ANTHROPIC_BASE_URL",
    "DEFAULT_BOUNDS",
    "DEFAULT_BREAKER",
    "DEFAULT_EMBEDDINGS_TIMEOUT",
    "DEFAULT_HEDGE_MIN_SAMPLES",
    "DEFAULT_HTTP_TIMEOUT",
    "DEFAULT_LATENCY_WINDOW",
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_RECORDS",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_MAX_TOOL_ROUNDS",
    "DEFAULT_OPENAI_BASE_URL",
    "DEFAULT_PRICES",
    "DEFAULT_RETRY",
    "DEFAULT_STREAM_MIN_TOKENS",
    "DEFAULT_STRUCTURED_RETRIES",
    "Failover",
    "FailoverExhaustedError",
    "FailoverStatistics",
    "HTTPEmbedder",
    "Hedge",
    "HedgeRole",
    "HedgeState",
    "HedgeStatistics",
    "LLMClient",
    "LLMConfigError",
    "LLMError",
    "LatencyWindow",
    "Message",
    "MessageLike",
    "ModelPrice",
    "OpenAIFormat",
    "OutputSchema",
    "PRICES_AS_OF",
    "PriceTable",
    "Progress",
    "Provider",
    "ProviderConnectionError",
    "ProviderHTTPError",
    "ProviderLimits",
    "ProviderResponseError",
    "ProviderStatistics",
    "ProviderTimeoutError",
    "RetryBudgetExceededError",
    "RetryEvent",
    "RetryPolicy",
    "Role",
    "SIMULATED_PRICES",
    "SSEDecoder",
    "SchemaViolation",
    "ServerSentEvent",
    "SharedHedgeState",
    "SharedLimits",
    "SharedLimitsConfig",
    "SharedLimitsStatistics",
    "SharedSpendLedger",
    "SimulatedModel",
    "SimulatedStatistics",
    "SimulatedTransport",
    "SpendCap",
    "SpendCapExceededError",
    "SpendLedger",
    "Spending",
    "StreamDecoder",
    "StreamInterruptedError",
    "Structured",
    "StructuredOutputError",
    "Target",
    "TargetStatistics",
    "Tool",
    "ToolCall",
    "ToolEffectError",
    "ToolFailedError",
    "ToolLoopError",
    "ToolLoopResult",
    "ToolObserver",
    "ToolRecord",
    "ToolRoundsExceededError",
    "ToolSpec",
    "UnknownModelPriceWarning",
    "Usage",
    "UsageMeter",
    "UsageStatistics",
    "WireFormat",
    "call_dependencies",
    "estimate_prompt_tokens",
    "estimate_tokens",
    "hedging",
    "no_hedging",
    "observe_tools",
    "open_llm_client",
    "open_shared_hedge_state",
    "output_schema",
    "process_hedge_state",
    "record_usage",
    "run_tool_loop",
    "schema_of",
    "spend_caps",
    "structured",
    "tool",
    "validate_json",
]


_show_public_module(__name__, globals(), __all__)
