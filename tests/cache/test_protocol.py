"""`StepCache` is a static protocol: mypy, run here, says which classes satisfy it."""

from __future__ import annotations

import sys
from pathlib import Path

import trio
from specroute.cache import StepCache, open_cache

from tests.cache.dict_cache import open_dict_cache

ROOT = Path(__file__).parents[2]

# The engine's old view of a cache, which the protocol must refuse: `store` is synchronous
# and takes no seconds.
LEGACY_CACHE = """
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from specroute.cache import (
    CacheHit, CacheKey, CacheMiss, CacheOptions, CacheStatistics, StepCache
)

T = TypeVar("T")


class LegacyCache:
    async def lookup(
        self, step: str, options: CacheOptions, namespace: str, inputs: Mapping[str, Any]
    ) -> CacheHit | CacheMiss:
        raise NotImplementedError

    async def compute_once(self, key: CacheKey, compute: Callable[[], Awaitable[T]]) -> T:
        return await compute()

    def store(self, miss: CacheMiss, value: Any) -> None:
        return None

    def statistics(self) -> CacheStatistics:
        raise NotImplementedError


legacy: StepCache = LegacyCache()
"""


async def test_both_implementations_are_step_caches() -> None:
    # Checked by mypy in `test_mypy_accepts_the_implementations_and_refuses_a_sync_store`.
    async with open_cache() as cache, open_dict_cache() as dict_cache:
        implementations: list[StepCache] = [cache, dict_cache]
        _: StepCache = cache
    assert len(implementations) == 2


async def test_mypy_accepts_the_implementations_and_refuses_a_sync_store(
    tmp_path: Path,
) -> None:
    legacy = tmp_path / "legacy_cache.py"
    legacy.write_text(LEGACY_CACHE)
    checked = [
        "tests/cache/test_protocol.py",
        "tests/cache/test_contract.py",
        "tests/cache/dict_cache.py",
        str(legacy),
    ]
    result = await trio.run_process(
        [sys.executable, "-m", "mypy", "--strict", "--explicit-package-bases", *checked],
        cwd=ROOT,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    report = result.stdout.decode()
    errors = [line for line in report.splitlines() if ": error:" in line]
    assert errors, report
    line = LEGACY_CACHE.splitlines().index("legacy: StepCache = LegacyCache()") + 1
    # By file name: mypy's cache may report the path of an earlier run's identical file.
    assert all(f"legacy_cache.py:{line}: error:" in error for error in errors), report
    assert "def store(self, miss: CacheMiss, value: Any) -> None" in report
    assert "Found 1 error in 1 file (checked 4 source files)" in report
