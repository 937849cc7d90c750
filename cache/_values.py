"""Stored values: how a cached result is kept so no run can change another run's copy.

A result is snapshotted when it is stored and copied again every time it is handed out:
immutable scalars (`None`, `bool`, `int`, `float`, `complex`, `str`, `bytes`) are kept as
they are, and anything else is kept as a pickle and unpickled on every get.

Why a pickle and not freezing: step results are arbitrary objects (dicts, lists, attrs
classes) and there is no general way to freeze them; a frozen wrapper would also change
the type a step's consumers see. Why a pickle and not `copy.deepcopy`: `pickle.loads` of a
typical result is several times faster than `deepcopy` (see `bench/cache.py`), the
snapshot taken at `put` cannot be changed by the producer afterwards, and its byte length
is the exact memory the entry holds, which is what a byte-bounded cache needs to count.
"""

from __future__ import annotations

import pickle
import sys
from typing import Any

import attrs

from ._errors import UncacheableValueError

__all__: list[str] = []

_IMMUTABLE_SCALARS = (type(None), bool, int, float, complex, str, bytes)


@attrs.frozen
class Stored:
    """One stored result: the value itself (an immutable scalar) or its pickle."""

    plain: Any
    pickled: bytes | None
    size: int

    def value(self) -> Any:
        """Return a copy of the stored result that the caller may change freely."""
        if self.pickled is None:
            return self.plain
        return pickle.loads(self.pickled)


def snapshot(value: Any, *, where: object) -> Stored:
    """Snapshot `value` for storing; `where` names the key in the error message."""
    if type(value) in _IMMUTABLE_SCALARS:
        return Stored(value, None, sys.getsizeof(value))
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise UncacheableValueError(
            f"cannot store the result for {where}: {exc}; the cache copies results with"
            " pickle, so return picklable data (module-level classes, no locks or sockets)"
            " or turn off caching for this step"
        ) from exc
    return Stored(None, data, len(data))
