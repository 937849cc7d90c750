"""Messages: accepted shapes and clear errors."""

from __future__ import annotations

import pytest
from specroute.engine.llm import Message, ToolCall
from specroute.engine.llm._messages import as_messages


def test_shapes() -> None:
    assert as_messages("hi") == (Message.user("hi"),)
    assert as_messages([{"role": "system", "content": "s"}, Message.assistant("a")]) == (
        Message.system("s"),
        Message.assistant("a"),
    )


def test_errors() -> None:
    with pytest.raises(ValueError, match="at least one message"):
        as_messages([])
    with pytest.raises(ValueError, match="`role` must be one of"):
        as_messages([{"role": "tool", "content": "x"}])
    with pytest.raises(ValueError, match="have `role` and `content`"):
        as_messages([{"content": "x"}])


def test_tool_turns() -> None:
    call = ToolCall(id="call_1", name="lookup", arguments_json='{"sku": "A1"}')
    turn = Message(role="assistant", content="", tool_calls=[call])
    result = Message.tool_result(call, "12.5")
    failure = Message.tool_result(call, "boom", is_error=True)

    assert turn.tool_calls == (call,)
    assert (result.role, result.tool_call_id, result.is_error) == ("tool", "call_1", False)
    assert failure.is_error
    assert as_messages([turn, result]) == (turn, result)
    assert ToolCall(id="c", name="n", arguments_json="  ").arguments() == {}
    with pytest.raises(ValueError, match="Expecting"):
        ToolCall(id="c", name="n", arguments_json="{").arguments()


def test_tool_turn_errors() -> None:
    call = ToolCall(id="call_1", name="lookup", arguments_json="{}")
    with pytest.raises(ValueError, match="only an assistant message has `tool_calls`"):
        Message(role="user", content="x", tool_calls=[call])
    with pytest.raises(ValueError, match=r"needs the `tool_call_id`.*Message.tool_result"):
        Message(role="tool", content="x")
    with pytest.raises(ValueError, match="needs the `tool_call_id`"):
        Message(role="user", content="x", tool_call_id="call_1")
