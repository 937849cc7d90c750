"""A simulated provider: an httpx transport that answers like an OpenAI-compatible server.

`Provider.simulated()` is a provider whose transport is a `SimulatedTransport`; open a client on
it like on any other, with `open_llm_client(Provider.simulated())`. `SimulatedModel` says how
the simulated model behaves (it was called `SimulatedProvider`, which it is not).

Because it is a transport, a simulated call goes through the very client code a real one does
(limits, retries, streaming, cancellation, the ledger): only the network is missing. Time is
`trio.sleep`, so it runs in real time, or in virtual time under a test's `autojump_clock`.

A call takes `first_token_latency` (times a seeded log-normal factor when `latency_sigma > 0`)
before its first token, then streams its tokens at `tokens_per_second`, so latency grows with
the answer's length, which is `max_tokens` unless `output_tokens` caps it. Each token is a
3-letter word and a space, 4 characters, so the client's estimate for a stream cut short
(`CHARS_PER_TOKEN`) is exact: a cancelled call is billed its prompt plus the tokens generated
until the cancellation, in proportion to the time it ran.

Failures are drawn per request, with a seeded generator, at the given rates: 429 with
`Retry-After`, 500, a read timeout (after the first-token latency, not the client's whole read
timeout, so simulations stay quick), and a connection dropped halfway through the answer.
"""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING, Any

import attrs
import httpx
import trio

from ._checks import at_least_one, non_negative, optional_at_least_one, optional_positive, positive
from ._messages import Message, as_messages
from ._prices import DEFAULT_PRICES, ModelPrice
from ._usage import estimate_prompt_tokens

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

__all__ = [
    "SIMULATED_BASE_URL",
    "SIMULATED_PRICES",
    "SimulatedModel",
    "SimulatedStatistics",
    "SimulatedTransport",
]

#: The base URL of the simulated provider; requests to it never leave the process.
SIMULATED_BASE_URL = "http://simulated.invalid/v1"
#: `DEFAULT_PRICES` plus two simulated models, priced like gpt-4o-mini and gpt-4o so that
#: simulated dollars are realistic.
SIMULATED_PRICES = DEFAULT_PRICES.with_prices(
    {
        "sim-small": ModelPrice(input_per_million=0.15, output_per_million=0.60),
        "sim-large": ModelPrice(input_per_million=2.50, output_per_million=10.00),
    }
)

_DROPPED = "simulated dropped connection: peer closed before the answer's end"
_WORDS = ("the", "cat", "sat", "and", "ran", "far", "yet", "not", "one", "day")


def _rate(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"`{attribute.name}` must be a rate in [0, 1], got {value!r}")


@attrs.frozen(kw_only=True)
class SimulatedModel:
    """How the simulated model behaves: its speed and the failures injected.

    Attributes:
        first_token_latency: Seconds before the first token (the median when jittered).
        latency_sigma: Sigma of the log-normal factor on `first_token_latency` (0: fixed).
        tokens_per_second: Generation speed after the first token.
        output_tokens: Tokens per answer, capped by `max_tokens` (`None`: `max_tokens`).
        chunk_tokens: Tokens per stream chunk.
        rate_429: Share of requests answered 429 with `Retry-After: retry_after`.
        retry_after: The `Retry-After` of injected 429s, in seconds.
        rate_500: Share of requests answered 500.
        rate_timeout: Share of requests that time out (after the first-token latency).
        rate_drop: Share of requests whose connection drops halfway through the answer.
        seed: Seed of the latency and failure draws.
    """

    first_token_latency: float = attrs.field(default=0.2, validator=non_negative)
    latency_sigma: float = attrs.field(default=0.0, validator=non_negative)
    tokens_per_second: float = attrs.field(default=200.0, validator=positive)
    output_tokens: int | None = attrs.field(default=None, validator=optional_at_least_one)
    chunk_tokens: int = attrs.field(default=8, validator=at_least_one)
    rate_429: float = attrs.field(default=0.0, validator=_rate)
    retry_after: float = attrs.field(default=1.0, validator=optional_positive)
    rate_500: float = attrs.field(default=0.0, validator=_rate)
    rate_timeout: float = attrs.field(default=0.0, validator=_rate)
    rate_drop: float = attrs.field(default=0.0, validator=_rate)
    seed: int = 0

    def __attrs_post_init__(self) -> None:
        total = self.rate_429 + self.rate_500 + self.rate_timeout + self.rate_drop
        if total > 1:
            raise ValueError(f"the failure rates must add up to <= 1, got {total}")


@attrs.frozen(kw_only=True)
class SimulatedStatistics:
    """What a `SimulatedTransport` has served.

    Attributes:
        requests: Requests received.
        completed: Answers sent in full.
        disconnected: Answers the client closed before their end (cancellations).
        injected_429: Requests answered 429.
        injected_500: Requests answered 500.
        injected_timeouts: Requests that timed out.
        injected_drops: Connections dropped mid-answer.
        in_flight: Requests being answered now.
        max_in_flight: The most requests answered at once.
    """

    requests: int
    completed: int
    disconnected: int
    injected_429: int
    injected_500: int
    injected_timeouts: int
    injected_drops: int
    in_flight: int
    max_in_flight: int


@attrs.define(eq=False)
class _Counts:
    requests: int = 0
    completed: int = 0
    disconnected: int = 0
    injected_429: int = 0
    injected_500: int = 0
    injected_timeouts: int = 0
    injected_drops: int = 0
    in_flight: int = 0
    max_in_flight: int = 0


@attrs.define(eq=False)
class SimulatedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that answers Chat Completions requests as `simulation` says.

    Args:
        simulation: The simulated model's behaviour.
    """

    simulation: SimulatedModel = attrs.field(factory=SimulatedModel)
    _rng: random.Random = attrs.field(init=False, repr=False)
    _counts: _Counts = attrs.field(init=False, factory=_Counts, repr=False)

    def __attrs_post_init__(self) -> None:
        self._rng = random.Random(self.simulation.seed)

    def statistics(self) -> SimulatedStatistics:
        """Return what the transport has served so far."""
        return SimulatedStatistics(**attrs.asdict(self._counts))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (called by httpx)."""
        body = json.loads(request.content)
        prompt = as_messages(body["messages"])
        sim = self.simulation
        counts = self._counts
        counts.requests += 1
        draw = self._rng.random()
        latency = sim.first_token_latency
        if sim.latency_sigma > 0:
            latency *= self._rng.lognormvariate(0.0, sim.latency_sigma)
        if draw < sim.rate_429:
            counts.injected_429 += 1
            return _error(429, "simulated rate limit", {"retry-after": f"{sim.retry_after:g}"})
        draw -= sim.rate_429
        if draw < sim.rate_500:
            counts.injected_500 += 1
            return _error(500, "simulated server error", {})
        draw -= sim.rate_500
        if draw < sim.rate_timeout:
            counts.injected_timeouts += 1
            await trio.sleep(latency)
            raise httpx.ReadTimeout("simulated read timeout", request=request)
        drop = draw - sim.rate_timeout < sim.rate_drop
        answer = _Answer(
            transport=self,
            prompt=prompt,
            model=str(body["model"]),
            tokens=min(body["max_tokens"], sim.output_tokens or body["max_tokens"]),
            latency=latency,
            drop=drop,
            request=request,
            content=_structured_content(body),
        )
        if drop:
            counts.injected_drops += 1
        if body.get("stream"):
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=answer)
        return await answer.whole()


@attrs.define(eq=False)
class _Answer(httpx.AsyncByteStream):
    """One answer, streamed as SSE chunks or returned whole."""

    transport: SimulatedTransport
    prompt: Sequence[Message]
    model: str
    tokens: int
    latency: float
    drop: bool
    request: httpx.Request
    # What a structured call gets: JSON that fits its schema (None: words).
    content: str | None = None
    _finished: bool = False
    _closed: bool = False

    async def whole(self) -> httpx.Response:
        with self._serving():
            await trio.sleep(
                self.latency + self.tokens / self.transport.simulation.tokens_per_second
            )
            if self.drop:
                raise httpx.RemoteProtocolError(
                    "simulated dropped connection", request=self.request
                )
            self._finished = True
        return httpx.Response(
            200,
            json={
                "object": "chat.completion",
                "model": self.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self._piece(0, self.tokens)},
                        "finish_reason": "length",
                    }
                ],
                "usage": self._usage(self.tokens),
            },
        )

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sim = self.transport.simulation
        with self._serving():
            await trio.sleep(self.latency)
            # A dropped answer breaks after half its tokens.
            end = self.tokens // 2 if self.drop else self.tokens
            for start in range(0, end, sim.chunk_tokens):
                count = min(sim.chunk_tokens, end - start)
                await trio.sleep(count / sim.tokens_per_second)
                delta = {"choices": [{"index": 0, "delta": {"content": self._piece(start, count)}}]}
                yield _sse(delta)
            if self.drop:
                raise httpx.RemoteProtocolError(
                    "simulated dropped connection", request=self.request
                )
            yield _sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
            yield _sse({"choices": [], "usage": self._usage(self.tokens)})
            yield b"data: [DONE]\n\n"
            self._finished = True

    async def aclose(self) -> None:
        if not self._finished and not self._closed:
            self.transport._counts.disconnected += 1
        self._closed = True

    def _piece(self, start: int, count: int) -> str:
        """Tokens `start` to `start + count` of the answer: words, or that share of its JSON
        (every token's share together is the whole JSON)."""
        if self.content is None:
            return _text(start, count)
        total = max(self.tokens, 1)
        length = len(self.content)
        end = length if start + count >= self.tokens else length * (start + count) // total
        return self.content[length * start // total : end]

    def _usage(self, output_tokens: int) -> dict[str, int]:
        prompt_tokens = estimate_prompt_tokens(self.prompt)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": prompt_tokens + output_tokens,
        }

    def _serving(self) -> _InFlight:
        return _InFlight(self.transport._counts, self)


@attrs.define(eq=False)
class _InFlight:
    counts: _Counts
    answer: _Answer

    def __enter__(self) -> None:
        self.counts.in_flight += 1
        self.counts.max_in_flight = max(self.counts.max_in_flight, self.counts.in_flight)

    def __exit__(self, *exc_info: object) -> None:
        self.counts.in_flight -= 1
        if self.answer._finished:
            self.counts.completed += 1


def _text(start: int, count: int) -> str:
    return "".join(f"{_WORDS[(start + i) % len(_WORDS)]} " for i in range(count))


def _sse(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


def _error(status: int, message: str, headers: dict[str, str]) -> httpx.Response:
    error = {"error": {"message": message, "type": "simulated", "code": status}}
    return httpx.Response(status, json=error, headers=headers)


def _structured_content(body: dict[str, Any]) -> str | None:
    """For a request asking for JSON that fits a schema (OpenAI `response_format`), the
    simplest JSON that fits it; None for a plain request."""
    response_format = body.get("response_format")
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    schema = response_format.get("json_schema", {}).get("schema", {})
    return json.dumps(_instance(schema, schema))


def _instance(schema: Any, root: Any) -> Any:
    """A value that fits `schema` (the subset `specroute.engine.llm` writes and reads)."""
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        target: Any = root
        for part in str(schema["$ref"]).lstrip("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return _instance(target, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combined in ("anyOf", "oneOf"):
        if schema.get(combined):
            return _instance(schema[combined][0], root)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: _instance(sub, root) for name, sub in properties.items()}
    if kind == "array":
        return [_instance(schema.get("items", {}), root)] * max(1, schema.get("minItems", 1))
    if kind == "string":
        return "x" * max(1, schema.get("minLength", 1))
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if kind == "boolean":
        return True
    return None
