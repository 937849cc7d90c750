"""Fuzzing the LLM client's edge: whatever a server sends, the client raises only documented
errors and never lets the key out.

Invariants, for any status, content type and body (random bytes mixed with pieces of event
streams, JSON and the key, plain, JSON-escaped or split), cut into any chunks:

1. `complete` returns a `Completion` or raises an `LLMError` (a `SpecrouteError`): never
   another exception, never an `ExceptionGroup`.
2. The key appears in no message, repr, traceback or cause of the error, in no record the
   meter kept, and in no completion text.
3. No more than `AnswerBounds.max_bytes(max_tokens)` of an answer is parsed: a completion's
   text is never longer than the bytes allowed.
"""

from __future__ import annotations

import json
import random
import traceback
from typing import TYPE_CHECKING

import httpx
import trio
import trio.testing
from hypothesis import given, note
from hypothesis import strategies as st
from specroute.engine.llm import (
    AnswerBounds,
    Completion,
    LLMClient,
    LLMError,
    ModelPrice,
    Provider,
    RetryPolicy,
    UsageMeter,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

KEY = "sk-fuzz-SECRET-7c1d9e3a5b"
ESCAPED = "".join(f"\\u{ord(c):04x}" for c in KEY)
PRICES = {"m": ModelPrice(input_per_million=1.0, output_per_million=1.0)}
BOUNDS = AnswerBounds(first_byte=5.0, between_chunks=5.0, bytes_per_token=64, bytes_margin=512)
MAX_TOKENS = 8
RETRY = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01, deadline=60.0)

# Pieces a hostile or broken server might send, the key among them in every spelling.
PIECES = [
    b"data: ",
    b"event: error\n",
    b"event: message_stop\n",
    b"\n",
    b"\r\n",
    b"\r",
    b"\n\n",
    b": ping\n\n",
    b"data: [DONE]\n\n",
    b'{"choices": [{"delta": {"content": "',
    b'"}}]}',
    b'{"error": {"message": "',
    b'"}}',
    b'{"type": "error", "error": {"message": "',
    b'{"type": "content_block_delta", "delta": {"type": "text_delta", "text": "',
    b'{"usage": {"prompt_tokens": 3, "completion_tokens": 99999999}}',
    b'{"choices": [{"message": {"content": "',
    b"<html><body>",
    b"\xff\xfe\xc3",
    KEY.encode(),
    KEY.encode(),
    ESCAPED.encode(),
    KEY[:9].encode(),
    KEY[9:].encode(),
    json.dumps(KEY).encode(),
]

bodies = st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=40)), max_size=30).map(
    b"".join
)


@st.composite
def answers(draw: st.DrawFn) -> tuple[int, str, bytes, list[int]]:
    status = draw(st.sampled_from([200, 200, 200, 400, 401, 429, 500, 502]))
    content_type = draw(
        st.sampled_from(["text/event-stream", "application/json", "text/html", "text/plain", ""])
    )
    body = draw(bodies)
    if draw(st.booleans()):
        body = body * draw(st.integers(1, 200))  # past the size bound, sometimes
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=8)))
    return status, content_type, body, cuts


class Chunks(httpx.AsyncByteStream):
    def __init__(self, body: bytes, cuts: list[int]) -> None:
        self.pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            await trio.sleep(0.01)
            yield piece


def everything_said(exc: BaseException) -> str:
    said = ["".join(traceback.format_exception(exc))]
    cause: BaseException | None = exc
    while cause is not None:
        said += [str(cause), repr(cause), repr(vars(cause))]
        cause = cause.__cause__ or cause.__context__
    return "\n".join(said)


@given(
    answer=answers(),
    api=st.sampled_from(["openai", "anthropic"]),
    stream=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_any_answer_ends_in_a_documented_error_and_keeps_the_key(
    answer: tuple[int, str, bytes, list[int]], api: str, stream: bool, seed: int
) -> None:
    status, content_type, body, cuts = answer
    note(f"body={body!r}")

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": content_type} if content_type else {}
        return httpx.Response(status, headers=headers, stream=Chunks(body, cuts))

    if api == "openai":
        provider = Provider.openai(api_key=KEY, base_url="http://fuzz/v1", prices=PRICES)
    else:
        provider = Provider.anthropic(api_key=KEY, base_url="http://fuzz", prices=PRICES)
    meter = UsageMeter()
    outcome: list[Completion | BaseException] = []

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            client = LLMClient(
                provider=provider,
                http=http,
                retry=RETRY,
                bounds=BOUNDS,
                meter=meter,
                rng=random.Random(seed),
            )
            try:
                outcome.append(
                    await client.complete("hi", model="m", max_tokens=MAX_TOKENS, stream=stream)
                )
            except LLMError as exc:  # 1. only documented errors (anything else fails)
                outcome.append(exc)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    [result] = outcome
    said = [repr(meter.records())]
    if isinstance(result, Completion):
        said += [result.text, repr(result)]
        assert len(result.text) <= BOUNDS.max_bytes(MAX_TOKENS)  # 3.
    else:
        said.append(everything_said(result))
    assert KEY not in "\n".join(said)  # 2.
