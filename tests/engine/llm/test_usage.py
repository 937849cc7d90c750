"""Token usage (`engine/llm/_usage.py`): sums, flags and the 4-characters-a-token estimate."""

from __future__ import annotations

import pytest
from specroute.engine.llm import (
    Message,
    Usage,
    estimate_prompt_tokens,
    estimate_tokens,
)
from specroute.engine.llm._usage import CHARS_PER_TOKEN, TOKENS_PER_MESSAGE


def test_total_is_input_plus_output() -> None:
    assert Usage(input_tokens=10, output_tokens=3).total_tokens == 13
    assert Usage().total_tokens == 0


def test_sums_add_counts_and_keep_any_flag() -> None:
    measured = Usage(input_tokens=10, output_tokens=3)
    cut = Usage(input_tokens=1, output_tokens=2, partial=True)
    guessed = Usage(output_tokens=5, estimated=True)
    total = measured + cut + guessed
    assert (total.input_tokens, total.output_tokens) == (11, 10)
    assert total.partial
    assert total.estimated
    assert not (measured + measured).partial
    assert not (measured + measured).estimated


@pytest.mark.parametrize("count", [-1, 1.5, "3"])
def test_counts_must_be_non_negative_ints(count: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        Usage(input_tokens=count)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "tokens"), [("", 0), ("a", 1), ("abcd", 1), ("abcde", 2), ("x" * 400, 100)]
)
def test_estimate_rounds_characters_over_four_up(text: str, tokens: int) -> None:
    assert CHARS_PER_TOKEN == 4
    assert estimate_tokens(text) == tokens


def test_prompt_estimate_adds_framing_per_message() -> None:
    messages = [Message(role="system", content="abcd"), Message(role="user", content="abcde")]
    assert estimate_prompt_tokens(messages) == 1 + 2 + 2 * TOKENS_PER_MESSAGE
    assert estimate_prompt_tokens([]) == 0
