"""The embedder protocol and the default `HashingEmbedder` (numpy only, no download)."""

from __future__ import annotations

import functools
import hashlib
import re
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs
import numpy as np
import trio

from ._errors import CacheConfigError, EmbeddingError, SemanticInputError
from ._validators import at_least

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import NDArray

__all__ = [
    "DEFAULT_DIMENSION",
    "DEFAULT_MAX_CHARS",
    "DEFAULT_NGRAM_SIZES",
    "INLINE_CHARS",
    "Embedder",
    "HashingEmbedder",
    "embed_input",
]

DEFAULT_DIMENSION = 384
DEFAULT_NGRAM_SIZES = (3, 4, 5)
# 8,192 characters take about 20 ms to hash (about 25,000 features), so the work per text
# is bounded whatever its length; a longer text is embedded from its head and tail.
DEFAULT_MAX_CHARS = 8192
# A batch of at most this many characters (a few ms of hashing) is embedded on the event
# loop; a longer one goes to a worker thread. Short texts stay inline so that runs under
# `trio.testing.MockClock(autojump_threshold=0)` keep exact virtual times (a thread hop
# lets virtual time jump).
INLINE_CHARS = 512
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
    paraphrase and a near-miss ("enable" vs "disable") score alike, so it finds
    near-duplicates, not paraphrases (measured figures: `CacheOptions`).

    Work per text is bounded: a text longer than `max_chars` characters is embedded from
    its first `max_chars // 2` and its last `max_chars // 2` characters (a window at each
    end, joined by a space), so a 50 MB text costs what an 8 KB one does. Two long texts
    that differ only in the middle get the same vector; the exact cache still tells them
    apart. `embed` hashes a batch of more than `INLINE_CHARS` characters (after that cut)
    in a worker thread, so the event loop never blocks on it.

    Args:
        dimension: Length of each vector.
        ngram_sizes: The character n-gram lengths to hash.
        max_chars: The most characters of one text that are hashed (at least 2).
    """

    dimension: int = attrs.field(default=DEFAULT_DIMENSION, validator=at_least(1))
    ngram_sizes: tuple[int, ...] = attrs.field(
        default=DEFAULT_NGRAM_SIZES, validator=_check_ngram_sizes
    )
    max_chars: int = attrs.field(default=DEFAULT_MAX_CHARS, validator=at_least(2))

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed each text; a long batch is hashed in a worker thread.

        Args:
            texts: The texts, in order.

        Returns:
            A normalized float32 array of shape `(len(texts), dimension)`.
        """
        windows = [self.window(text) for text in texts]
        if sum(len(text) for text in windows) <= INLINE_CHARS:
            return self.encode(windows)
        return await trio.to_thread.run_sync(self.encode, windows)

    def window(self, text: str) -> str:
        """Return the part of `text` that is hashed: all of it, or its head and tail.

        Args:
            text: The text to embed.

        Returns:
            `text` itself if it has at most `max_chars` characters, else its first and last
            `max_chars // 2` characters joined by a space.
        """
        if len(text) <= self.max_chars:
            return text
        half = self.max_chars // 2
        return text[:half] + " " + text[-half:]

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed each text on the calling thread; the same vectors `embed` returns.

        Hashing takes about 2-3 ms per 1,000 characters (at most `max_chars` per text), so
        from async code call `embed`, which moves long batches off the event loop.

        Args:
            texts: The texts, in order.

        Returns:
            A normalized float32 array of shape `(len(texts), dimension)`.
        """
        rows = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for index, text in enumerate(texts):
            row = rows[index]
            for feature in self._features(self.window(text)):
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


_MISSING: Any = object()


async def embed_input(
    embedder: Embedder, step: str, name: str, inputs: Mapping[str, Any]
) -> NDArray[np.float32]:
    """The embedding of step `step`'s input `name`, for a semantic lookup.

    Raises:
        SemanticInputError: The step has no such input, or it is not a str.
        EmbeddingError: The embedder did not return one row.
    """
    text = inputs.get(name, _MISSING)
    if text is _MISSING:
        raise SemanticInputError(
            f"step {step!r} names input {name!r} for semantic caching, but its inputs are"
            f" {sorted(inputs)}; set `semantic=` to one of them"
        )
    if not isinstance(text, str):
        raise SemanticInputError(
            f"step {step!r}: input {name!r} is embedded for semantic caching, so it must"
            f" be a str, got {type(text).__qualname__}"
        )
    vectors = np.asarray(await embedder.embed([text]), dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != 1:
        raise EmbeddingError(
            f"step {step!r}: the embedder returned shape {vectors.shape} for one text;"
            " an embedder must return one row per text"
        )
    row: NDArray[np.float32] = vectors[0]
    return row
