"""Caches in front of steps: the `StepCache` protocol, exact and semantic caches, embedders."""

from specroute.routes._public import show_public_module as _show_public_module

from ._ann import AnnConfig as AnnConfig
from ._ann import ann_available as ann_available
from ._ann import prepare_ann as prepare_ann
from ._cache import Cache as Cache
from ._cache import open_cache as open_cache
from ._embedders import Embedder as Embedder
from ._embedders import HashingEmbedder as HashingEmbedder
from ._errors import CacheConfigError as CacheConfigError
from ._errors import CacheError as CacheError
from ._errors import ComputationFailedError as ComputationFailedError
from ._errors import EmbeddingError as EmbeddingError
from ._errors import SemanticInputError as SemanticInputError
from ._errors import SingleFlightClosedError as SingleFlightClosedError
from ._errors import UncacheableValueError as UncacheableValueError
from ._errors import UnencodableInputError as UnencodableInputError
from ._exact import ExactCache as ExactCache
from ._exact import ExactCacheConfig as ExactCacheConfig
from ._exact import ExactCacheStatistics as ExactCacheStatistics
from ._flight import SingleFlight as SingleFlight
from ._flight import SingleFlightStatistics as SingleFlightStatistics
from ._flight import open_single_flight as open_single_flight
from ._key import CacheKey as CacheKey
from ._key import StepIdentity as StepIdentity
from ._key import make_key as make_key
from ._local_embedder import LocalEmbedder as LocalEmbedder
from ._options import CacheOptions as CacheOptions
from ._protocol import CacheHit as CacheHit
from ._protocol import CacheMiss as CacheMiss
from ._protocol import CacheStatistics as CacheStatistics
from ._protocol import StepCache as StepCache
from ._redis_budget import SharedWasteBudget as SharedWasteBudget
from ._redis_budget import open_shared_waste_budget as open_shared_waste_budget
from ._redis_cache import RedisCache as RedisCache
from ._redis_cache import RedisCacheConfig as RedisCacheConfig
from ._redis_cache import RedisCacheStatistics as RedisCacheStatistics
from ._redis_cache import open_redis_cache as open_redis_cache
from ._redis_client import RedisConnection as RedisConnection
from ._redis_client import RedisStatistics as RedisStatistics
from ._redis_client import open_redis as open_redis
from ._redis_errors import RedisUnavailableError as RedisUnavailableError
from ._redis_errors import UndecodableValueError as UndecodableValueError
from ._redis_flight import RedisFlightStatistics as RedisFlightStatistics
from ._redis_learned import SharedLearnedState as SharedLearnedState
from ._redis_learned import SharedLearnedStatistics as SharedLearnedStatistics
from ._redis_learned import open_shared_learned as open_shared_learned
from ._redis_learned import read_shared_learned as read_shared_learned
from ._redis_learned import reset_shared_learned as reset_shared_learned
from ._semantic import SemanticCache as SemanticCache
from ._semantic import SemanticCacheConfig as SemanticCacheConfig
from ._semantic import SemanticCacheStatistics as SemanticCacheStatistics
from ._semantic import SemanticMatch as SemanticMatch
from ._semantic_index import IndexMatch as IndexMatch
from ._semantic_index import SemanticIndex as SemanticIndex
from ._semantic_index import SemanticIndexConfig as SemanticIndexConfig

__all__ = [
    "AnnConfig",
    "Cache",
    "CacheConfigError",
    "CacheError",
    "CacheHit",
    "CacheKey",
    "CacheMiss",
    "CacheOptions",
    "CacheStatistics",
    "ComputationFailedError",
    "Embedder",
    "EmbeddingError",
    "ExactCache",
    "ExactCacheConfig",
    "ExactCacheStatistics",
    "HashingEmbedder",
    "IndexMatch",
    "LocalEmbedder",
    "RedisCache",
    "RedisCacheConfig",
    "RedisCacheStatistics",
    "RedisConnection",
    "RedisFlightStatistics",
    "RedisStatistics",
    "RedisUnavailableError",
    "SemanticCache",
    "SemanticCacheConfig",
    "SemanticCacheStatistics",
    "SemanticIndex",
    "SemanticIndexConfig",
    "SemanticInputError",
    "SemanticMatch",
    "SharedLearnedState",
    "SharedLearnedStatistics",
    "SharedWasteBudget",
    "SingleFlight",
    "SingleFlightClosedError",
    "SingleFlightStatistics",
    "StepCache",
    "StepIdentity",
    "UncacheableValueError",
    "UndecodableValueError",
    "UnencodableInputError",
    "ann_available",
    "make_key",
    "open_cache",
    "open_redis",
    "open_redis_cache",
    "open_shared_learned",
    "open_shared_waste_budget",
    "open_single_flight",
    "prepare_ann",
    "read_shared_learned",
    "reset_shared_learned",
]


_show_public_module(__name__, globals(), __all__)
