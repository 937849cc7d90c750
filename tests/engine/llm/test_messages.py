"""Messages: accepted shapes and clear errors."""

from __future__ import annotations

import pytest
from specroute.engine.llm import Message
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
