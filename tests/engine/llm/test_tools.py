"""The tool loop: typed tools, bounded rounds, failures the model sees, effects kept out of
losing branches, and each execution in its step's trace."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

import attrs
import httpx
import pytest
import trio
from llm_mocks import MakeClient, openai_answer
from specroute.cache import CacheOptions, open_cache
from specroute.engine import Always, Flow, Route, StepStatus, router, step
from specroute.engine.llm import (
    LLMClient,
    LLMConfigError,
    Message,
    OutputSchema,
    StructuredOutputError,
    Tool,
    ToolEffectError,
    ToolFailedError,
    ToolRecord,
    ToolRoundsExceededError,
    ToolSpec,
    UsageMeter,
    call_dependencies,
    observe_tools,
    record_usage,
    run_tool_loop,
    tool,
)
from specroute.engine.report import run_from_json, run_to_json
from specroute.routes import StepFailedError

if TYPE_CHECKING:
    from trio.testing import MockClock

Script = list[list[tuple[str, str]] | str]


def tool_calls(*calls: tuple[str, str]) -> dict[str, Any]:
    """A Chat Completions answer that calls tools: (name, arguments JSON) pairs."""
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": f"call_{n}", "type": "function", "function": {"name": name, "arguments": a}}
            for n, (name, a) in enumerate(calls)
        ],
    }
    return {
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 8},
    }


def scripted(script: Script, seen: list[dict[str, Any]]) -> Any:
    """A handler that plays `script`: each turn is tool calls, or the final text."""

    async def plays_the_script(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        turn = script[len(seen) - 1]
        if isinstance(turn, str):
            return httpx.Response(200, json=openai_answer(turn))
        return httpx.Response(200, json=tool_calls(*turn))

    return plays_the_script


@tool
async def lookup_price(sku: str, currency: Literal["EUR", "USD"] = "EUR") -> float:
    """Return the list price of one article.

    Prices are list prices, before discounts."""
    await trio.sleep(1)
    return {"A1": 12.5, "B2": 3.0}[sku]


@attrs.frozen
class Stock:
    sku: str
    count: int


@tool(name="stock", description="Units in stock.")
async def stock_of(sku: str) -> Stock:
    await trio.sleep(2)
    return Stock(sku=sku, count=7)


SENT: list[str] = []


@tool(effect=True)
async def send_order(sku: str, count: int) -> str:
    """Order `count` units of `sku` from the supplier."""
    SENT.append(sku)
    return "ordered"


def test_a_tool_is_described_by_its_function() -> None:
    assert lookup_price.spec == ToolSpec(
        name="lookup_price",
        description="Return the list price of one article.",
        parameters={
            "type": "object",
            "properties": {
                "sku": {"type": "string"},
                "currency": {"type": "string", "enum": ["EUR", "USD"]},
            },
            "required": ["sku"],
            "additionalProperties": False,
        },
    )
    assert stock_of.name == "stock"
    assert stock_of.spec.description == "Units in stock."
    assert send_order.effect


def test_a_tool_needs_typed_parameters_and_an_async_def() -> None:
    async def untyped(sku):  # type: ignore[no-untyped-def]
        return sku

    def blocking(sku: str) -> str:
        return sku

    with pytest.raises(LLMConfigError, match="parameter `sku` of tool 'untyped' has no type"):
        tool(untyped)
    with pytest.raises(LLMConfigError, match="must be an `async def`"):
        tool(blocking)  # type: ignore[arg-type]


async def test_the_loop_runs_a_rounds_calls_at_once_and_sends_results_back(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    seen: list[dict[str, Any]] = []
    script: Script = [
        [("lookup_price", '{"sku": "A1"}'), ("stock", '{"sku": "A1"}')],
        "A1 costs 12.5 EUR; 7 in stock.",
    ]
    client = make_client(scripted(script, seen))
    start = trio.current_time()

    result = await run_tool_loop(
        client, "A1?", tools=[lookup_price, stock_of], model="gpt-4o-mini", stream=False
    )

    assert result.text == "A1 costs 12.5 EUR; 7 in stock."
    # The two tools ran at once: the round took as long as the slower one.
    assert trio.current_time() - start == 2
    assert [(r.tool, r.status, r.duration) for r in result.records] == [
        ("lookup_price", "ok", 1),
        ("stock", "ok", 2),
    ]
    assert [t["function"]["name"] for t in seen[0]["tools"]] == ["lookup_price", "stock"]
    assert seen[1]["messages"][-2:] == [
        {"role": "tool", "tool_call_id": "call_0", "content": "12.5"},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"sku": "A1", "count": 7}'},
    ]
    assert len(result.completions) == 2
    assert result.messages[-1] == Message.assistant("A1 costs 12.5 EUR; 7 in stock.")
    assert client.meter.statistics().calls == 2


async def test_a_failing_tool_is_reported_to_the_model(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    seen: list[dict[str, Any]] = []
    script: Script = [[("lookup_price", '{"sku": "ZZ"}')], "There is no price for ZZ."]
    client = make_client(scripted(script, seen))

    result = await run_tool_loop(
        client, "ZZ?", tools=[lookup_price], model="gpt-4o-mini", stream=False
    )

    [record] = result.records
    assert (record.status, record.error) == ("failed", "KeyError: 'ZZ'")
    assert seen[1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_0",
        "content": "Error: KeyError: 'ZZ'",
    }
    assert result.text == "There is no price for ZZ."


async def test_a_failing_tool_raises_when_told_to(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    seen: list[dict[str, Any]] = []
    client = make_client(scripted([[("lookup_price", '{"sku": "ZZ"}')], "x"], seen))

    with pytest.raises(ToolFailedError, match="tool 'lookup_price' raised KeyError") as caught:
        await run_tool_loop(
            client,
            "ZZ?",
            tools=[lookup_price],
            model="gpt-4o-mini",
            stream=False,
            on_tool_error="raise",
        )

    assert isinstance(caught.value.__cause__, KeyError)
    assert caught.value.record.status == "failed"
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("call", "told"),
    [
        (("lookup_prices", '{"sku": "A1"}'), "there is no tool named 'lookup_prices'"),
        (("lookup_price", '{"sku": '), "the arguments are not JSON"),
        (("lookup_price", '{"sku": 1}'), "do not fit the tool's schema: $.sku: expected string"),
        (("lookup_price", "{}"), "$.sku: is required but missing"),
        (("lookup_price", '{"sku": "A1", "qty": 2}'), "$.qty: is not an allowed property"),
    ],
)
async def test_calls_that_cannot_run_are_refused_to_the_model(
    make_client: MakeClient, autojump_clock: MockClock, call: tuple[str, str], told: str
) -> None:
    seen: list[dict[str, Any]] = []
    client = make_client(scripted([[call], "Sorry."], seen))

    result = await run_tool_loop(
        client, "x", tools=[lookup_price], model="gpt-4o-mini", stream=False
    )

    [record] = result.records
    assert record.status == "failed"
    assert record.duration == 0
    assert record.error is not None
    assert told in record.error
    assert told in seen[1]["messages"][-1]["content"]


async def test_the_rounds_are_bounded(make_client: MakeClient, autojump_clock: MockClock) -> None:
    seen: list[dict[str, Any]] = []
    forever: Script = [[("lookup_price", '{"sku": "A1"}')]] * 5
    client = make_client(scripted(forever, seen))

    with pytest.raises(ToolRoundsExceededError, match="no final answer in 3 model call") as caught:
        await run_tool_loop(
            client, "x", tools=[lookup_price], model="gpt-4o-mini", stream=False, max_rounds=3
        )

    assert len(seen) == 3
    assert len(caught.value.records) == 3


async def test_bad_loop_arguments_are_refused(make_client: MakeClient) -> None:
    client = make_client(scripted(["x"], []))
    other = Tool(spec=ToolSpec(name="lookup_price"), fn=lookup_price.fn)

    with pytest.raises(LLMConfigError, match="two tools are named 'lookup_price'"):
        await run_tool_loop(client, "x", tools=[lookup_price, other], model="gpt-4o-mini")
    with pytest.raises(LLMConfigError, match="`max_rounds` must be an int >= 1, got 0"):
        await run_tool_loop(client, "x", tools=[lookup_price], model="gpt-4o-mini", max_rounds=0)


@attrs.define
class Watcher:
    """A tool observer that records what it is told and allows effects when told to."""

    allow: bool
    records: list[ToolRecord] = attrs.Factory(list)

    def tool_finished(self, record: ToolRecord) -> None:
        self.records.append(record)

    def effects_allowed(self) -> bool:
        return self.allow


async def test_observers_are_told_even_when_the_round_is_cancelled(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    seen: list[dict[str, Any]] = []
    client = make_client(scripted([[("stock", '{"sku": "A1"}')], "x"], seen))
    watcher = Watcher(allow=True)

    with observe_tools(watcher), trio.move_on_after(1.5):
        await run_tool_loop(client, "x", tools=[stock_of], model="gpt-4o-mini", stream=False)

    [record] = watcher.records
    assert (record.tool, record.status, record.duration) == ("stock", "cancelled", 1.5)
    assert len(seen) == 1


async def test_an_effect_tool_is_refused_where_effects_are_not_allowed(
    make_client: MakeClient,
) -> None:
    seen: list[dict[str, Any]] = []
    client = make_client(scripted(["x"], seen))

    with observe_tools(Watcher(allow=False)), pytest.raises(ToolEffectError, match="'send_order'"):
        await run_tool_loop(client, "x", tools=[lookup_price, send_order], model="gpt-4o-mini")
    assert seen == []  # refused before the model was called


class WatchingMeter(UsageMeter):
    """A meter that is a tool observer too, as a run's meter is."""

    def __init__(self, allow: bool) -> None:
        super().__init__()
        self.watcher = Watcher(allow=allow)

    def tool_finished(self, record: ToolRecord) -> None:
        self.watcher.tool_finished(record)

    def effects_allowed(self) -> bool:
        return self.watcher.effects_allowed()


async def test_a_meter_that_observes_tools_is_told_inside_record_usage(
    make_client: MakeClient,
) -> None:
    seen: list[dict[str, Any]] = []
    client = make_client(scripted([[("stock", '{"sku": "A1"}')], "x"], seen))
    meter, plain = WatchingMeter(allow=True), UsageMeter()

    with record_usage(plain), record_usage(meter):
        await run_tool_loop(client, "x", tools=[stock_of], model="gpt-4o-mini", stream=False)

    [record] = meter.watcher.records
    assert (record.tool, record.status) == ("stock", "ok")
    assert meter.statistics().calls == plain.statistics().calls == 2
    with record_usage(WatchingMeter(allow=False)), pytest.raises(ToolEffectError):
        await run_tool_loop(client, "x", tools=[send_order], model="gpt-4o-mini")
    assert len(seen) == 2  # the effect tool was refused before the model was called


# Inside a run: the trace, the effect rule, usage attribution and the cache key.


def tool_flow(client: LLMClient, *, effect: bool) -> Flow:
    @step(output="answer", effect=effect)
    async def buy(request: str) -> str:
        result = await run_tool_loop(
            client, request, tools=[lookup_price, send_order], model="gpt-4o-mini", stream=False
        )
        return result.text

    return Flow([buy])


async def test_each_tool_execution_is_in_its_steps_trace(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    SENT.clear()
    script: Script = [
        [("lookup_price", '{"sku": "A1"}')],
        [("send_order", '{"sku": "A1", "count": 2}')],
        "Ordered 2 of A1.",
    ]
    client = make_client(scripted(script, []))

    result = await tool_flow(client, effect=True).run(request="buy 2 A1")

    [entry] = result.trace
    assert entry.status is StepStatus.OK
    assert [(t.tool, t.status, t.effect, t.duration) for t in entry.tools] == [
        ("lookup_price", "ok", False, 1),
        ("send_order", "ok", True, 0),
    ]
    assert entry.usage is not None
    assert (entry.usage.calls, entry.usage.input_tokens) == (3, 20 + 20 + 11)
    assert SENT == ["A1"]


async def test_an_effect_tool_in_a_step_that_is_not_an_effect_fails_the_step(
    make_client: MakeClient,
) -> None:
    seen: list[dict[str, Any]] = []
    client = make_client(scripted(["x"], seen))

    with pytest.raises(StepFailedError, match="step 'buy' failed: ToolEffectError") as caught:
        await tool_flow(client, effect=False).run(request="buy")

    assert "offer them from a step with `effect=True`" in str(caught.value.__cause__)
    assert seen == []


async def test_the_cache_key_changes_with_the_tools(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    calls: list[str] = []

    def flow_with(tools: list[Tool]) -> Flow:
        options = CacheOptions(depends_on=call_dependencies(model="gpt-4o-mini", tools=tools))

        @step(output="answer", cache=options)
        async def answer(request: str) -> str:
            calls.append(request)
            return "done"

        return Flow([answer])

    changed = Tool(
        spec=attrs.evolve(lookup_price.spec, description="Return the net price."),
        fn=lookup_price.fn,
    )
    async with open_cache() as cache:
        first = await flow_with([lookup_price, stock_of]).run(request="q", cache=cache)
        same = await flow_with([stock_of, lookup_price]).run(request="q", cache=cache)
        other = await flow_with([changed, stock_of]).run(request="q", cache=cache)

    assert (first.cache_misses, same.cache_hits, other.cache_misses) == (1, 1, 1)
    assert calls == ["q", "q"]


async def test_tool_executions_survive_the_run_log(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    script: Script = [[("lookup_price", '{"sku": "A1"}')], [("stock", "{}")], "Done."]
    client = make_client(scripted(script, []))

    @step(output="answer")
    async def ask(request: str) -> str:
        loop = await run_tool_loop(
            client, request, tools=[lookup_price, stock_of], model="gpt-4o-mini", stream=False
        )
        return loop.text

    await trio.sleep(7)  # the log's times are relative to the run's start
    result = await Flow([ask]).run(request="A1?")
    data = json.loads(json.dumps(run_to_json(result)))
    again = run_from_json(data)

    [step_data] = data["steps"]
    assert step_data["tools"][0] == {
        "tool": "lookup_price",
        "call_id": "call_0",
        "start_ms": 0.0,
        "end_ms": 1000.0,
        "status": "ok",
        "effect": False,
        "error": None,
    }
    assert again.trace[0].tools[1].status == "failed"  # `stock` without its `sku`
    assert [(t.tool, t.duration) for t in again.trace[0].tools] == [
        ("lookup_price", 1.0),
        ("stock", 0.0),
    ]


async def test_a_step_without_tools_writes_no_tools_field(autojump_clock: MockClock) -> None:
    @step
    async def plain(request: str) -> str:
        return request

    data = run_to_json(await Flow([plain]).run(request="x"))

    assert "tools" not in data["steps"][0]


async def test_a_losing_branch_runs_no_effect_tool_and_its_loop_is_cancelled(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    SENT.clear()
    seen: list[dict[str, Any]] = []

    async def slow_tool_calls(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        await trio.sleep(5)
        return httpx.Response(200, json=tool_calls(("lookup_price", '{"sku": "A1"}')))

    client = make_client(slow_tool_calls)

    @step
    async def decide(request: str) -> Route:
        await trio.sleep(1)
        return Route("reuse")

    @step(output="answer")
    async def reuse(request: str) -> str:
        return "saved"

    @step(output="draft")
    async def plan(request: str) -> str:
        loop = await run_tool_loop(client, request, tools=[lookup_price], model="gpt-4o-mini")
        return loop.text

    @step(output="answer", effect=True)
    async def order(draft: str) -> str:
        loop = await run_tool_loop(client, draft, tools=[send_order], model="gpt-4o-mini")
        return loop.text

    flow = Flow([router(decide, {"reuse": Flow([reuse]), "buy": Flow([plan, order])})])
    result = await flow.run(request="A1", speculate=Always())

    assert result.outputs == {"answer": "saved"}
    by_name = {entry.step: entry for entry in result.trace}
    assert by_name["plan"].status is StepStatus.CANCELLED
    assert by_name["plan"].wasted
    assert by_name["plan"].usage is not None
    assert by_name["plan"].usage.cancelled_calls == 1
    assert "order" not in by_name or by_name["order"].status is StepStatus.SKIPPED
    assert len(seen) == 1
    assert SENT == []


async def test_a_loser_cancelled_mid_tool_shows_the_tool_cancelled(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    client = make_client(scripted([[("stock", '{"sku": "A1"}')], "x"], []))

    @step
    async def decide(request: str) -> Route:
        await trio.sleep(1)  # `stock` takes 2 s: it is cut off halfway
        return Route("reuse")

    @step(output="answer")
    async def reuse(request: str) -> str:
        return "saved"

    @step(output="answer")
    async def count(request: str) -> str:
        loop = await run_tool_loop(
            client, request, tools=[stock_of], model="gpt-4o-mini", stream=False
        )
        return loop.text

    flow = Flow([router(decide, {"reuse": Flow([reuse]), "count": Flow([count])})])
    result = await flow.run(request="A1", speculate=Always())

    entry = next(e for e in result.trace if e.step == "count")
    assert (entry.status, entry.wasted) == (StepStatus.CANCELLED, True)
    [record] = entry.tools
    assert (record.tool, record.status, record.duration) == ("stock", "cancelled", 1)
    assert entry.usage is not None
    assert (entry.usage.calls, entry.usage.cancelled_calls) == (1, 0)


# A final answer that fits a schema, after the tools.


@attrs.frozen
class Quote:
    sku: str
    price: float


async def test_the_final_answer_can_fit_a_schema(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    seen: list[dict[str, Any]] = []
    script: Script = [
        [("lookup_price", '{"sku": "A1"}')],
        "A1 is 12.5",  # not JSON: asked again
        '{"sku": "A1", "price": 12.5}',
    ]
    client = make_client(scripted(script, seen))

    result = await run_tool_loop(
        client, "Quote A1.", tools=[lookup_price], model="gpt-4o-mini", stream=False, output=Quote
    )

    assert result.value == Quote(sku="A1", price=12.5)
    assert len(result.completions) == 3
    assert all(body["response_format"]["json_schema"]["name"] == "Quote" for body in seen)
    assert "does not fit the JSON schema `Quote`: $: is not JSON" in str(seen[2]["messages"][-1])
    assert result.messages[-1] == Message.assistant('{"sku": "A1", "price": 12.5}')


async def test_a_final_answer_that_never_fits_raises(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    script: Script = [[("lookup_price", '{"sku": "A1"}')], "{}", "{}", "{}"]
    client = make_client(scripted(script, []))

    with pytest.raises(StructuredOutputError, match=r"`\$\.sku`, `\$\.price`") as caught:
        await run_tool_loop(
            client, "x", tools=[lookup_price], model="gpt-4o-mini", stream=False, output=Quote,
            retries=1,
        )  # fmt: skip

    assert len(caught.value.completions) == 3  # the tool round, then two answers


async def test_anthropic_answers_through_the_schemas_tool_after_the_tools(
    make_client: MakeClient, autojump_clock: MockClock
) -> None:
    seen: list[dict[str, Any]] = []
    quote = {"sku": "A1", "price": 12.5}
    blocks = [
        {"type": "tool_use", "id": "toolu_1", "name": "lookup_price", "input": {"sku": "A1"}},
        {"type": "tool_use", "id": "toolu_2", "name": "Quote", "input": quote},
    ]

    async def calls_then_answers(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        body = {"content": [blocks[len(seen) - 1]], "stop_reason": "tool_use"}
        body["usage"] = {"input_tokens": 30, "output_tokens": 10}
        return httpx.Response(200, json=body)

    client = make_client(calls_then_answers, api="anthropic")
    result = await run_tool_loop(
        client, "Quote A1.", tools=[lookup_price], model="claude-3-5-haiku-latest",
        stream=False, output=Quote,
    )  # fmt: skip

    assert result.value == Quote(sku="A1", price=12.5)
    assert [r.tool for r in result.records] == ["lookup_price"]
    assert seen[0]["tool_choice"] == {"type": "any"}
    assert [t["name"] for t in seen[0]["tools"]] == ["lookup_price", "Quote"]


async def test_an_output_named_like_a_tool_is_refused(make_client: MakeClient) -> None:
    client = make_client(scripted(["x"], []))
    clash = OutputSchema(name="lookup_price", schema={"type": "string"})

    with pytest.raises(LLMConfigError, match="both named 'lookup_price'"):
        await run_tool_loop(client, "x", tools=[lookup_price], model="gpt-4o-mini", output=clash)
