"""LLM calls over httpx: OpenAI-compatible and Anthropic clients, limits, retries, prices."""

__all__: list[str] = []
