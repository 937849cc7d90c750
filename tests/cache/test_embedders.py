"""HashingEmbedder: shape, normalization, determinism in and across processes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
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
    ],
)
def test_bad_settings_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(CacheConfigError) as info:
        HashingEmbedder(**settings)  # type: ignore[arg-type]
    assert str(info.value) == message
