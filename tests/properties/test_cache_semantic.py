"""Semantic cache properties with the HashingEmbedder: identity, partitions, thresholds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from specroute.cache import CacheKey, HashingEmbedder, SemanticCache, make_key

EMBEDDER = HashingEmbedder()
TEXTS = st.text(max_size=40)
SENTENCES = st.lists(
    st.sampled_from(["book", "a", "flight", "to", "Paris", "Rome", "not", "cancel", "my", "2"]),
    min_size=1,
    max_size=8,
).map(" ".join)
THRESHOLDS = st.floats(min_value=1e-6, max_value=1.0, exclude_max=True)


def k(text: str, step: str = "s", version: str = "1", namespace: str = "acme") -> CacheKey:
    return make_key(step, version, namespace, {"request": text})


def filled(texts: list[str]) -> SemanticCache:
    cache = SemanticCache()
    for text in texts:
        cache.put(k(text), EMBEDDER.encode([text])[0], text)
    return cache


@given(st.lists(TEXTS, max_size=5), TEXTS, THRESHOLDS)
def test_identical_text_is_a_hit_at_any_threshold_below_one(
    others: list[str], text: str, threshold: float
) -> None:
    cache = filled([*others, text])
    match = cache.search(k(text), EMBEDDER.encode([text])[0], threshold)
    assert match is not None
    assert match.similarity >= threshold - 1e-5


@given(
    st.lists(SENTENCES, min_size=1, max_size=5),
    SENTENCES,
    st.sampled_from([{"step": "t"}, {"version": "2"}, {"namespace": "globex"}]),
)
def test_a_hit_never_crosses_steps_versions_or_namespaces(
    stored: list[str], query: str, other: dict[str, str]
) -> None:
    cache = filled(stored)
    assert cache.search(k(query, **other), EMBEDDER.encode([query])[0], 1e-6) is None


@given(st.lists(SENTENCES, max_size=8), SENTENCES, THRESHOLDS, THRESHOLDS)
def test_raising_the_threshold_never_adds_hits(
    stored: list[str], query: str, first: float, second: float
) -> None:
    low, high = sorted((first, second))
    cache = filled(stored)
    vector = EMBEDDER.encode([query])[0]
    at_high = cache.search(k(query), vector, high)
    at_low = cache.search(k(query), vector, low)
    if at_high is not None:
        assert at_low is not None
        assert at_low.key == at_high.key
