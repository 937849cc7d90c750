"""Tool loops and structured output against the real local server (hypercorn on trio).

The server's `tool-*` and `schema-*` models (see `llm_server.py`) answer by the
conversation, so retries and tool rounds play out over real HTTP, streamed or whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import pytest
import trio
from llm_server import TOOL_CALLS, LLMServer, serve_llm
from specroute.engine import Flow, StepStatus, step
from specroute.engine.llm import (
    DEFAULT_PRICES,
    CallStatus,
    LLMClient,
    ModelPrice,
    Provider,
    StructuredOutputError,
    ToolRecord,
    UsageMeter,
    observe_tools,
    open_llm_client,
    record_usage,
    run_tool_loop,
    structured,
    tool,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.integration

MODELS = (*TOOL_CALLS, "schema-ok", "schema-invalid-json", "schema-mismatch")
PRICES = DEFAULT_PRICES.with_prices(
    dict.fromkeys(MODELS, ModelPrice(input_per_million=1.0, output_per_million=2.0))
)


@attrs.frozen
class Colour:
    name: str
    hex: str


@tool
async def lookup_price(sku: str) -> float:
    """Return the list price of one article."""
    await trio.sleep(0.05)
    return {"A1": 12.5}[sku]


@tool
async def explode() -> str:
    """Fail, always."""
    raise RuntimeError("boom")


@pytest.fixture
async def server() -> AsyncIterator[LLMServer]:
    async with serve_llm() as running:
        yield running


@pytest.fixture
async def client(server: LLMServer) -> AsyncIterator[LLMClient]:
    provider = Provider.openai(api_key="sk-local-test", base_url=server.base_url)
    async with open_llm_client(provider, prices=PRICES) as llm:
        yield llm


@pytest.mark.parametrize("stream", [False, True])
async def test_a_structured_answer_arrives_parsed(client: LLMClient, stream: bool) -> None:
    result = await structured(client, "A colour?", output=Colour, model="schema-ok", stream=stream)

    assert result.value == Colour(name="blue", hex="#0000ff")
    assert result.completions[0].streamed is stream


async def test_invalid_json_is_retried_with_the_error(client: LLMClient, server: LLMServer) -> None:
    result = await structured(client, "A colour?", output=Colour, model="schema-invalid-json")

    assert result.value == Colour(name="blue", hex="#0000ff")
    assert result.retries == 1
    assert server.seen["schema-invalid-json"] == 2
    assert client.meter.statistics().completed == 2


async def test_a_schema_mismatch_fails_naming_the_field_after_the_retries(
    client: LLMClient, server: LLMServer
) -> None:
    with pytest.raises(StructuredOutputError, match=r"wrong: `\$\.hex`") as caught:
        await structured(client, "A colour?", output=Colour, model="schema-mismatch", retries=2)

    assert server.seen["schema-mismatch"] == 3
    assert [str(v) for v in caught.value.violations] == ["$.hex: is required but missing"]
    # Every retry is billed.
    assert client.meter.statistics().calls == 3


@pytest.mark.parametrize("stream", [False, True])
async def test_a_tool_loop_runs_the_tool_and_answers(client: LLMClient, stream: bool) -> None:
    result = await run_tool_loop(
        client, "Price of A1?", tools=[lookup_price], model="tool-loop", stream=stream
    )

    assert result.text == "result: 12.5"
    [record] = result.records
    assert (record.tool, record.status) == ("lookup_price", "ok")
    assert record.duration >= 0.05


async def test_a_failing_tool_shows_in_the_trace_and_the_model_is_told(
    client: LLMClient,
) -> None:
    @step(output="answer")
    async def ask(question: str) -> str:
        result = await run_tool_loop(client, question, tools=[explode], model="tool-failing")
        return result.text

    run = await Flow([ask]).run(question="Go.")

    assert run.outputs["answer"] == "result: Error: RuntimeError: boom"
    [entry] = run.trace
    assert entry.status is StepStatus.OK
    [record] = entry.tools
    assert (record.tool, record.status, record.error) == ("explode", "failed", "RuntimeError: boom")
    assert entry.start <= record.start <= record.end <= entry.end
    assert entry.usage is not None
    assert entry.usage.calls == 2


@attrs.frozen
class Quote:
    sku: str
    price: float


@pytest.mark.parametrize("stream", [False, True])
async def test_a_tool_loop_ends_in_a_typed_answer(
    client: LLMClient, server: LLMServer, stream: bool
) -> None:
    result = await run_tool_loop(
        client, "Quote A1.", tools=[lookup_price], model="tool-quote", stream=stream, output=Quote
    )

    assert result.value == Quote(sku="A1", price=12.5)
    assert [r.tool for r in result.records] == ["lookup_price"]
    assert server.seen["tool-quote"] == 2


@attrs.define
class Watcher:
    records: list[ToolRecord] = attrs.Factory(list)

    def tool_finished(self, record: ToolRecord) -> None:
        self.records.append(record)

    def effects_allowed(self) -> bool:
        return False


async def test_a_cancel_mid_loop_closes_the_stream_and_bills_what_arrived(
    client: LLMClient, server: LLMServer
) -> None:
    meter = UsageMeter()
    watcher = Watcher()
    with record_usage(meter), observe_tools(watcher), trio.move_on_after(0.6) as scope:
        await run_tool_loop(client, "Price of A1?", tools=[lookup_price], model="tool-slow")

    assert scope.cancelled_caught
    with trio.fail_after(2):
        await server.disconnected.wait()  # the server saw the stream closed
    first, second = meter.records()
    assert first.status is CallStatus.COMPLETED
    assert second.status is CallStatus.CANCELLED
    assert second.usage.partial
    # The final answer streamed one token every 50 ms: some arrived, far from all 200.
    assert 0 < second.usage.output_tokens < 200
    assert second.cost is not None
    assert second.cost > 0
    assert [(r.tool, r.status) for r in watcher.records] == [("lookup_price", "ok")]
