"""Helpers for the LLM client's unit tests: SSE bodies, paced streams, canned answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import httpx
import trio
from specroute.engine.llm import LLMClient

API_KEY = "sk-test-SECRET-0123456789"

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]
MakeClient = Callable[..., LLMClient]


def sse(*events: dict[str, Any] | str, named: bool = False) -> bytes:
    """Encode events as an SSE body; a dict's `type` becomes its `event:` name if `named`."""
    out = []
    for event in events:
        data = event if isinstance(event, str) else json.dumps(event)
        name = f"event: {event['type']}\n" if named and isinstance(event, dict) else ""
        out.append(f"{name}data: {data}\n\n")
    return "".join(out).encode()


async def paced(chunks: Iterable[bytes], *, every: float) -> AsyncIterator[bytes]:
    """Yield `chunks`, one every `every` seconds (virtual time under `autojump_clock`)."""
    for chunk in chunks:
        await trio.sleep(every)
        yield chunk


def openai_answer(
    text: str, *, prompt_tokens: int = 11, completion_tokens: int = 3
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
