"""A small OpenAI-compatible server for the LLM client's integration tests and benchmark.

A hand-written ASGI app served by hypercorn on trio, on 127.0.0.1 with a free port, inside the
caller's nursery. The model name picks the behaviour:

- `slow-stream`: streams a 4-character token every 20 ms, for up to 10 s.
- `stream-<n>-<interval>`: streams `n` tokens, `interval` seconds apart, then usage and [DONE].
- `hold-<seconds>`: waits, then answers whole (or streams 1 token when asked to stream).
- `rate-limit-once`: the first request gets 429 with `Retry-After: 1`, later ones an answer.
- `burst-500`: the first two requests get 500, later ones an answer.
- `bad-request`: 400 with an OpenAI-style error message.
- `edge-...`: hostile and careless servers for the client's edge (issue 13), in their own
  block below `serve_llm`: `edge-echo-<path>` echoes the request's key on one error path,
  `edge-html` answers a stream with a web page, `edge-cut-mid-line` ends a stream inside a
  line, `edge-huge` sends a 50 MB body, `edge-endless` streams without end, `edge-hung`
  never answers, `edge-stall` stalls after its first chunk.
- `tool-*` and `schema-*`: tool calls and structured answers (see the block marked
  "Tool calls and structured output").
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
from specroute.engine.llm._simulated import _structured_content

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

BAD_REQUEST_MESSAGE = "Invalid value for 'max_tokens': must be at most 4096."
TOKEN = "tok "  # 4 characters: exactly one token by the client's estimate
#: The `schema-*` models' fitting answer.
SCHEMA_ANSWER = '{"name": "blue", "hex": "#0000ff"}'
#: The call each `tool-*` model makes: (tool name, arguments JSON).
TOOL_CALLS = {
    "tool-loop": ("lookup_price", '{"sku": "A1"}'),
    "tool-failing": ("explode", "{}"),
    "tool-slow": ("lookup_price", '{"sku": "A1"}'),
    "tool-quote": ("lookup_price", '{"sku": "A1"}'),
}


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
    headers: dict[bytes, bytes] = attrs.Factory(dict)
    sent_bytes: int = 0

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
        self.headers = dict(scope["headers"])
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
        if model.startswith("edge-"):
            await _edge(self, model, receive, send)
        elif model == "bad-request":
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
        elif model.startswith(("tool-", "schema-")):
            await self._tools_answer(model, request, receive, send)
        else:
            if model.startswith("hold-"):
                await trio.sleep(float(model.removeprefix("hold-")))
            # Asked for JSON that fits a schema: the simplest such JSON, as the simulated
            # provider answers it.
            text = _structured_content(request) or TOKEN
            if stream:
                await self._stream(send, receive, tokens=1, interval=0.0, text=text)
            else:
                await _json(send, 200, _whole(text))

    async def _stream(
        self, send: Send, receive: Receive, *, tokens: int, interval: float, text: str = TOKEN
    ) -> None:
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
                await _chunk(send, {"choices": [{"index": 0, "delta": {"content": text}}]})
                self.first_chunk_sent.set()
            answer.finished = True
            usage = {"prompt_tokens": 10, "completion_tokens": tokens}
            await _chunk(send, {"choices": [], "usage": usage})
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
            nursery.cancel_scope.cancel()

    # --- Tool calls and structured output (issue 18) ------------------------------------------
    # The conversation picks the answer, so a tool loop or a structured retry plays out:
    # - `tool-loop`: calls `lookup_price` {"sku": "A1"}; once the last message is a tool
    #   result, answers `result: <that result>`.
    # - `tool-failing`: calls `explode` {}; then answers `result: <the tool message>`.
    # - `tool-slow`: like `tool-loop`, but the final answer streams 200 tokens 50 ms apart.
    # - `tool-quote`: like `tool-loop`, but answers `{"sku": "A1", "price": <the result>}`.
    # - `schema-invalid-json`: answers `blue, I think` until the conversation holds a retry
    #   prompt, then `SCHEMA_ANSWER`.
    # - `schema-mismatch`: always answers `{"name": "blue"}` (no `hex`).
    # - `schema-ok`: answers `SCHEMA_ANSWER`.
    # A streamed answer comes in 8-character pieces; tool arguments too.

    async def _tools_answer(
        self, model: str, request: dict[str, Any], receive: Receive, send: Send
    ) -> None:
        messages = request["messages"]
        stream = bool(request.get("stream"))
        answered = messages[-1]["role"] == "tool"
        if model.startswith("tool-") and not answered:
            name, arguments = TOOL_CALLS[model]
            call = {"id": f"call_{self.seen[model]}", "name": name, "arguments": arguments}
            await self._tool_call(send, receive, call, stream=stream)
            return
        if model == "tool-quote":
            text = json.dumps({"sku": "A1", "price": float(messages[-1]["content"])})
        elif model.startswith("tool-"):
            text = f"result: {messages[-1]['content']}"
        elif model == "schema-invalid-json":
            retried = any(m["role"] == "user" and "does not fit" in m["content"] for m in messages)
            text = SCHEMA_ANSWER if retried else "blue, I think"
        elif model == "schema-mismatch":
            text = '{"name": "blue"}'
        else:
            text = SCHEMA_ANSWER
        if model == "tool-slow":
            await self._stream(send, receive, tokens=200, interval=0.05)
        elif stream:
            pieces = [text[i : i + 8] for i in range(0, len(text), 8)]
            deltas = [{"content": piece} for piece in pieces]
            await self._chunks(send, receive, deltas, finish="stop")
        else:
            await _json(send, 200, _whole(text))

    async def _tool_call(
        self, send: Send, receive: Receive, call: dict[str, str], *, stream: bool
    ) -> None:
        if not stream:
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["name"], "arguments": call["arguments"]},
                    }
                ],
            }
            answer = _whole("")
            answer["choices"][0].update(message=message, finish_reason="tool_calls")
            await _json(send, 200, answer)
            return
        arguments = call["arguments"]
        first = {"index": 0, "id": call["id"], "type": "function"}
        first["function"] = {"name": call["name"], "arguments": ""}
        deltas = [{"tool_calls": [first]}] + [
            {"tool_calls": [{"index": 0, "function": {"arguments": arguments[i : i + 8]}}]}
            for i in range(0, len(arguments), 8)
        ]
        await self._chunks(send, receive, deltas, finish="tool_calls")

    async def _chunks(
        self, send: Send, receive: Receive, deltas: list[dict[str, Any]], *, finish: str
    ) -> None:
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
            for delta in deltas:
                await _chunk(send, {"choices": [{"index": 0, "delta": delta}]})
            answer.finished = True
            end = {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
            await _chunk(send, end)
            usage = {"prompt_tokens": 10, "completion_tokens": len(deltas)}
            await _chunk(send, {"choices": [], "usage": usage})
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
            nursery.cancel_scope.cancel()

    # --- end of the tool-call and structured-output block --------------------------------------
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


# --- Edge modes (issue 13): servers that leak, lie, hang or never stop. -------------------

#: Each path on which an `edge-echo-<path>` model echoes the request's key back.
ECHO_PATHS = (
    "status-json",  # 401, the key inside the JSON error message
    "status-escaped",  # 401, the key JSON-escaped (`\\u0073k-...`) inside the message
    "status-cut",  # 502, a non-JSON body with the key straddling its 300th character
    "openai-event",  # a stream whose OpenAI-style error chunk holds the key
    "anthropic-event",  # a stream whose Anthropic-style `error` event holds the key
    "chunk-not-json",  # a stream chunk that is not JSON, starting with the key
    "chunk-not-object",  # a stream chunk that is a JSON string holding the key
    "body-not-json",  # a whole 200 body that is not JSON, starting with the key
    "body-no-choices",  # a whole 200 body with the key at the 200-character cut
    "html-page",  # a streamed 200 that is a web page quoting the key
)
HUGE_BYTES = 50 * 1024 * 1024


def _key_of(server: LLMServer) -> str:
    bearer = server.headers.get(b"authorization", b"").decode().removeprefix("Bearer ")
    return bearer or server.headers.get(b"x-api-key", b"").decode()


async def _edge(server: LLMServer, model: str, receive: Receive, send: Send) -> None:
    key = _key_of(server)
    if model.startswith("edge-echo-"):
        await _echo(model.removeprefix("edge-echo-"), key, send)
    elif model == "edge-html":
        page = b"<!doctype html>\n<html><body><h1>Welcome to nginx!</h1></body></html>\n"
        await _raw(send, 200, "text/html; charset=utf-8", page)
    elif model == "edge-cut-mid-line":
        chunk = {"choices": [{"index": 0, "delta": {"content": TOKEN}}]}
        body = f'data: {json.dumps(chunk)}\n\ndata: {{"choi'.encode()
        await _raw(send, 200, "text/event-stream", body)
    elif model == "edge-huge":
        # A well-formed completion whose text is 50 MB, for `max_tokens=64`.
        await _start(send, 200, "application/json")
        head = b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "'
        await send({"type": "http.response.body", "body": head, "more_body": True})
        piece = b"x" * 65536
        while server.sent_bytes < HUGE_BYTES:
            server.sent_bytes += len(piece)
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        tail = b'"}, "finish_reason": "length"}]}'
        await send({"type": "http.response.body", "body": tail})
    elif model in ("edge-endless", "edge-stall"):
        await _start(send, 200, "text/event-stream")
        chunk = {"choices": [{"index": 0, "delta": {"content": TOKEN}}]}
        while True:
            server.sent_bytes += 1
            await _chunk(send, chunk)
            server.first_chunk_sent.set()
            await trio.sleep(3600 if model == "edge-stall" else 0.001)
    elif model == "edge-hung":
        while (await receive())["type"] != "http.disconnect":
            pass
        server.disconnects.append(trio.current_time())
    else:
        raise ValueError(f"unknown edge mode {model!r}")


async def _echo(path: str, key: str, send: Send) -> None:
    said = f"Incorrect API key provided: {key}"
    escaped = "".join(f"\\u{ord(c):04x}" for c in key)
    if path == "status-json":
        await _json(send, 401, {"error": {"message": said}})
    elif path == "status-escaped":
        body = '{"error": {"message": "Incorrect API key provided: ' + escaped + '"}}'
        await _raw(send, 401, "application/json", body.encode())
    elif path == "status-cut":
        body = "x" * (300 - len(key) // 2) + key + " upstream said no"
        await _raw(send, 502, "text/plain", body.encode())
    elif path == "openai-event":
        error = f"data: {json.dumps({'error': {'message': said}})}\n\n"
        await _raw(send, 200, "text/event-stream", error.encode())
    elif path == "anthropic-event":
        event = {"type": "error", "error": {"type": "api_error", "message": said}}
        body = f"event: error\ndata: {json.dumps(event)}\n\n"
        await _raw(send, 200, "text/event-stream", body.encode())
    elif path == "chunk-not-json":
        await _raw(send, 200, "text/event-stream", f"data: {key} is wrong\n\n".encode())
    elif path == "chunk-not-object":
        await _raw(send, 200, "text/event-stream", f"data: {json.dumps(said)}\n\n".encode())
    elif path == "body-not-json":
        await _raw(send, 200, "application/json", f"{key} is not allowed here".encode())
    elif path == "body-no-choices":
        # `str(data)` puts the key across the 200th character.
        data = {"note": "y" * (179 - len(key) // 2), "key": key}
        await _json(send, 200, data)
    elif path == "html-page":
        page = f"<html><body>Unauthorized: {key}</body></html>\n"
        await _raw(send, 200, "text/html", page.encode())
    else:
        raise ValueError(f"unknown echo path {path!r}")


async def _start(send: Send, status: int, content_type: str) -> None:
    headers = [(b"content-type", content_type.encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def _raw(send: Send, status: int, content_type: str, body: bytes) -> None:
    await _start(send, status, content_type)
    await send({"type": "http.response.body", "body": body})
