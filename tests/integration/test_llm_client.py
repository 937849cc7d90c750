"""The LLM client against a real local HTTP server (hypercorn on trio, 127.0.0.1).

Real sleeps are allowed here; every test stays well under a second or two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest
import trio
from llm_server import BAD_REQUEST_MESSAGE, LLMServer, serve_llm
from specroute.engine.llm import (
    DEFAULT_PRICES,
    CallStatus,
    LLMClient,
    ModelPrice,
    Provider,
    ProviderHTTPError,
    ProviderLimits,
    RetryPolicy,
    UsageMeter,
    open_llm_client,
    record_usage,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

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
