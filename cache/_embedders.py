"""The embedder protocol and the default `HashingEmbedder` (numpy only, no download)."""

from __future__ import annotations

import functools
import hashlib
import re
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs
import numpy as np

from ._errors import CacheConfigError
from ._validators import at_least

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

__all__ = ["DEFAULT_DIMENSION", "DEFAULT_NGRAM_SIZES", "Embedder", "HashingEmbedder"]

DEFAULT_DIMENSION = 384
DEFAULT_NGRAM_SIZES = (3, 4, 5)
_WORD = re.compile(r"\w+")


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors; anything with this one method can back a semantic cache."""

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed each text.

        Args:
            texts: The texts, in order.

        Returns:
            A float32 array of shape `(len(texts), dimension)`, one row per text, in order.
            Rows need not be normalized.

        Raises:
            EmbeddingError: The embedding could not be computed.
        """
        ...


def _check_ngram_sizes(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if (
        not isinstance(value, tuple)
        or not value
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in value)
    ):
        raise CacheConfigError(
            f"`{attribute.name}` must be a non-empty tuple of ints >= 1, got {value!r}"
        )


@functools.lru_cache(maxsize=1 << 16)
def _bucket(feature: str, dimension: int) -> tuple[int, float]:
    # blake2b, not hash(): str hashes are salted per process, and vectors must not be.
    digest = hashlib.blake2b(feature.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    number = int.from_bytes(digest, "big")
    sign = 1.0 if number >> 63 else -1.0
    return number % dimension, sign


@attrs.frozen(kw_only=True)
class HashingEmbedder:
    """Embeds text by feature hashing of words and character n-grams; deterministic.

    Each text is lowercased and cut into words (punctuation dropped); the words, and the
    character n-grams of the words joined by spaces with a space at each end, are hashed
    with blake2b into `dimension` signed buckets, and the row is normalized. Equal texts
    give equal vectors in every process and on every machine. It sees spelling, not
    meaning: the same request with other case, spacing or punctuation scores 1, while a
    paraphrase and a near-miss ("enable" vs "disable") both score 0.7-0.94, so it finds
    near-duplicates, not paraphrases (see `tests/cache/test_false_hits.py`).

    Args:
        dimension: Length of each vector.
        ngram_sizes: The character n-gram lengths to hash.
    """

    dimension: int = attrs.field(default=DEFAULT_DIMENSION, validator=at_least(1))
    ngram_sizes: tuple[int, ...] = attrs.field(
        default=DEFAULT_NGRAM_SIZES, validator=_check_ngram_sizes
    )

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed each text (no I/O: this never awaits anything but returns at once).

        Args:
            texts: The texts, in order.

        Returns:
            A normalized float32 array of shape `(len(texts), dimension)`.
        """
        return self.encode(texts)

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed each text synchronously; the same vectors `embed` returns.

        Args:
            texts: The texts, in order.

        Returns:
            A normalized float32 array of shape `(len(texts), dimension)`.
        """
        rows = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for index, text in enumerate(texts):
            row = rows[index]
            for feature in self._features(text):
                bucket, sign = _bucket(feature, self.dimension)
                row[bucket] += sign
            if not row.any():
                # Features that cancel exactly; one more makes the vector non-zero.
                bucket, sign = _bucket("cancelled:", self.dimension)
                row[bucket] = sign
            row /= np.linalg.norm(row)
        return rows

    def _features(self, text: str) -> list[str]:
        # Case, spacing and punctuation do not change what a request asks for.
        words = _WORD.findall(text.lower())
        features = ["w:" + word for word in words]
        padded = " " + " ".join(words) + " "
        for n in self.ngram_sizes:
            features.extend(f"{n}:{padded[i : i + n]}" for i in range(len(padded) - n + 1))
        # Every text, even "", gets a feature, so no vector is zero.
        return features or ["empty:"]
