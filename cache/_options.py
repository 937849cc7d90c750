"""`CacheOptions`: how one step is cached."""

from __future__ import annotations

from typing import Literal

import attrs

from ._errors import CacheConfigError
from ._validators import non_empty_text, unit_interval

__all__ = ["DEFAULT_THRESHOLD", "CacheOptions"]

# Chosen from tests/cache/test_false_hits.py; see the docstring of `CacheOptions`.
DEFAULT_THRESHOLD = 0.95


@attrs.frozen(kw_only=True)
class CacheOptions:
    """How one step is cached.

    The default threshold 0.95 comes from 40 labelled pairs (`tests/cache/
    false_hit_pairs.tsv`: paraphrases, and near-misses that differ by a negation, a number
    or a name). With the `HashingEmbedder`, 0.9 let 2 of 26 near-misses hit (numbers:
    "2 people" vs "4 people" scores 0.92-0.94) and 0.95 lets none, while it still matches
    the same request with other case, spacing or punctuation; real paraphrases score
    0.69-0.91, so hashing is a near-duplicate detector, not a paraphrase detector. With
    `LocalEmbedder` (all-MiniLM-L6-v2), 0.95 keeps 79% of paraphrases for 1 false hit in 26
    ("turn on" vs "turn off" two-factor authentication: 0.96), where 0.9 would give 6. A
    false hit returns another request's answer, and a miss only costs the computation,
    so the default leans to misses.

    Args:
        exact: Look the inputs up by exact key first.
        semantic: The name of the step input whose text is embedded for a semantic lookup
            (`None`: no semantic lookup).
        threshold: The least cosine similarity that is a semantic hit, in (0, 1].
        version: The step's cache version; bump it when the prompt changes.
        on_semantic_hit: `"trust"`: a semantic hit is the answer. `"verify"`: a hit only
            predicts the answer, which the real step checks (routers only: the predicted
            branch starts at once and is kept if the router agrees). `None`: verify for
            routers, trust for other steps.

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

    def __attrs_post_init__(self) -> None:
        if not self.exact and self.semantic is None:
            raise CacheConfigError(
                "`exact` is False and `semantic` is None, so nothing would be cached; set"
                " `exact=True` or name the input to embed with `semantic=`"
            )
