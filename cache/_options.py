"""`CacheOptions`: how one step is cached."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal

import attrs

from ._errors import CacheConfigError, UnencodableInputError
from ._key import check_encodable
from ._validators import non_empty_text, unit_interval

__all__ = ["DEFAULT_THRESHOLD", "CacheOptions"]

# What the figures in the docstring of `CacheOptions` are measured at
# (tests/cache/test_false_hits.py checks them).
DEFAULT_THRESHOLD = 0.95


def _read_only_copy(value: Any) -> Any:
    if not isinstance(value, Mapping):
        raise CacheConfigError(
            f"`depends_on` must be a mapping of names to plain data, such as"
            f" {{'model': 'gpt-4o-mini'}}, got {value!r}"
        )
    return MappingProxyType(dict(value))


def _encodable(instance: object, attribute: attrs.Attribute[Any], value: Mapping[str, Any]) -> None:
    try:
        check_encodable(value, attribute.name)
    except UnencodableInputError as exc:
        raise CacheConfigError(str(exc)) from exc


def _callable_or_none(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        raise CacheConfigError(
            f"`{attribute.name}` must be a function agree(predicted, real) -> bool or None"
            f" (equality), got {value!r}"
        )


@attrs.frozen(kw_only=True)
class CacheOptions:
    """How one step is cached.

    A semantic hit is a guess: it hands this request the answer stored for another text
    whose embedding is close, and close texts often ask different things. Measured on the
    1,200 labelled pairs the tests ship (`tests/cache/labelled_pairs.tsv`, written by
    `tests/cache/make_labelled_pairs.py`, whose docstring gives the procedure: 240 each of
    rewordings, retypings with other case, spacing and punctuation, and near misses that
    differ only by a number, a name or a negation), at the default threshold 0.95:

    - `HashingEmbedder`: every retyping hits and no rewording does; 17% of the number and
      31% of the negation near misses hit, no name one: 32% of its hits are wrong. At 0.97
      it hits every retyping and no near miss.
    - `LocalEmbedder` (all-MiniLM-L6-v2): 9% of the rewordings and 95% of the retypings
      hit, and so do 75% of the number and 97% of the negation near misses (no name one):
      62% of its hits are wrong. It sees the topic, not the number or the "not".

    The pairs are short and templated; on other traffic the rates differ, so measure them
    on your own requests before trusting hits. A false hit returns another request's
    answer, and a miss only costs the computation, so the default leans to misses; and on
    every step `on_semantic_hit="verify"` (the default) uses a hit only as a prediction
    that the real step confirms or corrects.

    Args:
        exact: Look the inputs up by exact key first.
        semantic: The name of the step input whose text is embedded for a semantic lookup
            (`None`: no semantic lookup).
        threshold: The least cosine similarity that is a semantic hit, in (0, 1].
        version: The step's cache version; bump it when the prompt changes.
        depends_on: What the step's answer depends on beyond its inputs: the model, its
            temperature, tool definitions, a prompt version. Any mapping of names to plain
            data (what a step input may be); it is part of every key, so changing the model
            never serves the old model's answers. Copied when the options are made.
        name: An explicit cache name. Without one, a step's entries are its own: its key
            names the step and its function (module and qualified name), so two functions
            that share a step name never share entries. Steps that give one cache name
            share entries (and in-flight computations), whatever their functions.
        on_semantic_hit: `"verify"` (the default, also what `None` means): a semantic
            hit is a guess, never the answer. The step still computes its real value; in
            a speculative run the hit's value is a *predicted value* that starts the
            steps downstream early (for a router: the predicted branch), and `agree`
            decides when the real value arrives whether that work is kept or redone.
            `"trust"`: a semantic hit is served as the step's value without computing
            (an explicit opt-in: a near match may be another request's answer).
        agree: `agree(predicted, real) -> bool`: whether work started on a predicted value
            may stand once the real value is known. `None` (the default) is equality,
            which suits deterministic steps (retrieval, classification); for free text
            pass a normalised comparison or a cheap judge. The run's value for this step
            is always the real one; steps downstream of an accepted prediction computed
            theirs from the predicted value. For a router, it compares the cached `Route`
            with the real one (the default: same label and equal handoff values).

    Raises:
        CacheConfigError: A setting is out of range, or neither lookup is on.
    """

    exact: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    semantic: str | None = attrs.field(default=None, validator=non_empty_text)
    threshold: float = attrs.field(default=DEFAULT_THRESHOLD, validator=unit_interval)
    version: str = attrs.field(default="1", validator=non_empty_text)
    on_semantic_hit: Literal["trust", "verify"] | None = attrs.field(
        default=None, validator=attrs.validators.in_((None, "trust", "verify"))
    )
    # Excluded from the hash only: a mapping is not hashable, and equal options still hash
    # alike without it.
    depends_on: Mapping[str, Any] = attrs.field(
        factory=dict, converter=_read_only_copy, validator=_encodable, hash=False
    )
    name: str | None = attrs.field(default=None, validator=non_empty_text)
    agree: Callable[[Any, Any], bool] | None = attrs.field(
        default=None, validator=_callable_or_none
    )

    def __attrs_post_init__(self) -> None:
        if not self.exact and self.semantic is None:
            raise CacheConfigError(
                "`exact` is False and `semantic` is None, so nothing would be cached; set"
                " `exact=True` or name the input to embed with `semantic=`"
            )
