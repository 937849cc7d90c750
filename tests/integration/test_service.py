"""examples/service.py in a real uvicorn server on 127.0.0.1, called over HTTP with httpx.

The service runs in a subprocess (its own asyncio loop and its one hosted trio run); the
tests run in trio and, where the flow must call a real model, serve the local LLM test
server (`llm_server.py`) to it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cattrs
import httpx
import pytest
import trio
from llm_server import BAD_REQUEST_MESSAGE, serve_llm
from specroute.engine.llm import Provider, SimulatedModel, SimulatedTransport, open_llm_client

from tests.scripts import load_script

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from types import ModuleType

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ROOT / "examples" / "service.py"
SECRET = "sk-test-do-not-leak-4f2a9c"
REQUESTS = [
    ("generate changelog", "speculative"),
    ("summarize open issues by label", "speculative"),
    ("Generate changelog!", "sequential"),
    ("list stale pull requests", "parallel-start"),
]
CONCURRENCY = 50


@contextmanager
def running_service(*args: str, env: dict[str, str] | None = None) -> Iterator[Service]:
    """Start `examples/service.py` on a free port of 127.0.0.1; stop it on exit."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, str(SERVICE), "--port", str(port), *args]
    process = subprocess.Popen(command, env={**os.environ, **(env or {})})
    service = Service(url=f"http://127.0.0.1:{port}", pid=process.pid)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "the service exited at start"
            try:
                httpx.get(f"{service.url}/health", timeout=1).raise_for_status()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the service did not start in 30 s"
                time.sleep(0.1)
        yield service
    finally:
        process.terminate()
        process.wait(timeout=15)


class Service:
    """Where a running service listens, and its process."""

    def __init__(self, url: str, pid: int) -> None:
        self.url = url
        self.pid = pid

    async def health(self) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.url) as client:
            answer: dict[str, Any] = (await client.get("/health")).json()
        return answer

    def rss_bytes(self) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024

    def sockets(self) -> int:
        count = 0
        for fd in Path(f"/proc/{self.pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except FileNotFoundError:
                continue  # closed between the listing and the read: not open, not counted
            count += target.startswith("socket:")
        return count


@pytest.fixture(scope="module")
def simulated() -> Iterator[Service]:
    """The service on the simulated provider, every latency scaled by 0.01."""
    with running_service("--scale", "0.01") as service:
        yield service


def load_planner() -> ModuleType:
    module = load_script(ROOT / "examples/planner.py", "planner_direct")
    module.SCALE = 0.0
    return module


async def direct_answers() -> dict[tuple[str, str], tuple[str, Any]]:
    planner = load_planner()
    answers = {}
    # The simulated model the service calls, at once: its workflow is the generator's answer.
    speed = SimulatedModel(first_token_latency=0.0, tokens_per_second=1e9)
    async with open_llm_client(Provider.simulated(SimulatedTransport(speed)), seed=0) as llm:
        planner.LLM, planner.MODEL = llm, "sim-large"
        for user_input, mode in REQUESTS:
            engine_mode, policy = planner.MODES[mode]
            result = await planner.planner.run(
                user_input=user_input, mode=engine_mode, speculate=policy
            )
            outputs = cattrs.unstructure(dict(result.outputs))  # as the service answers them
            answers[user_input, mode] = (result.route, json.loads(json.dumps(outputs)))
    return answers


async def post_many(service: Service, count: int) -> list[dict[str, Any]]:
    """`count` POST /plan requests over the REQUESTS mix, `CONCURRENCY` at a time."""
    answers: list[dict[str, Any]] = [{} for _ in range(count)]
    limiter = trio.CapacityLimiter(CONCURRENCY)

    async def one(client: httpx.AsyncClient, index: int) -> None:
        user_input, mode = REQUESTS[index % len(REQUESTS)]
        async with limiter:
            response = await client.post("/plan", json={"user_input": user_input, "mode": mode})
        assert response.status_code == 200, response.text
        answers[index] = {"request": (user_input, mode), **response.json()}

    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with (
        httpx.AsyncClient(base_url=service.url, limits=limits, timeout=30) as client,
        trio.open_nursery() as nursery,
    ):
        for index in range(count):
            nursery.start_soon(one, client, index)
    return answers


async def settled(service: Service, idle: dict[str, Any]) -> dict[str, Any]:
    """The service's health once its counts are back to `idle` (or after 5 s)."""
    with trio.move_on_after(5):
        # The service is another process: poll it.
        while busy(await service.health(), idle):  # noqa: ASYNC110
            await trio.sleep(0.05)
    return await service.health()


def busy(health: dict[str, Any], idle: dict[str, Any]) -> bool:
    return bool(health["runs_in_flight"]) or health["asyncio_tasks"] > idle["asyncio_tasks"]


async def test_concurrent_requests_give_the_answers_of_direct_trio_runs(
    simulated: Service,
) -> None:
    expected = await direct_answers()
    answers = await post_many(simulated, 2 * CONCURRENCY)
    for answer in answers:
        assert (answer["route"], answer["outputs"]) == expected[tuple(answer["request"])]
    assert {answer["route"] for answer in answers} == {"reuse", "generate"}


async def test_requests_leave_nothing_behind_and_memory_settles(simulated: Service) -> None:
    idle = await simulated.health()
    sockets = simulated.sockets()
    await post_many(simulated, 200)
    first = await settled(simulated, idle)
    after_first = simulated.rss_bytes()
    await post_many(simulated, 200)
    second = await settled(simulated, idle)
    grown = simulated.rss_bytes() - after_first
    for health in (first, second):
        assert health["runs_in_flight"] == 0
        assert health["trio_tasks"] == idle["trio_tasks"]
        assert health["asyncio_tasks"] == idle["asyncio_tasks"]
    assert second["runs_started"] - first["runs_started"] == 200
    # The clients' connections are closed (the server sees each close a moment later).
    with trio.move_on_after(5):
        while simulated.sockets() > sockets:  # noqa: ASYNC110 -- another process: poll it
            await trio.sleep(0.05)
    assert simulated.sockets() <= sockets
    assert grown < 5 * 1024 * 1024, f"RSS grew {grown / 2**20:.1f} MB over the second batch"


async def test_the_stream_reports_each_step_then_the_post_answer(simulated: Service) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    async with (
        httpx.AsyncClient(base_url=simulated.url, timeout=30) as client,
        client.stream("GET", "/plan/stream", params={"user_input": "generate changelog"}) as got,
    ):
        assert got.headers["content-type"].startswith("text/event-stream")
        async for block in _sse_blocks(got):
            events.append(block)
        answer = (await client.post("/plan", json={"user_input": "generate changelog"})).json()
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "result"
    assert set(kinds[:-1]) == {"step"}
    steps = [data for _, data in events[:-1]]
    assert {"step": "discovery", "branch": "", "speculative": False} in steps
    assert any(s["step"] == "discovery" and s.get("status") == "ok" for s in steps)
    result = events[-1][1]
    assert (result["route"], result["outputs"]) == (answer["route"], answer["outputs"])


@asynccontextmanager
async def service_calling_llm_server(model: str) -> AsyncIterator[tuple[Service, Any]]:
    """The local LLM server, and the service calling it for every step with `model`."""
    async with serve_llm() as server:
        args = ("--provider", "openai", "--base-url", server.base_url, "--model", model)
        with running_service(*args, env={"OPENAI_API_KEY": SECRET}) as service:
            yield service, server


async def test_a_client_that_disconnects_mid_run_cancels_the_run() -> None:
    async with service_calling_llm_server("slow-stream") as (service, server):
        idle = await service.health()
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            with trio.move_on_after(10) as waited:
                async with trio.open_nursery() as nursery:
                    body = {"user_input": "summarize open issues by label"}
                    nursery.start_soon(partial(client.post, "/plan", json=body))  # unanswered
                    await server.first_chunk_sent.wait()
                    nursery.cancel_scope.cancel()  # the client goes away mid-run
            assert not waited.cancelled_caught
        # The run was cancelled: its model streams were closed, and nothing of it remains.
        with trio.fail_after(5):
            await server.disconnected.wait()
            while server.in_flight:  # noqa: ASYNC110 -- the server counts, it does not signal
                await trio.sleep(0.05)
        health = await settled(service, idle)
    assert health["runs_cancelled"] == 1
    assert health["runs_in_flight"] == 0
    assert health["trio_tasks"] == idle["trio_tasks"]


async def test_a_stream_whose_client_leaves_cancels_the_run() -> None:
    async with service_calling_llm_server("slow-stream") as (service, server):
        idle = await service.health()
        async with (
            httpx.AsyncClient(base_url=service.url, timeout=30) as client,
            client.stream("GET", "/plan/stream", params={"user_input": "x"}) as got,
        ):
            assert got.status_code == 200
            with trio.fail_after(5):
                await server.first_chunk_sent.wait()  # the run is in its model calls
        # Leaving the block closed the response mid-stream: the client went away.
        with trio.fail_after(5):
            await server.disconnected.wait()
        health = await settled(service, idle)
    assert health["runs_cancelled"] == 1
    assert health["runs_in_flight"] == 0


async def test_a_flow_error_is_a_5xx_that_says_what_failed_and_keeps_the_key() -> None:
    async with (
        service_calling_llm_server("bad-request") as (service, _),
        httpx.AsyncClient(base_url=service.url, timeout=30) as client,
    ):
        response = await client.post("/plan", json={"user_input": "generate changelog"})
    assert response.status_code == 502
    body = response.json()
    assert body["error"] == "StepFailedError"
    assert body["step"] == "discovery"
    assert BAD_REQUEST_MESSAGE in body["cause"]
    assert SECRET not in response.text
    assert SECRET[-6:] not in response.text


async def _sse_blocks(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Each server-sent event as (event name, decoded data)."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line:
            name, _, value = line.partition(": ")
            fields[name] = value
        elif fields:
            yield fields["event"], json.loads(fields["data"])
            fields = {}
