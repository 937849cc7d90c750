"""AnnConfig settings and the search breadth the HNSW graph uses by default."""

from __future__ import annotations

import pytest
from specroute.cache import AnnConfig, CacheConfigError
from specroute.cache._ann import expansion_for


@pytest.mark.parametrize(
    ("entries", "expected"),
    [(0, 64), (20_000, 64), (50_000, 128), (100_000, 256), (1_000_000, 512)],
)
def test_search_breadth_grows_with_the_graph(entries: int, expected: int) -> None:
    # Measured on random 384-dim vectors: 64 kept recall 1.000 at 20k, 256 was needed at 100k.
    assert expansion_for(entries) == expected


def test_defaults_are_float32_from_20k_entries_with_scaled_search() -> None:
    config = AnnConfig()
    assert (config.dtype, config.min_entries, config.expansion_search) == ("f32", 20_000, None)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"min_entries": 1}, "`min_entries` must be an int >= 2, got 1"),
        ({"expansion_search": 0}, "`expansion_search` must be an int >= 1, got 0"),
        ({"dtype": "f64"}, "`dtype` must be one of 'f32', 'f16', 'i8', got 'f64'"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(CacheConfigError) as info:
        AnnConfig(**settings)  # type: ignore[arg-type]
    assert str(info.value) == message
