"""Semantic cache properties with the HashingEmbedder (identity, partitions, thresholds),
and a state machine that checks `SemanticIndex` against a model of its bounds."""

from __future__ import annotations

import collections

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from specroute.cache import (
    CacheKey,
    HashingEmbedder,
    SemanticCache,
    SemanticIndex,
    SemanticIndexConfig,
    make_key,
)

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


class IndexMachine(RuleBasedStateMachine):
    """`SemanticIndex` against a model: a list of live ids in use order, and brute force.

    The model keeps every live id with its namespace, partition and vector, and a list of ids
    from least to most recently used. Its eviction rule, stated independently of the index:
    past a namespace's own bound its oldest entry goes; past `maxsize` the oldest entry of
    the namespace with the most entries goes, ties broken by the older oldest entry.
    """

    MAXSIZE = 6
    NAMESPACE_MAXSIZE = 4

    def __init__(self) -> None:
        super().__init__()
        self.index: SemanticIndex[int] = SemanticIndex(
            SemanticIndexConfig(maxsize=self.MAXSIZE, namespace_maxsize=self.NAMESPACE_MAXSIZE)
        )
        self.live: dict[int, tuple[str, str, np.ndarray]] = {}
        self.order: list[int] = []

    def _oldest_of(self, namespace: str) -> int:
        return next(id_ for id_ in self.order if self.live[id_][0] == namespace)

    def _model_evict(self, id_: int) -> None:
        del self.live[id_]
        self.order.remove(id_)

    @rule(
        id_=st.integers(0, 15),
        namespace=st.sampled_from(["a", "b", "c"]),
        partition=st.sampled_from(["p", "q"]),
        seed=st.integers(0, 2**16),
    )
    def insert(self, id_: int, namespace: str, partition: str, seed: int) -> None:
        vector = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
        evicted = self.index.insert(id_, vector, partition=partition, namespace=namespace)
        if id_ in self.live:
            self._model_evict(id_)
        self.live[id_] = (namespace, partition, vector / np.linalg.norm(vector))
        self.order.append(id_)
        expected = []
        while sum(ns == namespace for ns, _, _ in self.live.values()) > self.NAMESPACE_MAXSIZE:
            expected.append(self._oldest_of(namespace))
            self._model_evict(expected[-1])
        while len(self.live) > self.MAXSIZE:
            sizes = collections.Counter(ns for ns, _, _ in self.live.values())
            largest = max(sizes.values())
            candidates = [ns for ns, size in sizes.items() if size == largest]
            victim = min((self._oldest_of(ns) for ns in candidates), key=self.order.index)
            expected.append(victim)
            self._model_evict(victim)
        assert evicted == expected

    @rule(id_=st.integers(0, 15))
    def delete(self, id_: int) -> None:
        assert self.index.delete(id_) == (id_ in self.live)
        if id_ in self.live:
            self._model_evict(id_)

    @rule(partition=st.sampled_from(["p", "q"]), seed=st.integers(0, 2**16))
    def lookup(self, partition: str, seed: int) -> None:
        query = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
        query /= np.linalg.norm(query)
        match = self.index.lookup(partition, query, 0.3)
        scores = {id_: float(v @ query) for id_, (_, p, v) in self.live.items() if p == partition}
        best = max(scores, key=scores.__getitem__, default=None)
        if best is None or scores[best] < 0.3 - 1e-5:
            assert match is None
            return
        assert match is not None
        assert match.similarity == pytest.approx(scores[best], abs=1e-5)
        self.order.remove(match.id)
        self.order.append(match.id)

    @invariant()
    def sizes_agree(self) -> None:
        assert len(self.index) == len(self.live) <= self.MAXSIZE
        for namespace in ("a", "b", "c"):
            expected = sum(ns == namespace for ns, _, _ in self.live.values())
            assert self.index.namespace_size(namespace) == expected <= self.NAMESPACE_MAXSIZE


TestIndexMachine = IndexMachine.TestCase
# 25 steps reach the bounds (6 entries, 4 per namespace) many times over; the profile still
# sets how many runs.
TestIndexMachine.settings = settings(stateful_step_count=25)
