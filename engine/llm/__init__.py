"""LLM calls over httpx: OpenAI-compatible and Anthropic clients, limits, retries, prices.

Every client is made one way, `open_llm_client(provider)`: with `Provider.simulated()`
(offline, no key), `Provider.openai()`, `Provider.anthropic()`, or `Provider(format=...)` for
another API's `WireFormat`. Every call is recorded in a `UsageMeter`, cancelled ones included
(see `record_usage`). `HTTPEmbedder` embeds through a provider, sharing its key and limits.
"""

from specroute.routes._public import show_public_module as _show_public_module

from ._anthropic import DEFAULT_ANTHROPIC_BASE_URL as DEFAULT_ANTHROPIC_BASE_URL
from ._anthropic import AnthropicFormat as AnthropicFormat
from ._client import DEFAULT_HTTP_TIMEOUT as DEFAULT_HTTP_TIMEOUT
from ._client import DEFAULT_MAX_TOKENS as DEFAULT_MAX_TOKENS
from ._client import DEFAULT_STREAM_MIN_TOKENS as DEFAULT_STREAM_MIN_TOKENS
from ._client import Completion as Completion
from ._client import LLMClient as LLMClient
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
from ._limits import DEFAULT_LIMITS as DEFAULT_LIMITS
from ._limits import ProviderLimits as ProviderLimits
from ._limits import ProviderStatistics as ProviderStatistics
from ._messages import Message as Message
from ._messages import MessageLike as MessageLike
from ._messages import Role as Role
from ._meter import DEFAULT_MAX_RECORDS as DEFAULT_MAX_RECORDS
from ._meter import Attempt as Attempt
from ._meter import CallRecord as CallRecord
from ._meter import CallStatus as CallStatus
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
from ._usage import Usage as Usage
from ._usage import estimate_prompt_tokens as estimate_prompt_tokens
from ._usage import estimate_tokens as estimate_tokens
from ._wire import Progress as Progress
from ._wire import StreamDecoder as StreamDecoder
from ._wire import WireFormat as WireFormat

# Plain `sorted()` order, which tests/test_exports.py checks; ruff's RUF022 wants isort order.
__all__ = [  # noqa: RUF022
    "AnthropicFormat",
    "Attempt",
    "CallRecord",
    "CallStatus",
    "Completion",
    "DEFAULT_ANTHROPIC_BASE_URL",
    "DEFAULT_EMBEDDINGS_TIMEOUT",
    "DEFAULT_HTTP_TIMEOUT",
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_RECORDS",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_OPENAI_BASE_URL",
    "DEFAULT_PRICES",
    "DEFAULT_RETRY",
    "DEFAULT_STREAM_MIN_TOKENS",
    "HTTPEmbedder",
    "LLMClient",
    "LLMConfigError",
    "LLMError",
    "Message",
    "MessageLike",
    "ModelPrice",
    "OpenAIFormat",
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
    "RetryPolicy",
    "Role",
    "SIMULATED_PRICES",
    "SSEDecoder",
    "ServerSentEvent",
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
    "UnknownModelPriceWarning",
    "Usage",
    "UsageMeter",
    "UsageStatistics",
    "WireFormat",
    "estimate_prompt_tokens",
    "estimate_tokens",
    "open_llm_client",
    "record_usage",
    "spend_caps",
]


_show_public_module(__name__, globals(), __all__)
