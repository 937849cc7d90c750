"""Seed 004, `examples/documents.py`: the batch's figures, failures, cache, files and URLs."""

from __future__ import annotations

import functools
import http.server
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest
import trio
from llm_server import serve_llm
from specroute.engine.report import read_log

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import TypeAlias

    Batches: TypeAlias = Callable[[str, str], dict[str, Any]]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "documents.py"
DATA = ROOT / "examples" / "data"

# folder -> (sequential wall ms, concurrent wall ms with 3 workers, LLM calls), virtual time.
FIGURES = {
    "documents": (27200, 9860, 22),
    "documents-distinct": (32480, 12320, 26),
}


def run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, check=True
    )
    return done.stdout


def record(*args: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(run(*args, "--json"))
    return result


def sequential_model(folder: Path) -> tuple[int, int]:
    """An independent model of a sequential batch: per distinct text (its words with case,
    spacing and punctuation dropped), a summary of 1000 ms + 20 ms a word and 500 ms of tags;
    a later copy of a text costs nothing. Returns (ms, calls)."""
    distinct: dict[str, str] = {}
    for path in sorted(folder.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        distinct.setdefault(" ".join(re.findall(r"\w+", text.lower())), text)
    ms = sum(1000 + 20 * len(text.split()) + 500 for text in distinct.values())
    return ms, 2 * len(distinct)


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> Batches:
    """`batches(folder, mode)`: the `--json` summary of that batch, run once per module (a
    start of the example costs seconds); its files are in `["outputs"]["folder"]`."""
    done: dict[tuple[str, str], dict[str, Any]] = {}

    def batch(folder: str, mode: str) -> dict[str, Any]:
        if (folder, mode) not in done:
            out = tmp_path_factory.mktemp(f"{folder}-{mode}")
            done[folder, mode] = record(str(DATA / folder), "--mode", mode, "--out", str(out))
        return done[folder, mode]

    return batch


@pytest.mark.integration
@pytest.mark.parametrize("folder", list(FIGURES))
def test_documents_figures_on_both_folders(folder: str, batches: Batches) -> None:
    sequential = batches(folder, "sequential")
    concurrent = batches(folder, "concurrent")
    walls = (sequential["wall_ms"], concurrent["wall_ms"], concurrent["usage_calls"])
    assert walls == FIGURES[folder]
    assert (sequential["wall_ms"], sequential["usage_calls"]) == sequential_model(DATA / folder)
    # The seed's lower bound holds on the shipped folder and on one where nothing repeats.
    assert sequential["wall_ms"] / concurrent["wall_ms"] >= 2.33
    assert (concurrent["workers"], concurrent["download_workers"]) == (3, 5)
    assert (sequential["workers"], sequential["download_workers"]) == (1, 1)
    for batch in (sequential, concurrent):
        assert (batch["documents"], batch["analysed"], batch["failed"]) == (13, 13, [])
    copies = ["11-refund-policy-copy.txt", "12-pricing-forwarded.txt"]
    assert concurrent["near_duplicates"] == (copies if folder == "documents" else [])


@pytest.mark.integration
def test_documents_table_prints_both_folders_speed_ups() -> None:
    table = run()
    for folder, (before, after, _) in FIGURES.items():
        assert re.search(rf"{folder}\s.*\s{after}\s+│\s+{before / after:.2f}x", table)
    assert "13-pricing-revised.txt (0.968)" in table


@pytest.mark.integration
def test_documents_revised_price_gets_its_own_summary(batches: Batches) -> None:
    batch = batches("documents", "concurrent")
    out = Path(batch["outputs"]["folder"])
    # The revised price is near the pricing document (a semantic hit), and only a guess: the
    # summary step still computed its own (11 distinct texts, a summary and tags each).
    assert batch["near_matches"] == [
        {"document": "13-pricing-revised.txt", "similarity": 0.968, "agreed": False}
    ]
    assert batch["usage_calls"] == 22
    (run_record,) = batch["runs"]
    revised = [step for step in run_record["steps"] if step["branch"] == "analyses[12]"]
    assert [(step["name"], step["status"]) for step in revised] == [
        ("normalise", "ok"),
        ("summary", "ok"),
        ("tags", "ok"),
        ("analysed", "ok"),
    ]
    summary = (out / "13-pricing-revised.md").read_text().split("\n\n")[1]
    assert summary != (out / "07-pricing.md").read_text().split("\n\n")[1]


@pytest.mark.integration
def test_documents_one_failing_document_does_not_abort_the_batch(tmp_path: Path) -> None:
    batch = record(
        str(DATA / "documents"),
        str(tmp_path / "missing.txt"),
        "--fail", "03-warranty.txt=400",  # never retried
        "--fail", "05-security-incident.txt=503",  # retried, then analysed
        "--fail", "06-onboarding.txt=503,503,503",  # every attempt fails
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    failed = {f["document"]: (f["step"], f["error"]) for f in batch["failed"]}
    assert failed == {
        "missing.txt": ("download", "FileNotFoundError"),
        "03-warranty.txt": ("summary", "ProviderHTTPError"),
        "06-onboarding.txt": ("summary", "RetryBudgetExceededError"),
    }
    assert (batch["documents"], batch["analysed"]) == (14, 11)
    retried = [i["failure"] for i in batch["injected"] if i["stage"] == "05-security-incident.txt"]
    assert retried == ["503"]
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert [f["document"] for f in index["failed"]] == list(failed)
    analysed = {entry["document"] for entry in index["documents"]}
    assert "05-security-incident.txt" in analysed
    assert not analysed & set(failed)
    assert not (tmp_path / "out" / "03-warranty.md").exists()


@pytest.mark.integration
def test_documents_writes_summaries_tags_and_an_index(batches: Batches) -> None:
    batch = batches("documents-distinct", "concurrent")
    out = Path(batch["outputs"]["folder"])
    names = sorted(path.name for path in (DATA / "documents-distinct").glob("*.txt"))
    expected = [str(out / name.replace(".txt", ".md")) for name in names]
    assert batch["outputs"]["files"] == [*expected, str(out / "index.json")]
    index = json.loads((out / "index.json").read_text())
    assert [entry["document"] for entry in index["documents"]] == names
    assert index["failed"] == []
    page = (out / "03-warranty.md").read_text()
    tags = index["documents"][2]["tags"]
    assert page.startswith("# 03-warranty.txt\n")
    assert f"Tags: {', '.join(tags)}" in page
    assert len(tags) == 3


@pytest.mark.integration
def test_documents_batches_share_the_cache_and_log_every_run(tmp_path: Path) -> None:
    log = tmp_path / "runs.jsonl"
    batch = record("--batch-size", "5", "--log", str(log), "--out", str(tmp_path / "out"))
    assert (batch["batch_size"], batch["batches"], batch["analysed"]) == (5, 3, 13)
    # Copies in later batches are still served from the first batch's entries.
    assert batch["near_duplicates"] == ["11-refund-policy-copy.txt", "12-pricing-forwarded.txt"]
    assert batch["usage_calls"] == 22
    # Three runs, each waiting for the slowest document of its batch.
    assert batch["wall_ms"] == sum(run["wall_ms"] for run in batch["runs"]) > 9860
    assert [run.label for run in read_log(log, strict=True).records] == [
        "documents concurrent 1/3",
        "documents concurrent 2/3",
        "documents concurrent 3/3",
    ]


@attrs.define(eq=False)
class WebServer:
    """The shipped documents over HTTP from 127.0.0.1; each answer takes `delay` seconds, and
    the server counts the requests it answers at once."""

    url: str = ""
    delay: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = attrs.Factory(threading.Lock)


def handler_for(web: WebServer) -> type[http.server.SimpleHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            with web.lock:
                web.in_flight += 1
                web.max_in_flight = max(web.max_in_flight, web.in_flight)
            try:
                time.sleep(web.delay)
                super().do_GET()
            finally:
                with web.lock:
                    web.in_flight -= 1

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def web_server() -> Iterator[WebServer]:
    """A real HTTP server in a thread, serving `examples/data/documents/`."""
    web = WebServer()
    handler = functools.partial(handler_for(web), directory=str(DATA / "documents"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    web.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield web
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.integration
def test_documents_downloads_urls_on_the_real_clock(web_server: WebServer, tmp_path: Path) -> None:
    names = ("07-pricing.txt", "08-api-limits.txt", "nope.txt")
    batch = record(*(f"{web_server.url}/{name}" for name in names), "--scale", "0.01",
                   "--out", str(tmp_path))  # fmt: skip
    # On the virtual clock the client's timeouts would pass while a request is on the wire.
    assert [(f["document"], f["step"]) for f in batch["failed"]] == [("nope.txt", "download")]
    assert "404" in batch["failed"][0]["message"]
    assert (tmp_path / "08-api-limits.md").read_text().startswith("# 08-api-limits.txt")


@pytest.mark.integration
def test_documents_download_pool_is_its_own(web_server: WebServer, tmp_path: Path) -> None:
    web_server.delay = 0.05
    names = sorted(path.name for path in (DATA / "documents").glob("*.txt"))[:6]
    urls = [f"{web_server.url}/{name}" for name in names]
    batch = record(*urls, "--download-workers", "2", "--workers", "3", "--scale", "0.01",
                   "--out", str(tmp_path))  # fmt: skip
    assert batch["analysed"] == 6
    assert web_server.max_in_flight == 2  # not the 3 analysis workers, nor all 6
    (run_record,) = batch["runs"]
    downloads = [step for step in run_record["steps"] if step["name"] == "download"]
    first_summary = min(s["start_ms"] for s in run_record["steps"] if s["name"] == "summary")
    # Three rounds of two downloads, then the analysis (the seed's stages, one after another).
    assert len(downloads) == 6
    assert max(step["end_ms"] for step in downloads) <= first_summary


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (("http://127.0.0.1:9/a.txt", "--clock", "virtual"), 2, "drop --clock virtual"),
        (("--workers", "0"), 2, "--workers and --download-workers must be >= 1"),
        ((str(DATA / "rag"),), 1, "no documents in"),  # markdown only, no .txt
    ],
)
def test_documents_refuses_a_batch_it_cannot_run(
    args: tuple[str, ...], status: int, message: str
) -> None:
    done = subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True)
    assert done.returncode == status
    assert message in done.stderr
    assert not done.stdout


async def run_on_server(base_url: str, model: str, *sources: str) -> dict[str, Any]:
    flags = ("--provider", "openai", "--base-url", base_url, "--model", model)
    done = await trio.run_process(
        [sys.executable, str(EXAMPLE), *sources, *flags, "--json"],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env={"OPENAI_API_KEY": "sk-test", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = json.loads(done.stdout)
    return result


async def test_documents_retry_a_real_servers_500s_and_survive_its_400s() -> None:
    sources = [str(DATA / "documents" / name) for name in ("03-warranty.txt", "04-privacy.txt")]
    async with serve_llm() as server:
        # The server's first two answers are 500s: each document's summary is retried.
        recovered = await run_on_server(server.base_url, "burst-500", *sources)
        # Every answer is a 400, never retried: every document fails, the batch still ends.
        refused = await run_on_server(server.base_url, "bad-request", *sources)
    assert (recovered["analysed"], recovered["failed"]) == (2, [])
    # Two summaries and one tags call: the server's two summaries are alike, so the second
    # document's tags are the first's (exact on the summary). The two 500s were retried.
    assert recovered["usage_calls"] == 3
    assert [model for model, _ in server.requests].count("burst-500") == 2 + 3
    assert refused["analysed"] == 0
    assert {(f["document"], f["step"], f["error"]) for f in refused["failed"]} == {
        ("03-warranty.txt", "summary", "ProviderHTTPError"),
        ("04-privacy.txt", "summary", "ProviderHTTPError"),
    }
    assert [model for model, _ in server.requests].count("bad-request") == 2
