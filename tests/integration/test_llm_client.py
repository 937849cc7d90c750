"""The LLM client against a real local HTTP server (hypercorn on trio, 127.0.0.1).

Real sleeps are allowed here; every test stays well under a second or two.
"""

from __future__ import annotations

import gc
import json
import traceback
from typing import TYPE_CHECKING

import httpx
import pytest
import trio
from llm_server import BAD_REQUEST_MESSAGE, ECHO_PATHS, HUGE_BYTES, LLMServer, serve_llm
from specroute.engine import Flow, StepFailedError, StepStatus, router, step
from specroute.engine.llm import (
    DEFAULT_PRICES,
    AnswerBounds,
    CallStatus,
    LLMClient,
    LLMError,
    ModelPrice,
    Provider,
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderLimits,
    ProviderResponseError,
    ProviderTimeoutError,
    RetryBudgetExceededError,
    RetryEvent,
    RetryPolicy,
    UsageMeter,
    open_llm_client,
    record_usage,
)
from specroute.engine.report import RunLog
from specroute.routes import Always, Route

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

pytestmark = pytest.mark.integration

PRICE = ModelPrice(input_per_million=1.0, output_per_million=2.0)
PRICES = DEFAULT_PRICES.with_prices(
    dict.fromkeys(("slow-stream", "rate-limit-once", "burst-500", "hold-0.1", "stream-3-0"), PRICE)
)
FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.05, deadline=5.0)


@pytest.fixture
async def server() -> AsyncIterator[LLMServer]:
    async with serve_llm() as running:
        yield running


def provider(server: LLMServer, *, max_in_flight: int = 8) -> Provider:
    return Provider.openai(
        api_key="sk-local-test",
        base_url=server.base_url,
        limits=ProviderLimits(max_in_flight=max_in_flight),
    )


def assert_no_stuck_connection(client: LLMClient) -> None:
    """Every pooled connection is idle or closed, and no request waits for one."""
    pool = client.http._transport._pool  # type: ignore[attr-defined]
    assert pool._requests == []
    stuck = [c for c in pool.connections if not (c.is_idle() or c.is_closed())]
    assert stuck == []


async def test_cancelled_branch_closes_its_stream(server: LLMServer) -> None:
    branch_meter = UsageMeter()
    branch_scope = trio.CancelScope()
    times: dict[str, float] = {}

    async with open_llm_client(provider(server), prices=PRICES) as client:

        async def speculative_branch() -> None:
            with branch_scope, record_usage(branch_meter):
                await client.complete("Write a long essay.", model="slow-stream", max_tokens=2000)
            times["branch_returned"] = trio.current_time()

        async def router() -> None:
            await server.first_chunk_sent.wait()
            await trio.sleep(0.1)  # let a few tokens arrive
            times["cancelled"] = trio.current_time()
            branch_scope.cancel()  # the router picked the other branch

        async with trio.open_nursery() as nursery:
            nursery.start_soon(speculative_branch)
            nursery.start_soon(router)

        with trio.fail_after(1.0):
            await server.disconnected.wait()
        assert times["branch_returned"] - times["cancelled"] < 0.05
        assert server.disconnects[0] - times["cancelled"] < 0.5
        assert_no_stuck_connection(client)

    [record] = branch_meter.records()
    assert record.status is CallStatus.CANCELLED
    assert record.usage.partial
    assert record.usage.estimated  # the usage chunk never came: counted from the text
    assert 3 <= record.usage.output_tokens < 100  # one 4-character token per 20 ms
    assert record.usage.input_tokens > 0
    assert record.cost is not None
    assert record.cost > 0
    assert client.meter.statistics().cancelled_cost == record.cost


async def test_429_is_retried_after_retry_after(server: LLMServer) -> None:
    async with open_llm_client(provider(server), prices=PRICES) as client:
        completion = await client.complete("hi", model="rate-limit-once", max_tokens=5)
        assert_no_stuck_connection(client)

    first, second = (at for _, at in server.requests)
    assert 1.0 <= second - first < 1.3
    assert [a.status_code for a in completion.attempts] == [429, 200]
    assert completion.attempts[0].retry_after == 1.0


async def test_500_burst_succeeds_on_retry(server: LLMServer) -> None:
    async with open_llm_client(provider(server), prices=PRICES, retry=FAST_RETRY) as client:
        completion = await client.complete("hi", model="burst-500", max_tokens=5)
        assert_no_stuck_connection(client)
    assert [a.status_code for a in completion.attempts] == [500, 500, 200]
    assert completion.text == "tok "


async def test_every_retry_is_told_before_its_wait(server: LLMServer) -> None:
    events: list[RetryEvent] = []
    async with open_llm_client(
        provider(server), prices=PRICES, retry=FAST_RETRY, on_retry=events.append
    ) as client:
        completion = await client.complete("STAGE: hi", model="burst-500", max_tokens=5)
    assert [(e.attempt, e.max_attempts, e.model) for e in events] == [
        (2, FAST_RETRY.max_attempts, "burst-500"),
        (3, FAST_RETRY.max_attempts, "burst-500"),
    ]
    assert all("500" in e.error and e.provider == "openai" for e in events)
    assert events[0].prompt[-1].content == "STAGE: hi"  # calls can be told apart
    # Each was told the wait the client then made before the next attempt.
    assert [e.delay for e in events] == [a.delay for a in completion.attempts[:2]]
    assert all(0 < e.delay <= FAST_RETRY.max_delay for e in events)


async def test_400_fails_at_once_with_the_server_message(server: LLMServer) -> None:
    async with open_llm_client(provider(server), prices=PRICES) as client:
        with pytest.raises(ProviderHTTPError) as caught:
            await client.complete("hi", model="bad-request", max_tokens=99999)
        assert_no_stuck_connection(client)
    assert caught.value.status == 400
    assert caught.value.provider_message == BAD_REQUEST_MESSAGE
    assert BAD_REQUEST_MESSAGE in str(caught.value)
    assert server.seen["bad-request"] == 1


@pytest.mark.parametrize("stream", [False, True])
async def test_cap_of_two_holds_at_the_server(server: LLMServer, stream: bool) -> None:
    shared = provider(server, max_in_flight=2)
    # Two clients (two runs, say) share the provider, so they share its cap.
    async with (
        open_llm_client(shared, prices=PRICES) as first,
        open_llm_client(shared, prices=PRICES) as second,
    ):
        async with trio.open_nursery() as nursery:
            for client in (first, second) * 3:
                nursery.start_soon(
                    lambda c=client: c.complete("hi", model="hold-0.1", max_tokens=5, stream=stream)
                )
        assert_no_stuck_connection(first)
        assert_no_stuck_connection(second)
    assert server.seen["hold-0.1"] == 6
    assert server.max_in_flight == 2


async def test_connection_is_reused_after_a_complete_stream(server: LLMServer) -> None:
    async with open_llm_client(provider(server), prices=PRICES) as client:
        for _ in range(3):
            await client.complete("hi", model="stream-3-0", max_tokens=5, stream=True)
        pool = client.http._transport._pool  # type: ignore[attr-defined]
        assert len(pool.connections) == 1
        assert pool.connections[0].is_idle()


async def test_refused_connection_is_retried_then_reported(server: LLMServer) -> None:
    closed_port = Provider.openai(api_key="k", base_url="http://127.0.0.1:9/v1")
    policy = RetryPolicy(max_attempts=2, base_delay=0.01, deadline=2.0)
    async with open_llm_client(closed_port, retry=policy, prices=PRICES) as client:
        with pytest.raises(Exception, match="gave up after 2 attempt") as caught:
            await client.complete("hi", model="hold-0.1", max_tokens=5)
    assert isinstance(caught.value.__cause__.__cause__, httpx.ConnectError)  # type: ignore[union-attr]


# --- The client's edge (issue 13): hostile and careless servers. ---------------------------

SECRET = "sk-edge-SECRET-4f9c2a7b1e5d"
EDGE_MODELS = [f"edge-echo-{path}" for path in ECHO_PATHS] + [
    f"edge-{mode}" for mode in ("html", "cut-mid-line", "huge", "endless", "hung", "stall")
]
# Prices for one's own models, in one line (a mapping added to the built-in table).
EDGE_PRICES = dict.fromkeys(EDGE_MODELS, PRICE)
STREAMED_PATHS = {"openai-event", "anthropic-event", "chunk-not-json", "chunk-not-object"}


def edge_provider(server: LLMServer, *, api: str = "openai") -> Provider:
    if api == "anthropic":
        base_url = server.base_url.removesuffix("/v1")
        return Provider.anthropic(api_key=SECRET, base_url=base_url, prices=EDGE_PRICES)
    return Provider.openai(api_key=SECRET, base_url=server.base_url, prices=EDGE_PRICES)


def everything_said(exc: BaseException) -> str:
    """Every text a user can see of `exc`: its message, repr, traceback and chained causes."""
    said = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    cause: BaseException | None = exc
    while cause is not None:
        said += [str(cause), repr(cause), repr(vars(cause))]
        cause = cause.__cause__ or cause.__context__
    return "\n".join(said)


@pytest.mark.parametrize("path", ECHO_PATHS)
async def test_an_echoed_key_is_nowhere_the_user_can_see(server: LLMServer, path: str) -> None:
    api = "anthropic" if path == "anthropic-event" else "openai"
    meter = UsageMeter()
    async with open_llm_client(edge_provider(server, api=api), retry=FAST_RETRY) as client:
        with pytest.raises(LLMError) as caught:
            await client.complete(
                "hi",
                model=f"edge-echo-{path}",
                max_tokens=8,
                stream=path in STREAMED_PATHS or path == "html-page",
                meter=meter,
            )
    assert server.seen[f"edge-echo-{path}"] >= 1
    [record] = meter.records()
    seen = "\n".join([everything_said(caught.value), repr(record), str(record.error)])
    assert record.error is not None
    assert SECRET not in seen
    # Not even the key's start, where a cut straddled it.
    assert SECRET[:12] not in seen


async def test_an_echoed_key_stays_out_of_trace_log_and_reports(
    server: LLMServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from specroute.engine.report._cli import main

    async with open_llm_client(edge_provider(server), retry=FAST_RETRY) as llm:

        @step
        async def decide(request: str) -> Route:
            await trio.sleep(0.2)  # the speculative branch fails first
            return Route("good")

        @step(output="text")
        async def leaky(request: str) -> str:
            answer = await llm.complete(
                request, model="edge-echo-openai-event", max_tokens=8, stream=True
            )
            return answer.text

        @step(output="text")
        async def good() -> str:
            return "fine"

        branches = {"bad": Flow([leaky]), "good": Flow([good])}
        flow = Flow([router(decide, branches)], name="edge")
        result = await flow.run(request="hi", speculate=Always())
        with pytest.raises(StepFailedError) as failed:
            await Flow([leaky], name="chosen").run(request="hi")

    [entry] = [e for e in result.trace if e.step == "leaky"]
    assert entry.status is StepStatus.FAILED
    assert entry.wasted
    assert entry.error
    log = tmp_path / "runs.jsonl"
    with RunLog(log) as run_log:
        run_log.append(result)
    html = tmp_path / "report.html"
    outputs = [repr(result.trace), everything_said(failed.value), log.read_text()]
    for args in ([], ["--json"], ["--html", str(html)]):
        status = await trio.to_thread.run_sync(main, ["report", str(log), *args])
        assert status == 0
        captured = capsys.readouterr()
        outputs += [captured.out, captured.err]
        if args == ["--json"]:
            assert json.loads(captured.out)
    outputs.append(html.read_text())
    assert SECRET not in "\n".join(outputs)
    assert "[redacted]" in "\n".join(outputs)


async def test_a_web_page_for_a_stream_says_the_base_url_is_wrong(server: LLMServer) -> None:
    async with open_llm_client(edge_provider(server), retry=FAST_RETRY) as client:
        with pytest.raises(ProviderResponseError, match="does not speak OpenAI Chat") as caught:
            await client.complete("hi", model="edge-html", max_tokens=300, stream=True)
    assert "text/html" in str(caught.value)
    assert server.seen["edge-html"] == 1  # not retried


async def test_a_stream_cut_mid_line_is_a_cut_and_retried(server: LLMServer) -> None:
    retry = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01, deadline=5.0)
    async with open_llm_client(edge_provider(server), retry=retry) as client:
        with pytest.raises(RetryBudgetExceededError) as caught:
            await client.complete("hi", model="edge-cut-mid-line", max_tokens=300, stream=True)
    assert isinstance(caught.value.__cause__, ProviderConnectionError)
    assert "cut short" in str(caught.value.__cause__)
    assert server.seen["edge-cut-mid-line"] == 2
    # Both attempts are billed for the one token each received.
    assert [a.usage.output_tokens for a in caught.value.attempts] == [1, 1]


async def test_a_huge_answer_is_not_read_past_its_bound(server: LLMServer) -> None:
    meter = UsageMeter()
    async with open_llm_client(edge_provider(server), retry=FAST_RETRY) as client:
        with pytest.raises(ProviderResponseError, match="passed 1,114,112 bytes"):
            await client.complete("hi", model="edge-huge", max_tokens=64, stream=False, meter=meter)
    assert server.seen["edge-huge"] == 1
    assert server.sent_bytes < HUGE_BYTES / 4  # the client hung up early
    [record] = meter.records()
    assert record.usage.output_tokens == 0  # nothing parsed: not 13M tokens


async def test_an_endless_stream_ends_at_the_deadline_max_tokens_sets(server: LLMServer) -> None:
    bounds = AnswerBounds(first_byte=0.3, seconds_per_token=0.01)  # 0.3 s + 20 * 0.01 s
    async with open_llm_client(edge_provider(server), bounds=bounds) as client:
        start = trio.current_time()
        with pytest.raises(RetryBudgetExceededError, match=r"deadline \(0.5 s\)"):
            await client.complete("hi", model="edge-endless", max_tokens=20, stream=True)
        # Real time on a shared machine: not before the deadline, and not long after.
        assert 0.5 <= trio.current_time() - start < 1.5


@pytest.mark.parametrize(
    ("model", "phase"), [("edge-hung", "first_byte"), ("edge-stall", "between")]
)
async def test_a_silent_server_is_given_up_on_by_the_bounds(
    server: LLMServer, model: str, phase: str
) -> None:
    bounds = AnswerBounds(first_byte=0.2, between_chunks=0.2)
    retry = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01)
    async with open_llm_client(edge_provider(server), bounds=bounds, retry=retry) as client:
        start = trio.current_time()
        with pytest.raises(RetryBudgetExceededError) as caught:
            await client.complete("hi", model=model, max_tokens=300, stream=True)
        assert trio.current_time() - start < 1.5
    assert isinstance(caught.value.__cause__, ProviderTimeoutError)
    assert f"AnswerBounds.{phase}" in str(caught.value.__cause__)
    assert server.seen[model] == 2


# httpcore leaves the request body's byte iterator (httpx's) suspended when a send is
# cancelled midway; it is finalised, with a ResourceWarning, when collected. Collect it
# here, where that is expected, rather than in whichever test runs next.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_call_cancelled_before_its_request_left_bills_nothing() -> None:
    # A server that accepts the connection and never reads: a 20 MB prompt fills the socket
    # buffers, so the request is still leaving the process when the call is cancelled.
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    meter = UsageMeter()
    async with trio.open_nursery() as nursery:

        async def accept_and_ignore() -> None:
            async with await listeners[0].accept():
                await trio.sleep_forever()

        nursery.start_soon(accept_and_ignore)
        base_url = f"http://127.0.0.1:{port}/v1"
        provider = Provider.openai(api_key=SECRET, base_url=base_url, prices=EDGE_PRICES)
        async with open_llm_client(provider) as client:
            with trio.move_on_after(0.3) as waited:
                prompt = "x" * 20_000_000
                await client.complete(prompt, model="edge-hung", max_tokens=8, meter=meter)
        nursery.cancel_scope.cancel()
    await listeners[0].aclose()
    gc.collect()
    await trio.lowlevel.checkpoint()  # the finaliser trio schedules for it runs here
    assert waited.cancelled_caught
    [record] = meter.records()
    assert record.status is CallStatus.CANCELLED
    assert [a.usage.total_tokens for a in record.attempts] == [0]
    assert (record.usage.total_tokens, record.cost) == (0, 0.0)


async def test_a_streamed_step_losing_its_branch_closes_the_http_stream(
    server: LLMServer,
) -> None:
    """`LLMClient.stream` read by a streamed step in a speculative branch: when the branch
    loses, the step's generator is closed, the server sees the disconnect, the call is
    billed for what arrived, and the pool holds no stuck connection."""
    meter = UsageMeter()
    async with open_llm_client(provider(server), prices=PRICES) as client:

        @step(collect="".join)
        async def essay(topic: str) -> AsyncIterator[str]:
            async for text in client.stream(
                topic, model="slow-stream", max_tokens=2000, meter=meter
            ):
                yield text

        @step(output="answer")
        async def shout(essay: str) -> str:
            return essay.upper()

        @step
        async def decide(topic: str) -> Route:
            await server.first_chunk_sent.wait()
            await trio.sleep(0.1)
            return Route("short")

        @step(output="answer")
        async def short() -> str:
            return "short"

        flow = Flow([router(decide, {"short": [short], "long": [essay, shout]})])
        result = await flow.run(topic="streams", speculate=Always())
        with trio.fail_after(1.0):
            await server.disconnected.wait()
        assert_no_stuck_connection(client)
    assert result.outputs == {"answer": "short"}
    (entry,) = [e for e in result.trace if e.step == "essay"]
    assert (entry.status, entry.wasted) == (StepStatus.CANCELLED, True)
    assert entry.items is not None
    assert entry.items > 0
    [record] = meter.records()
    assert record.status is CallStatus.CANCELLED
    assert record.usage.partial
    assert record.usage.output_tokens >= entry.items
