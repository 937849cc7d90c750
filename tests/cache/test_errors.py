"""The cache's errors (`cache/_errors.py`): all under `CacheError`, with their attributes."""

from __future__ import annotations

import pytest
from specroute.cache import (
    CacheConfigError,
    CacheError,
    ComputationFailedError,
    EmbeddingError,
    SemanticInputError,
    SingleFlightClosedError,
    UncacheableValueError,
    UnencodableInputError,
)
from specroute.routes import SpecrouteError

ALL = (
    CacheConfigError,
    ComputationFailedError,
    EmbeddingError,
    SemanticInputError,
    SingleFlightClosedError,
    UncacheableValueError,
    UnencodableInputError,
)


@pytest.mark.parametrize("error", ALL)
def test_every_cache_error_is_under_cache_error_and_the_root(error: type[Exception]) -> None:
    assert issubclass(error, CacheError)
    assert issubclass(CacheError, SpecrouteError)


def test_a_config_error_is_also_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"`maxsize`"):
        raise CacheConfigError("`maxsize` must be an int >= 1, got 0")
    assert not issubclass(UnencodableInputError, ValueError)


def test_unencodable_input_names_the_step_and_the_path() -> None:
    error = UnencodableInputError("cannot encode", step="search", path="request.tags[2]")
    assert (error.step, error.path) == ("search", "request.tags[2]")
    assert str(error) == "cannot encode"


def test_computation_failed_keeps_the_key() -> None:
    key = ("step", "1")
    error = ComputationFailedError("shared computation raised", key=key)
    assert error.key is key


def test_input_and_value_errors_are_siblings_not_one_another() -> None:
    assert not issubclass(UncacheableValueError, UnencodableInputError)
    assert not issubclass(UnencodableInputError, UncacheableValueError)
    assert not issubclass(SingleFlightClosedError, ComputationFailedError)
