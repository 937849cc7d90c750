"""HashingEmbedder: shape, normalization, determinism in and across processes."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import trio
from specroute.cache import CacheConfigError, Embedder, HashingEmbedder

TEXTS = ["Book a flight to Paris", "", "é ü 日本語", "a"]


async def test_rows_are_normalized_float32_in_order() -> None:
    vectors = await HashingEmbedder(dimension=64).embed(TEXTS)
    assert vectors.shape == (4, 64)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    assert not np.allclose(vectors[0], vectors[3])


async def test_embed_and_encode_agree() -> None:
    embedder = HashingEmbedder()
    np.testing.assert_array_equal(await embedder.embed(TEXTS), embedder.encode(TEXTS))


def test_case_and_spacing_do_not_matter() -> None:
    embedder = HashingEmbedder()
    vectors = embedder.encode(["Book  a flight", "book a FLIGHT "])
    np.testing.assert_array_equal(vectors[0], vectors[1])


def test_the_same_text_gives_the_same_vector_in_another_process() -> None:
    script = (
        "import sys; from specroute.cache import HashingEmbedder;"
        "sys.stdout.buffer.write(HashingEmbedder().encode(['Book a flight to Paris']).tobytes())"
    )
    # A different hash seed would change any vector built on Python's hash().
    other = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        check=True,
        env={"PYTHONHASHSEED": "12345"},
    ).stdout
    here = HashingEmbedder().encode(["Book a flight to Paris"]).tobytes()
    assert other == here


def test_a_known_vector_never_changes() -> None:
    # Pinned: a change to hashing or features would silently invalidate stored vectors.
    vector = HashingEmbedder(dimension=8).encode(["hello"])[0]
    a, b = 0.37796449661254883, 0.7559289932250977
    np.testing.assert_allclose(vector, [0, a, 0, a, -a, 0, b, 0], rtol=1e-6)


def test_it_satisfies_the_embedder_protocol() -> None:
    assert isinstance(HashingEmbedder(), Embedder)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"dimension": 0}, "`dimension` must be an int >= 1, got 0"),
        ({"ngram_sizes": ()}, "`ngram_sizes` must be a non-empty tuple of ints >= 1, got ()"),
        ({"ngram_sizes": (0,)}, "`ngram_sizes` must be a non-empty tuple of ints >= 1, got (0,)"),
        ({"max_chars": 1}, "`max_chars` must be an int >= 2, got 1"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(CacheConfigError) as info:
        HashingEmbedder(**settings)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_a_long_text_is_embedded_from_its_head_and_tail() -> None:
    embedder = HashingEmbedder(max_chars=64)
    text = "start of the request " + "filler words " * 100 + " end of the request"
    assert embedder.window(text) == text[:32] + " " + text[-32:]
    np.testing.assert_array_equal(
        embedder.encode([text]), embedder.encode([text[:32] + " " + text[-32:]])
    )
    # A change inside the window changes the vector; one in the middle does not.
    assert not np.array_equal(embedder.encode([text]), embedder.encode(["x" + text]))
    middle = text[:500] + "other" + text[505:]
    np.testing.assert_array_equal(embedder.encode([text]), embedder.encode([middle]))


def test_a_50_mb_text_takes_bounded_memory_and_work() -> None:
    embedder = HashingEmbedder()
    text = "book a flight to Paris for 2 people " * (50 * 2**20 // 36)
    assert len(text) >= 50 * 10**6
    tracemalloc.start()
    try:
        vector = embedder.encode([text])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Bounded work: the vector is that of an 8 KB window, so hashing costs what 8 KB does.
    np.testing.assert_array_equal(vector, embedder.encode([embedder.window(text)]))
    assert len(embedder.window(text)) <= embedder.max_chars + 1
    # Every n-gram of 50 MB as a Python string took gigabytes; the window's take < 8 MB.
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB while embedding 50 MB"


async def test_a_long_text_is_hashed_off_the_event_loop() -> None:
    embedder = HashingEmbedder()
    text = " ".join(f"word{n}" for n in range(2000))
    done = trio.Event()
    ticks = 0

    async def embed() -> None:
        await embedder.embed([text])
        done.set()

    async def tick() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(embed)
        nursery.start_soon(tick)
    # Hashed on the loop, the embedding would run in one step and the ticker would not run
    # during it; in a worker thread the loop keeps scheduling the ticker meanwhile.
    assert ticks > 10


async def test_a_short_text_is_hashed_inline_without_a_checkpoint() -> None:
    # Inline embedding keeps exact virtual times under MockClock(autojump_threshold=0).
    embedder = HashingEmbedder()
    with trio.CancelScope() as scope:
        scope.cancel()
        vectors = await embedder.embed(["book a flight"])
    np.testing.assert_array_equal(vectors, embedder.encode(["book a flight"]))
