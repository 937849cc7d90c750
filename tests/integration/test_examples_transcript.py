"""Seed 003, `examples/transcript.py`: the seed's figures in virtual time, retries with a
jittered backoff, the Stage B context within its token budget, and the files it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from llm_server import serve_llm
from specroute.engine.llm import estimate_tokens

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SHIPPED = EXAMPLES / "data" / "meeting-transcript.txt"


example = load_script(EXAMPLES / "transcript.py", "transcript_example")


def analyse(tmp_path: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "transcript.py"), "--out", str(tmp_path), "--json", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def attempts(run: dict[str, Any], stage: str, name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = run["metadata"][stage]["analyzers"][name]["attempts"]
    return found


# --- the pipeline, run as a user runs it -------------------------------------------------------


@pytest.mark.integration
def test_figures_benchmark_and_files(tmp_path: Path) -> None:
    out = analyse(tmp_path)
    sequential, parallel = out["runs"]["sequential"], out["runs"]["parallel"]
    assert (sequential["stage_a_ms"], sequential["stage_b_ms"]) == (18000, 22000)
    assert (sequential["wall_ms"], parallel["wall_ms"]) == (40000, 16000)
    # Each stage at its optimal makespan on 3 slots: the longest three first, the fourth
    # in the first free slot (6, 5, 4 then 3 s: 7 s; 7, 6, 5 then 4 s: 9 s).
    assert (parallel["stage_a_ms"], parallel["stage_b_ms"]) == (7000, 9000)
    metadata = parallel["metadata"]
    assert (metadata["stage_a"]["started_ms"], metadata["stage_a"]["ended_ms"]) == (0, 7000)
    assert (metadata["stage_b"]["started_ms"], metadata["stage_b"]["ended_ms"]) == (7000, 16000)
    # Per analyzer: its latency (the simulated seconds) and its tokens (100 a second out, the
    # whole transcript in for Stage A, the trimmed context in for Stage B).
    for stage, analyzers in (("stage_a", example.STAGE_A), ("stage_b", example.STAGE_B)):
        for name, spec in analyzers.items():
            call = metadata[stage]["analyzers"][name]
            assert call["status"] == "ok"
            assert call["latency_ms"] == spec.seconds * 1000
            assert call["output_tokens"] == spec.seconds * 100
            assert call["input_tokens"] > (8000 if stage == "stage_a" else 0)
            assert [a["status"] for a in call["attempts"]] == [200]
            # The ledger agrees with the engine's own trace of the step.
            (entry,) = [e for e in parallel["steps"] if e["name"] == name]
            assert (entry["start_ms"], entry["end_ms"]) == (call["started_ms"], call["ended_ms"])
            tokens = (entry["usage"]["input_tokens"], entry["usage"]["output_tokens"])
            assert tokens == (call["input_tokens"], call["output_tokens"])
    assert metadata["summary"] == {
        "mode": "parallel",
        "wall_ms": 16000,
        "succeeded": 8,
        "failed": [],
        "input_tokens": sequential["metadata"]["summary"]["input_tokens"],
        "output_tokens": 4000,
        "retries": 0,
        "backoff_ms": 0,
    }
    # The seed's benchmark report, written under logs/.
    benchmark = json.loads((tmp_path / "logs" / "benchmark.json").read_text())
    assert benchmark == out["benchmark"]
    assert benchmark["before"]["wall_ms"] / benchmark["after"]["wall_ms"] >= 2  # the seed's target
    assert (benchmark["speedup"], benchmark["met"]) == (2.5, True)
    # The same run directory either way; metadata.json holds the final summary.
    assert sequential["layout"] == parallel["layout"]
    assert parallel["layout"] == [
        "metadata.json",
        *(f"stage_a/{name}.json" for name in sorted(example.STAGE_A)),
        *(f"stage_b/{name}.json" for name in sorted(example.STAGE_B)),
    ]
    assert json.loads((tmp_path / "parallel" / "metadata.json").read_text()) == metadata
    assert str(tmp_path / "logs" / "benchmark.json") in out["outputs"]
    assert all(Path(path).is_file() for path in out["outputs"])
    assert len(out["outputs"]) == 2 * 9 + 1
    summary = json.loads((tmp_path / "parallel" / "stage_a" / "summary.json").read_text())
    assert summary == parallel["results"]["summary"]
    assert summary["insights"][0].startswith("[00:34:25] Priya Raman: ")  # most cues first


@pytest.mark.integration
def test_the_8000_token_budget_bites_on_the_shipped_transcript(tmp_path: Path) -> None:
    context = analyse(tmp_path, "--mode", "parallel")["runs"]["parallel"]["metadata"]["stage_b"]
    trimming = context["context"]
    assert trimming["tokens_before"] > 8000 >= trimming["tokens"] > 0
    assert trimming["budget"] == 8000
    assert trimming["kept"] == ["summary", "entities", "topics", "sentiment"]  # by priority
    assert trimming["dropped"] == ["transcript"]
    assert (trimming["truncated"], trimming["left_out"]) == (None, [])
    # What Stage B reads is that context: its prompt, not the transcript.
    assert context["analyzers"]["risks"]["input_tokens"] < trimming["tokens"] + 100


@pytest.mark.integration
def test_a_503_is_retried_after_a_jittered_backoff(tmp_path: Path) -> None:
    out = analyse(tmp_path, "--fail", "risks=503")
    sequential, parallel = out["runs"]["sequential"], out["runs"]["parallel"]
    for run in (sequential, parallel):
        assert run["injected"] == [{"stage": "risks", "failure": "503"}]
        first, second = attempts(run, "stage_b", "risks")
        assert (first["status"], second["status"]) == (503, 200)
        assert 0 < first["backoff_ms"] <= 1000  # full jitter: a draw up to the 1 s base
        call = run["metadata"]["stage_b"]["analyzers"]["risks"]
        assert call["latency_ms"] == pytest.approx(6000 + first["backoff_ms"])
        assert call["status"] == "ok"
        assert run["metadata"]["summary"]["retries"] == 1
        assert run["metadata"]["summary"]["backoff_ms"] == first["backoff_ms"]
    backoff = attempts(sequential, "stage_b", "risks")[0]["backoff_ms"]
    # One after another, the wait adds to the run; concurrently it is hidden under
    # hypotheses (7 s): risks ends before questions, which takes the first free slot.
    assert sequential["wall_ms"] == pytest.approx(40000 + backoff)
    assert parallel["wall_ms"] == 16000


@pytest.mark.integration
def test_429_and_5xx_are_retried_up_to_4_attempts_a_400_never(tmp_path: Path) -> None:
    failures = ["topics=429,500", "summary=503,503,503,503", "risks=400"]
    out = analyse(tmp_path, "--mode", "parallel", *(f"--fail={spec}" for spec in failures))
    run = out["runs"]["parallel"]
    topics = attempts(run, "stage_a", "topics")
    assert [a["status"] for a in topics] == [429, 500, 200]
    assert 0 < topics[0]["backoff_ms"] <= 1000
    assert 0 < topics[1]["backoff_ms"] <= 2000  # the bound doubles
    assert [a["status"] for a in attempts(run, "stage_a", "summary")] == [503] * 4
    assert [a["status"] for a in attempts(run, "stage_b", "risks")] == [400]
    statuses = {entry["name"]: entry["status"] for entry in run["steps"]}
    assert statuses["summary"] == statuses["risks"] == "recovered"  # their stages go on
    assert run["metadata"]["summary"]["failed"] == ["summary", "risks"]
    assert run["metadata"]["summary"]["succeeded"] == 6
    saved = json.loads((tmp_path / "parallel" / "stage_b" / "risks.json").read_text())
    assert (saved["status"], saved["insights"]) == ("failed", [])
    assert "400" in saved["error"]


@pytest.mark.integration
def test_a_failed_analyzer_is_left_out_and_a_tiny_budget_is_met(tmp_path: Path) -> None:
    flags = ("--fail", "sentiment=400", "--token-budget", "100")
    out = analyse(tmp_path, "--mode", "parallel", *flags)
    metadata = out["runs"]["parallel"]["metadata"]
    trimming = metadata["stage_b"]["context"]
    assert trimming["left_out"] == ["sentiment"]
    assert trimming["tokens"] == 100  # today's 603 was the bug
    assert (trimming["kept"], trimming["truncated"]) == (["summary"], "summary")
    assert trimming["dropped"] == ["transcript", "topics", "entities"]
    assert metadata["stage_a"]["analyzers"]["sentiment"]["status"] == "failed"
    assert all(call["status"] == "ok" for call in metadata["stage_b"]["analyzers"].values())


@pytest.mark.integration
def test_usage_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    for args, message in (
        (("--transcript", str(tmp_path / "missing.txt")), "missing.txt: no such file"),
        (("--token-budget", "0"), "--token-budget: invalid positive value: '0'"),
    ):
        done = subprocess.run(
            [sys.executable, str(EXAMPLES / "transcript.py"), *args], capture_output=True, text=True
        )
        assert done.returncode == 2
        assert message in done.stderr


# --- the Stage B context, within its budget ----------------------------------------------------


def shipped_sections(*, failed: frozenset[str] = frozenset()) -> list[Any]:
    transcript = SHIPPED.read_text(encoding="utf-8")
    settings = example.ContextSettings()
    sections = []
    for name, spec in example.STAGE_A.items():
        if name not in failed:
            lines, counts = example.evidence(transcript, spec.cues)
            analysis = example.Analysis(analyzer=name, insights=lines, structured=counts)
            sections.append(example.section(analysis, settings))
    return [*sections, example.Section("transcript", 0, f"## transcript\n{transcript}")]


@pytest.mark.parametrize("budget", [8000, 2000, 600, 100, 10, 1])
def test_the_shipped_context_meets_every_budget(budget: int) -> None:
    trimmed = example.fit(shipped_sections(), budget)
    assert trimmed.tokens == estimate_tokens(trimmed.text) <= budget
    assert trimmed.tokens_before > 8000
    if trimmed.truncated:
        assert trimmed.tokens == budget  # cut to the longest prefix that fits: no token wasted
        assert len(trimmed.kept) == 1


def test_sections_keep_top_insights_and_only_the_selected_keys() -> None:
    settings = example.ContextSettings(top_insights=2, structured_keys=("mentions",))
    analysis = example.Analysis(
        analyzer="topics", insights=("a", "b", "c"), structured={"mentions": 3, "by_speaker": {}}
    )
    assert example.section(analysis, settings).text == "## topics\n- a\n- b\nmentions: 3"


priorities = st.integers(min_value=0, max_value=5)
texts = st.text(alphabet="ab \n", max_size=200)


@given(
    sections=st.lists(
        st.builds(example.Section, name=st.uuids().map(str), priority=priorities, text=texts),
        max_size=6,
    ),
    budget=st.integers(min_value=0, max_value=300),
)
def test_fit_meets_the_budget_dropping_the_lowest_priorities_first(
    sections: list[Any], budget: int
) -> None:
    trimmed = example.fit(sections, budget)
    whole = example.join(sorted(sections, key=lambda s: -s.priority))
    # 1. The budget is met, always.
    assert trimmed.tokens == estimate_tokens(trimmed.text) <= budget
    assert trimmed.tokens_before == estimate_tokens(whole)
    # 2. Within budget, nothing is touched.
    if trimmed.tokens_before <= budget:
        assert (trimmed.text, trimmed.dropped, trimmed.truncated) == (whole, (), None)
    # 3. Kept and dropped split the sections, every kept one at least as important.
    by_name = {s.name: s for s in sections}
    assert sorted((*trimmed.kept, *trimmed.dropped)) == sorted(by_name)
    if trimmed.kept and trimmed.dropped:
        assert min(by_name[n].priority for n in trimmed.kept) >= max(
            by_name[n].priority for n in trimmed.dropped
        )
    # 4. A section goes only when needed: with the last one dropped back, it was over.
    kept = [by_name[name] for name in trimmed.kept]
    if trimmed.dropped:
        assert estimate_tokens(example.join([*kept, by_name[trimmed.dropped[-1]]])) > budget
    # 5. The text is the kept sections, or a prefix of the one left, cut to the budget exactly.
    if trimmed.truncated is None:
        assert trimmed.text == example.join(kept)
    else:
        assert trimmed.kept == (trimmed.truncated,)
        assert by_name[trimmed.truncated].text.startswith(trimmed.text)
        assert trimmed.tokens == budget


# --- a real provider: the local OpenAI-compatible server, on the real clock -------------------


@pytest.mark.integration
async def test_a_real_server_s_500s_are_retried_and_every_analyzer_ends(tmp_path: Path) -> None:
    async with serve_llm() as server:
        provider = ("--provider", "openai", "--base-url", server.base_url, "--model", "burst-500")
        flags = (*provider, "--scale", "0.01", "--mode", "parallel", "--json")
        done = await trio.run_process(
            [sys.executable, str(EXAMPLES / "transcript.py"), *flags, "--out", str(tmp_path)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env={"OPENAI_API_KEY": "sk-test", "PATH": "/usr/bin:/bin"},
        )
    assert done.returncode == 0, done.stderr.decode()
    run = json.loads(done.stdout)["runs"]["parallel"]
    # The server's first two answers are 500s: each is retried after a jittered wait (its
    # 1 s bound times --scale), and all 8 analyzers end.
    assert len(server.requests) == 8 + 2
    calls = {**run["metadata"]["stage_a"]["analyzers"], **run["metadata"]["stage_b"]["analyzers"]}
    retried = [call["attempts"] for call in calls.values() if len(call["attempts"]) > 1]
    assert [[a["status"] for a in tries] for tries in retried] == [[500, 200]] * 2
    assert all(0 < tries[0]["backoff_ms"] <= 10 for tries in retried)
    assert run["metadata"]["summary"]["succeeded"] == 8
