"""The Cache facade the engine calls: options, exact then semantic lookup, store, statistics."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import pytest
import trio
import trio.testing
from specroute.cache import (
    CacheConfigError,
    CacheHit,
    CacheMiss,
    CacheOptions,
    EmbeddingError,
    ExactCache,
    ExactCacheConfig,
    SemanticCache,
    SemanticCacheConfig,
    SemanticInputError,
    StepIdentity,
    UnencodableInputError,
    open_cache,
)
from specroute.routes import Route

SEMANTIC = CacheOptions(semantic="request")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"threshold": 0}, "`threshold` must be in (0, 1], got 0"),
        ({"threshold": 1.5}, "`threshold` must be in (0, 1], got 1.5"),
        ({"version": ""}, "`version` must be a non-empty str, got ''"),
        ({"semantic": ""}, "`semantic` must be a non-empty str, got ''"),
        ({"exact": False}, "`exact` is False and `semantic` is None"),
    ],
)
def test_bad_options_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(CacheConfigError) as info:
        CacheOptions(**settings)
    assert str(info.value).startswith(message)


async def test_miss_then_store_then_exact_hit() -> None:
    async with open_cache() as cache:
        miss = await cache.lookup(
            StepIdentity("discovery"), CacheOptions(), "acme", {"request": "hi"}
        )
        assert isinstance(miss, CacheMiss)
        assert miss.embedding is None
        await cache.store(miss, {"route": "search"}, seconds=2.5)
        hit = await cache.lookup(
            StepIdentity("discovery"), CacheOptions(), "acme", {"request": "hi"}
        )
        assert isinstance(hit, CacheHit)
        assert (hit.kind, hit.similarity, hit.matched_key) == ("exact", None, miss.key)
        assert hit.value == {"route": "search"}
        assert hit.seconds == 2.5
        stats = cache.statistics()
    assert (stats.exact_hits, stats.misses, stats.stores, stats.entries) == (1, 1, 1, 1)


async def test_a_paraphrase_is_a_semantic_hit_with_similarity() -> None:
    async with open_cache() as cache:
        miss = await cache.lookup(
            StepIdentity("discovery"),
            SEMANTIC,
            "acme",
            {"request": "Book a flight to Paris for Monday"},
        )
        assert isinstance(miss, CacheMiss)
        assert miss.embedding is not None
        await cache.store(miss, "travel", seconds=0.75)
        hit = await cache.lookup(
            StepIdentity("discovery"),
            SEMANTIC,
            "acme",
            {"request": "book a flight to Paris for monday!"},
        )
        assert isinstance(hit, CacheHit)
        assert (hit.kind, hit.value, hit.seconds) == ("semantic", "travel", 0.75)
        assert hit.matched_key == miss.key
        assert hit.key != miss.key
        assert hit.similarity is not None
        assert SEMANTIC.threshold <= hit.similarity <= 1.0
        assert cache.statistics().semantic_hits == 1


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        (
            (StepIdentity("summarize", "app.short"), SEMANTIC),
            (StepIdentity("summarize", "app.long"), SEMANTIC),
        ),
        (
            (StepIdentity("discovery"), attrs.evolve(SEMANTIC, depends_on={"model": "small"})),
            (StepIdentity("discovery"), attrs.evolve(SEMANTIC, depends_on={"model": "large"})),
        ),
    ],
)
async def test_a_near_match_is_never_taken_from_another_step_or_model(
    stored: tuple[StepIdentity, CacheOptions], asked: tuple[StepIdentity, CacheOptions]
) -> None:
    async with open_cache() as cache:
        miss = await cache.lookup(*stored, "acme", {"request": "Book a flight to Paris"})
        assert isinstance(miss, CacheMiss)
        await cache.store(miss, "travel", seconds=1.0)
        near = await cache.lookup(*asked, "acme", {"request": "book a flight to Paris!"})
        same = await cache.lookup(*stored, "acme", {"request": "book a flight to Paris!"})
    assert isinstance(near, CacheMiss)
    assert isinstance(same, CacheHit)


async def test_exact_is_tried_before_semantic() -> None:
    async with open_cache() as cache:
        miss = await cache.lookup(StepIdentity("discovery"), SEMANTIC, "acme", {"request": "hello"})
        assert isinstance(miss, CacheMiss)
        await cache.store(miss, "v", seconds=1.0)
        hit = await cache.lookup(StepIdentity("discovery"), SEMANTIC, "acme", {"request": "hello"})
        assert isinstance(hit, CacheHit)
        assert hit.kind == "exact"


async def test_semantic_only_does_not_fill_the_exact_cache() -> None:
    options = CacheOptions(exact=False, semantic="request")
    async with open_cache() as cache:
        miss = await cache.lookup(StepIdentity("discovery"), options, "acme", {"request": "hello"})
        assert isinstance(miss, CacheMiss)
        await cache.store(miss, "v", seconds=1.0)
        stats = cache.statistics()
    assert (stats.entries, stats.semantic_entries) == (0, 1)


async def test_namespaces_never_share_hits() -> None:
    async with open_cache() as cache:
        miss = await cache.lookup(StepIdentity("discovery"), SEMANTIC, "acme", {"request": "hello"})
        assert isinstance(miss, CacheMiss)
        await cache.store(miss, "acme's", seconds=1.0)
        other = await cache.lookup(
            StepIdentity("discovery"), SEMANTIC, "globex", {"request": "hello"}
        )
        assert isinstance(other, CacheMiss)


async def test_a_missing_semantic_input_names_the_step_and_the_inputs() -> None:
    async with open_cache() as cache:
        with pytest.raises(SemanticInputError, match=r"step 'discovery'.*\['query'\]"):
            await cache.lookup(StepIdentity("discovery"), SEMANTIC, "acme", {"query": "hi"})


async def test_a_semantic_input_that_is_not_text_is_refused() -> None:
    async with open_cache() as cache:
        with pytest.raises(SemanticInputError, match="must be a str, got int"):
            await cache.lookup(StepIdentity("discovery"), SEMANTIC, "acme", {"request": 3})


async def test_unencodable_inputs_are_reported_by_lookup() -> None:
    async with open_cache() as cache:
        with pytest.raises(UnencodableInputError, match="argument 'request'"):
            await cache.lookup(
                StepIdentity("discovery"), CacheOptions(), "acme", {"request": object()}
            )


class WrongShapeEmbedder:
    """Returns two rows for one text."""

    async def embed(self, texts: Any) -> np.ndarray[Any, Any]:
        return np.ones((2, 4), dtype=np.float32)


async def test_an_embedder_returning_the_wrong_shape_is_reported() -> None:
    async with open_cache(embedder=WrongShapeEmbedder()) as cache:
        with pytest.raises(EmbeddingError, match="one row per text"):
            await cache.lookup(StepIdentity("discovery"), SEMANTIC, "acme", {"request": "hi"})


async def test_store_snapshots_the_value() -> None:
    async with open_cache() as cache:
        miss = await cache.lookup(StepIdentity("s"), CacheOptions(), "acme", {"x": 1})
        assert isinstance(miss, CacheMiss)
        value = {"list": [1]}
        await cache.store(miss, value, seconds=1.0)
        value["list"].append(2)
        hit = await cache.lookup(StepIdentity("s"), CacheOptions(), "acme", {"x": 1})
        assert isinstance(hit, CacheHit)
        assert hit.value == {"list": [1]}


async def test_a_route_is_the_hit_value_itself() -> None:
    async with open_cache() as cache:
        miss = await cache.lookup(StepIdentity("triage"), CacheOptions(), "acme", {"x": 1})
        assert isinstance(miss, CacheMiss)
        await cache.store(miss, Route("billing"), seconds=0.2)
        hit = await cache.lookup(StepIdentity("triage"), CacheOptions(), "acme", {"x": 1})
        assert isinstance(hit, CacheHit)
        assert hit.value == Route("billing")


async def test_none_is_a_value_like_any_other() -> None:
    async with open_cache() as cache:
        miss = await cache.lookup(StepIdentity("s"), CacheOptions(), "acme", {"x": 1})
        assert isinstance(miss, CacheMiss)
        await cache.store(miss, None, seconds=0.5)
        hit = await cache.lookup(StepIdentity("s"), CacheOptions(), "acme", {"x": 1})
        assert isinstance(hit, CacheHit)
        assert (hit.value, hit.seconds) == (None, 0.5)


@pytest.mark.parametrize(
    ("options", "later", "kind"),
    [(CacheOptions(), "same request", "exact"), (SEMANTIC, "Same request!", "semantic")],
)
async def test_both_lookups_hand_out_copies(options: CacheOptions, later: str, kind: str) -> None:
    async with open_cache() as cache:
        miss = await cache.lookup(StepIdentity("s"), options, "acme", {"request": "same request"})
        assert isinstance(miss, CacheMiss)
        await cache.store(miss, {"tags": ["a"]}, seconds=1.0)
        first = await cache.lookup(StepIdentity("s"), options, "acme", {"request": later})
        assert isinstance(first, CacheHit)
        first.value["tags"].append("changed by a reader")
        second = await cache.lookup(StepIdentity("s"), options, "acme", {"request": later})
        assert isinstance(second, CacheHit)
        assert second.kind == first.kind == kind
        assert second.value == {"tags": ["a"]}


async def test_ttl_on_the_run_clock(autojump_clock: trio.testing.MockClock) -> None:
    async with open_cache(exact=ExactCache(ExactCacheConfig(ttl=60))) as cache:
        miss = await cache.lookup(StepIdentity("s"), CacheOptions(), "acme", {"x": 1})
        assert isinstance(miss, CacheMiss)
        await cache.store(miss, "v", seconds=1.0)
        await trio.sleep(61)
        assert isinstance(
            await cache.lookup(StepIdentity("s"), CacheOptions(), "acme", {"x": 1}), CacheMiss
        )
        assert cache.statistics().expirations == 1


async def test_compute_once_shares_between_concurrent_misses(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = 0

    async def discover() -> str:
        nonlocal calls
        calls += 1
        await trio.sleep(5)
        return "route"

    async with open_cache() as cache:
        miss = await cache.lookup(
            StepIdentity("discovery"), CacheOptions(), "acme", {"request": "hi"}
        )
        assert isinstance(miss, CacheMiss)
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(cache.compute_once, miss.key, discover)
            await trio.sleep(1)
            assert cache.statistics().in_flight == 1
    assert calls == 1


async def test_stores_counts_only_what_was_stored() -> None:
    semantic_only = CacheOptions(semantic="request", exact=False)
    async with open_cache() as cache:
        miss = await cache.lookup(StepIdentity("s"), semantic_only, "acme", {"request": "hi"})
        assert isinstance(miss, CacheMiss)
        # A miss that goes nowhere (no exact entry, no embedding) stores nothing.
        await cache.store(attrs.evolve(miss, embedding=None), "value", seconds=1.0)
        assert cache.statistics().stores == 0
        await cache.store(miss, "value", seconds=1.0)
        assert cache.statistics().stores == 1


async def test_a_semantic_hit_carries_the_requests_own_embedding() -> None:
    async with open_cache() as cache:
        miss = await cache.lookup(
            StepIdentity("s"), SEMANTIC, "acme", {"request": "Book a flight to Paris for Monday"}
        )
        assert isinstance(miss, CacheMiss)
        await cache.store(miss, "travel", seconds=1.0)
        hit = await cache.lookup(
            StepIdentity("s"), SEMANTIC, "acme", {"request": "book a flight to Paris for monday!"}
        )
        assert isinstance(hit, CacheHit)
        assert hit.embedding is not None
        assert hit.embedding.shape == (miss.embedding.shape if miss.embedding is not None else ())
        exact = await cache.lookup(
            StepIdentity("s"), SEMANTIC, "acme", {"request": "Book a flight to Paris for Monday"}
        )
        assert isinstance(exact, CacheHit)
        assert exact.embedding is None  # an exact hit embeds nothing


async def test_evictions_are_counted_by_kind() -> None:
    exact = ExactCache(ExactCacheConfig(maxsize=3))
    semantic = SemanticCache(SemanticCacheConfig(maxsize=1))
    async with open_cache(exact=exact, semantic=semantic) as cache:
        for n in range(5):
            request = f"request {n}"
            miss = await cache.lookup(StepIdentity("s"), SEMANTIC, "acme", {"request": request})
            assert isinstance(miss, CacheMiss)
            await cache.store(miss, n, seconds=1.0)
        stats = cache.statistics()
    assert (stats.exact_evictions, stats.semantic_evictions, stats.evictions) == (2, 4, 6)
