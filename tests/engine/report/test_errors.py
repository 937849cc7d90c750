"""`RunLogError` (`engine/report/_errors.py`): where the bad line is, and why."""

from __future__ import annotations

import pytest
from specroute.engine.report import RunLogError
from specroute.routes import SpecrouteError


def test_a_line_in_a_file_reads_path_colon_line() -> None:
    error = RunLogError("steps[2].status: not a status", path="runs.jsonl", line=7)
    assert str(error) == "runs.jsonl:7: steps[2].status: not a status"
    assert (error.path, error.line, error.reason) == (
        "runs.jsonl",
        7,
        "steps[2].status: not a status",
    )


def test_a_line_without_a_path_says_line() -> None:
    assert str(RunLogError("not JSON", line=3)) == "line 3: not JSON"


def test_a_path_without_a_line_is_followed_by_a_space() -> None:
    assert str(RunLogError("unknown schema 9", path="runs.jsonl")) == "runs.jsonl: unknown schema 9"


def test_a_record_parsed_on_its_own_is_just_the_reason() -> None:
    error = RunLogError("missing field 'flow'")
    assert str(error) == "missing field 'flow'"
    assert error.path is None
    assert error.line is None


def test_it_is_a_specroute_error_and_not_an_os_error() -> None:
    assert issubclass(RunLogError, SpecrouteError)
    assert not issubclass(RunLogError, OSError)
    with pytest.raises(SpecrouteError, match=r"^x:1: bad$"):
        raise RunLogError("bad", path="x", line=1)
