"""The errors the cache raises, all under `CacheError`.

The hierarchy (each class says when it is raised)::

    SpecrouteError                      (specroute.routes)
    └── CacheError                      anything the cache raises on purpose
        ├── CacheConfigError            a setting out of range (also a `ValueError`)
        ├── UnencodableInputError       a step input the key cannot encode
        ├── UncacheableValueError       a step result the cache cannot copy
        ├── SemanticInputError          the input named for embedding is missing or not text
        ├── EmbeddingError              an embedder failed or returned unusable vectors
        ├── ComputationFailedError      a shared (single-flight) computation raised;
        │                               `__cause__` is its exception
        └── SingleFlightClosedError     a single flight used after its `async with` ended

Input errors (`UnencodableInputError`, `SemanticInputError`) are about what a step was
given; `UncacheableValueError` is about what it returned.
"""

from __future__ import annotations

from specroute.routes import SpecrouteError

__all__ = [
    "CacheConfigError",
    "CacheError",
    "ComputationFailedError",
    "EmbeddingError",
    "SemanticInputError",
    "SingleFlightClosedError",
    "UncacheableValueError",
    "UnencodableInputError",
]


class CacheError(SpecrouteError):
    """Root of every error the cache raises on purpose."""


class CacheConfigError(CacheError, ValueError):
    """A cache setting out of range; the message names the setting, the rule and the value.

    It is also a `ValueError`, so code that validates settings generically still catches it.
    """


class UnencodableInputError(CacheError):
    """A step input that has no canonical encoding, so no cache key can be made for it.

    Raised by `make_key`. The message names the step and the path to the value inside the
    inputs (`request.tags[2]`). Unlike `UncacheableValueError`, this is about an input.

    Attributes:
        step: The step whose inputs were being encoded.
        path: The argument path of the value that cannot be encoded.
    """

    def __init__(self, message: str, *, step: str, path: str) -> None:
        super().__init__(message)
        self.step = step
        self.path = path


class UncacheableValueError(CacheError):
    """A step result the cache cannot snapshot (it cannot be pickled), so it is not stored.

    Unlike `UnencodableInputError`, this is about a step's result, not its inputs.
    """


class SemanticInputError(CacheError):
    """The input a step names for semantic caching is missing from its inputs or not a `str`."""


class EmbeddingError(CacheError):
    """An embedder failed (HTTP error, malformed reply) or returned vectors of the wrong shape.

    Messages never contain API keys.
    """


class ComputationFailedError(CacheError):
    """A single-flight computation raised; every waiter gets its own instance of this error.

    The computation's exception is `__cause__` (the same object for every waiter). Each
    waiter gets a fresh wrapper so that its own traceback and `__context__` never leak into
    another waiter's; re-raising one shared exception object from many tasks would tangle
    them.

    Attributes:
        key: The key the computation was running for.
    """

    def __init__(self, message: str, *, key: object) -> None:
        super().__init__(message)
        self.key = key


class SingleFlightClosedError(CacheError):
    """A `SingleFlight` used after its `async with open_single_flight()` block ended.

    Unlike `ComputationFailedError`, no computation ran.
    """
