"""Exact and semantic caches in front of steps."""

__all__: list[str] = []
