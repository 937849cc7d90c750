"""How often the HashingEmbedder turns a near-miss into a hit, on labelled pairs.

`false_hit_pairs.tsv` holds 40 pairs: paraphrases (which should hit) and near-misses that
differ by a negation, a number or an entity (which must not: a hit would hand one request
another's answer). The figures at the default threshold are attached to the test report
(`record_property`) and are in every assertion message.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from specroute.cache import CacheOptions, HashingEmbedder, SemanticCache, make_key

PAIRS = [
    line.split("\t")
    for line in (Path(__file__).parent / "false_hit_pairs.tsv").read_text().splitlines()
    if line and not line.startswith("#")
]
NEAR_MISS_KINDS = ("negation", "number", "entity")
DEFAULT_THRESHOLD = CacheOptions().threshold


def similarities(kind: str) -> list[tuple[float, str, str]]:
    embedder = HashingEmbedder()
    found = []
    for label, first, second in PAIRS:
        if label == kind:
            vectors = embedder.encode([first, second])
            found.append((float(vectors[0] @ vectors[1]), first, second))
    return found


def is_hit(first: str, second: str) -> bool:
    """Whether `second` finds `first` in a semantic cache at the default threshold."""
    embedder = HashingEmbedder()
    cache = SemanticCache()
    cache.put(make_key("s", "1", "n", {"text": first}), embedder.encode([first])[0], first)
    query = make_key("s", "1", "n", {"text": second})
    return cache.search(query, embedder.encode([second])[0], DEFAULT_THRESHOLD) is not None


def test_the_labelled_set_has_every_kind() -> None:
    counts = {kind: len(similarities(kind)) for kind in ("paraphrase", *NEAR_MISS_KINDS)}
    assert sum(counts.values()) == len(PAIRS) == 40
    assert all(count >= 7 for count in counts.values()), counts


def test_false_hit_rate_at_the_default_threshold(record_property: pytest.RecordProperty) -> None:
    near_misses = [pair for kind in NEAR_MISS_KINDS for pair in similarities(kind)]
    false_hits = [pair for pair in near_misses if is_hit(pair[1], pair[2])]
    rate = len(false_hits) / len(near_misses)
    record_property("false_hit_rate", rate)
    # Measured 0 of 26 at 0.95 (2 of 26 at 0.9); one more would mean the embedder changed.
    assert rate <= 1 / 26, f"false-hit rate {rate:.1%} at {DEFAULT_THRESHOLD}: {false_hits}"


@pytest.mark.parametrize("kind", NEAR_MISS_KINDS)
def test_no_near_miss_of_a_kind_hits(kind: str) -> None:
    hits = [pair for pair in similarities(kind) if is_hit(pair[1], pair[2])]
    assert hits == [], f"{kind} pairs at or above {DEFAULT_THRESHOLD}: {hits}"


def test_paraphrase_recall_is_reported_and_spelling_variants_hit(
    record_property: pytest.RecordProperty,
) -> None:
    paraphrases = similarities("paraphrase")
    recall = float(np.mean([is_hit(first, second) for _, first, second in paraphrases]))
    record_property("paraphrase_recall", recall)
    # Hashing sees spelling, so real paraphrases mostly miss at 0.95 (measured 0 of 14) ...
    assert recall <= 0.25, f"paraphrase recall {recall:.0%}: the embedder changed"
    # ... but the same request with other case, spacing or punctuation must still hit.
    assert is_hit("Book a flight to Paris", "book a  flight to paris!")
