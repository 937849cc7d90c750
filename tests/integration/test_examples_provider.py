"""The seed examples' shared provider flags: a real provider is called, on the real clock."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio
from llm_server import serve_llm

if TYPE_CHECKING:
    import subprocess

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


async def run_example(*args: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [sys.executable, str(EXAMPLES / "rag_answer.py"), *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env={"OPENAI_API_KEY": "sk-test", "PATH": "/usr/bin:/bin"},
    )


async def test_a_real_provider_gets_every_llm_call_on_the_real_clock() -> None:
    async with serve_llm() as server:
        flags = ("--provider", "openai", "--base-url", server.base_url, "--model", "hold-0.01")
        done = await run_example(*flags, "--scale", "0.01", "--json")
        assert done.returncode == 0, done.stderr.decode()
        record = json.loads(done.stdout)
        # Generation and quality scoring called the server, with the model the flag named.
        assert [model for model, _ in server.requests] == ["hold-0.01"] * 2
        # The real clock: the two calls, one after the other, each held 10 ms by the server.
        assert record["wall_ms"] >= 20
        assert record["answer_chars"] > 0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--provider", "openai", "--clock", "virtual"), "drop --clock virtual"),
        (("--base-url", "http://127.0.0.1:1"), "--base-url needs --provider"),
    ],
)
async def test_contradicting_flags_are_refused_before_a_run(
    flags: tuple[str, ...], message: str
) -> None:
    done = await run_example(*flags, "--json")
    assert done.returncode != 0
    assert message in done.stderr.decode()
    assert not done.stdout
