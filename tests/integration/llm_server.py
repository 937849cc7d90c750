"""A small OpenAI-compatible server for the LLM client's integration tests and benchmark.

A hand-written ASGI app served by hypercorn on trio, on 127.0.0.1 with a free port, inside the
caller's nursery. The model name picks the behaviour:

- `slow-stream`: streams a 4-character token every 20 ms, for up to 10 s.
- `stream-<n>-<interval>`: streams `n` tokens, `interval` seconds apart, then usage and [DONE].
- `hold-<seconds>`: waits, then answers whole (or streams 1 token when asked to stream).
- `rate-limit-once`: the first request gets 429 with `Retry-After: 1`, later ones an answer.
- `burst-500`: the first two requests get 500, later ones an answer.
- `bad-request`: 400 with an OpenAI-style error message.
- `tail-<percent>-<factor>-<seconds>`: heavy-tail latency (issue 19); see `_heavy_tail`.

The server counts requests in flight and records, in `trio.current_time()`, when each request
came and when it saw a client disconnect.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

BAD_REQUEST_MESSAGE = "Invalid value for 'max_tokens': must be at most 4096."
TOKEN = "tok "  # 4 characters: exactly one token by the client's estimate


@attrs.define(eq=False)
class LLMServer:
    """The ASGI app and what it observed."""

    base_url: str = ""
    requests: list[tuple[str, float]] = attrs.Factory(list)
    disconnects: list[float] = attrs.Factory(list)
    disconnected: trio.Event = attrs.Factory(trio.Event)
    first_chunk_sent: trio.Event = attrs.Factory(trio.Event)
    in_flight: int = 0
    max_in_flight: int = 0
    seen: Counter[str] = attrs.Factory(Counter)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = json.loads(body)
        model = request["model"]
        self.seen[model] += 1
        self.requests.append((model, trio.current_time()))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self._answer(model, request, receive, send)
        finally:
            self.in_flight -= 1

    async def _answer(
        self, model: str, request: dict[str, Any], receive: Receive, send: Send
    ) -> None:
        stream = bool(request.get("stream"))
        if model == "bad-request":
            await _json(send, 400, {"error": {"message": BAD_REQUEST_MESSAGE}})
        elif model == "rate-limit-once" and self.seen[model] == 1:
            error = {"error": {"message": "Rate limit reached"}}
            await _json(send, 429, error, headers=[(b"retry-after", b"1")])
        elif model == "burst-500" and self.seen[model] <= 2:
            await _json(send, 500, {"error": {"message": "internal error"}})
        elif model == "slow-stream":
            await self._stream(send, receive, tokens=500, interval=0.02)
        elif model.startswith("tail-"):
            await self._heavy_tail(model, send, receive)
        elif model.startswith("stream-"):
            _, count, interval = model.split("-")
            await self._stream(send, receive, tokens=int(count), interval=float(interval))
        else:
            if model.startswith("hold-"):
                await trio.sleep(float(model.removeprefix("hold-")))
            if stream:
                await self._stream(send, receive, tokens=1, interval=0.0)
            else:
                await _json(send, 200, _whole(TOKEN))

    async def _stream(self, send: Send, receive: Receive, *, tokens: int, interval: float) -> None:
        answer = _Answer()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_disconnect, receive, nursery.cancel_scope, answer)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")],
                }
            )
            for _ in range(tokens):
                if interval:
                    await trio.sleep(interval)
                await _chunk(send, {"choices": [{"index": 0, "delta": {"content": TOKEN}}]})
                self.first_chunk_sent.set()
            answer.finished = True
            usage = {"prompt_tokens": 10, "completion_tokens": tokens}
            await _chunk(send, {"choices": [], "usage": usage})
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
            nursery.cancel_scope.cancel()

    # --- Heavy-tail mode (issue 19, hedged calls) -------------------------------------
    async def _heavy_tail(self, model: str, send: Send, receive: Receive) -> None:
        """`tail-<percent>-<factor>-<seconds>`: stream 10 tokens over `seconds`, or over
        `factor` times that for `percent`% of the requests to this model, spread evenly: the
        n-th is slow when `n * percent // 100` steps up (`tail-50-...`: the 2nd, 4th...)."""
        _, percent, factor, seconds = model.split("-")
        n = self.seen[model]
        slow = n * int(percent) // 100 > (n - 1) * int(percent) // 100
        total = float(seconds) * (float(factor) if slow else 1.0)
        await self._stream(send, receive, tokens=10, interval=total / 10)

    # --- end of heavy-tail mode ---------------------------------------------------------

    async def _watch_disconnect(
        self, receive: Receive, streaming: trio.CancelScope, answer: _Answer
    ) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if answer.finished:
            return
        self.disconnects.append(trio.current_time())
        self.disconnected.set()
        streaming.cancel()


@attrs.define
class _Answer:
    finished: bool = False


async def _chunk(send: Send, data: dict[str, Any]) -> None:
    body = f"data: {json.dumps(data)}\n\n".encode()
    await send({"type": "http.response.body", "body": body, "more_body": True})


async def _json(
    send: Send, status: int, data: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(data).encode()})


def _whole(text: str) -> dict[str, Any]:
    return {
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
    }


@asynccontextmanager
async def serve_llm() -> AsyncIterator[LLMServer]:
    """Serve a fresh `LLMServer` on 127.0.0.1 (a free port) for the duration of the block."""
    server = LLMServer()
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 0.1
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, server, config))  # type: ignore[arg-type]
        server.base_url = f"{binds[0]}/v1"
        yield server
        nursery.cancel_scope.cancel()
