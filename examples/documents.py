"""The document batch from seed 004: download, summarise and tag a batch of documents.

Two pools, as in the seed: `--download-workers` fetch the documents (files, folders of .txt
files or http(s) URLs), then `--workers` analyse them: the words (case, spacing and
punctuation normalised away), a summary (an LLM call of 1000 ms + 20 ms a word) and three
tags (500 ms). Each stage is a `map_` with `on_error="collect"`: a document that fails, after
the client's retries (`RetryPolicy`), becomes a failure record and the others go on.
`--batch-size N` runs the documents N at a time, one run per batch (0: one batch). Every run
shares one cache keyed on the words, so a re-typed copy is an exact hit; a document only
*near* another (a revised price) is a semantic near match, a guess the summary step verifies
and never serves. Summaries and tags go to `--out` (one .md per document, `index.json`).

    python examples/documents.py                    # both shipped folders, sequential vs concurrent
    python examples/documents.py report.txt https://example.com/a.txt --json --out out
    python examples/documents.py --fail 03-warranty.txt=400 --fail 05-security-incident.txt=503
    python examples/documents.py --clock real --scale 0.01
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _common
import attrs
import httpx
import trio
from _common import ask, open_llm
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from specroute.cache import CacheOptions, HashingEmbedder, open_cache
from specroute.engine import Flow, ItemFailed, StepFailedError, StepStatus, map_, step
from specroute.engine.llm import RetryPolicy
from specroute.engine.report import run_to_json

if TYPE_CHECKING:
    from argparse import Namespace

    from specroute.engine import RunResult
    from specroute.engine.llm import LLMClient

DATA = Path(__file__).parent / "data"
FOLDERS = (DATA / "documents", DATA / "documents-distinct")  # shipped; every one distinct
SEED = {"sequential": "1.00x", "concurrent": "2.33-2.64x"}
MODES = {"sequential": "sequential", "concurrent": "speculative"}  # the run's mode
# A failed call is retried twice (429, 5xx, timeouts, network; never a 400).
RETRY = RetryPolicy(max_attempts=3, base_delay=0.5)
# A cached answer is keyed on what it depends on beyond its inputs: the model and the prompt.
DEPENDS_ON = {"model": _common.MODEL, "prompt": "1"}
SUMMARY_CACHE = CacheOptions(semantic="normalised", depends_on=DEPENDS_ON)
TAGS_CACHE = CacheOptions(depends_on=DEPENDS_ON)


@attrs.frozen(kw_only=True)
class Document:
    """A document of the batch: its name, where it comes from, and its text once downloaded."""

    name: str
    source: str
    text: str = ""


@attrs.frozen(kw_only=True)
class Analysis:
    """What the batch made of one document."""

    document: str
    summary: str
    tags: tuple[str, ...]


@attrs.frozen(kw_only=True)
class Failure:
    """A document the batch could not analyse: at which step, and why."""

    document: str
    step: str
    error: str
    message: str


# --- the pipeline ---------------------------------------------------------------------------
@step(output="downloaded")
async def download(document: Document, http: httpx.AsyncClient) -> Document:
    """Fetch a URL, or read a file in a worker thread (the event loop never waits on a disk)."""
    if document.source.startswith(("http://", "https://")):
        response = (await http.get(document.source)).raise_for_status()
        return attrs.evolve(document, text=response.text)
    return attrs.evolve(document, text=await trio.Path(document.source).read_text("utf-8"))


@step(output="fetched")
async def keep_fetched(downloads: tuple[Document | ItemFailed, ...]) -> list[Document]:
    return [document for document in downloads if isinstance(document, Document)]


@step(output="normalised")
async def normalise(doc: Document) -> str:
    """The document as its words: other case, spacing and punctuation make one key."""
    return " ".join(re.findall(r"\w+", doc.text.lower()))


@step(cache=SUMMARY_CACHE, cache_inputs=("normalised",))  # a re-typed copy hits exactly
async def summary(doc: Document, normalised: str, llm: LLMClient) -> str:
    ms = 1000 + 20 * len(doc.text.split())
    return await ask(llm, doc.name, ms, f"summarise:\n{doc.text}")


@step(cache=TAGS_CACHE, cache_inputs=("summary",))
async def tags(doc: Document, summary: str, llm: LLMClient) -> tuple[str, ...]:
    answer = await ask(llm, doc.name, 500, f"three tags for: {summary[:200]}")
    return tuple(answer.split()[:3])


@step(output="analysis")
async def analysed(doc: Document, summary: str, tags: tuple[str, ...]) -> Analysis:
    return Analysis(document=doc.name, summary=summary, tags=tags)


def batch_flow(workers: int, download_workers: int) -> Flow:
    """Download every document (`download_workers` at once), then analyse them (`workers`)."""
    fetch = map_(download, over="documents", item="document", into="downloads",
                 max_parallel=download_workers, on_error="collect")  # fmt: skip
    analyse = map_([normalise, summary, tags, analysed], over="fetched", item="doc",
                   into="analyses", max_parallel=workers, on_error="collect")  # fmt: skip
    return Flow([fetch, keep_fetched, analyse], name="documents",
                inputs=["documents", "http", "llm"])  # fmt: skip


# --- running it -----------------------------------------------------------------------------
class DocumentProgress:
    """A `RunObserver` that advances a rich progress bar as each document ends or fails."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.progress = progress
        self.task = progress.add_task("documents", total=total)

    def step_started(self, step: str, branch: str, speculative: bool) -> None:
        pass

    def step_finished(self, step: str, branch: str, status: StepStatus, seconds: float) -> None:
        if step == "analysed" or status is StepStatus.FAILED:
            self.progress.advance(self.task)
            self.progress.refresh()


@attrs.define(eq=False)
class Batch:
    """What the runs of one batch job found, added up run by run."""

    analyses: list[Analysis] = attrs.Factory(list)
    failed: list[Failure] = attrs.Factory(list)
    copies: list[str] = attrs.Factory(list)  # summaries served exactly from the cache
    near: list[dict[str, Any]] = attrs.Factory(list)  # semantic near matches, verified
    runs: list[dict[str, Any]] = attrs.Factory(list)

    def add(self, result: RunResult) -> None:
        """Take one run's analyses, failures (the maps' `ItemFailed`) and cache use."""
        fetched = result.values["fetched"]
        self.analyses += [a for a in result.values["analyses"] if isinstance(a, Analysis)]
        for item in (*result.values["downloads"], *result.values["analyses"]):
            if isinstance(item, ItemFailed) and isinstance(item.error, StepFailedError):
                cause = item.error.__cause__ or item.error
                failure = Failure(document=item.item.name, step=item.error.step,
                                  error=type(cause).__name__, message=str(cause))  # fmt: skip
                self.failed.append(failure)
        for entry in result.trace:
            if entry.step == "summary" and entry.status is StepStatus.CACHED:
                self.copies.append(fetched[item_index(entry.branch)].name)
        for guess in result.predicted_values:
            document = fetched[item_index(guess.branch)].name
            similarity = round(guess.similarity, 3)
            near = {"document": document, "similarity": similarity, "agreed": guess.confirmed}
            self.near.append(near)
        self.runs.append(run_to_json(result))


def item_index(branch: str) -> int:
    """An item's steps run in branch `"analyses[i]..."`: `i` is its place in the map's list."""
    return int(branch.split("[", 1)[1].split("]", 1)[0])


async def run_batches(
    args: Namespace, mode: str, documents: list[Document], out: Path | None, show: bool
) -> dict[str, Any]:
    """Analyse `documents`, `args.batch_size` a run; the batch summary (and files in `out`)."""
    concurrent = mode == "concurrent"
    workers = args.workers if concurrent else 1
    download_workers = args.download_workers if concurrent else 1
    size = args.batch_size or len(documents) or 1
    parts = [documents[start : start + size] for start in range(0, len(documents), size)]
    flow = batch_flow(workers, download_workers)
    batch = Batch()
    failures = _common.parse_failures(args.fail)
    async with (
        open_llm(failures, retry=RETRY) as (llm, injector),
        open_cache(embedder=HashingEmbedder()) as cache,
        httpx.AsyncClient(follow_redirects=True) as http,
    ):
        with Progress(console=Console(stderr=True), auto_refresh=False, disable=not show) as bar:
            observer = DocumentProgress(bar, len(documents))
            for number, part in enumerate(parts, 1):
                result = await flow.run(documents=part, http=http, llm=llm, cache=cache,
                                        observer=observer, mode=MODES[mode])  # fmt: skip
                sources = {"documents": [document.source for document in part]}
                _common.log_run(result, f"documents {mode} {number}/{len(parts)}", sources)
                batch.add(result)
        statistics = cache.statistics()
    outputs = {}
    if out is not None:
        outputs = await trio.to_thread.run_sync(write_outputs, out, batch)
    return {"mode": mode, "workers": workers, "download_workers": download_workers,
            "batch_size": size, "batches": len(parts), "documents": len(documents),
            "analysed": len(batch.analyses), "failed": [attrs.asdict(f) for f in batch.failed],
            "injected": injector.injected,
            "wall_ms": round(sum(run["wall_ms"] for run in batch.runs), 3),
            "sequential_ms": round(sum(run["sequential_ms"] for run in batch.runs), 3),
            "cache": {"hits": statistics.hits, "semantic_hits": statistics.semantic_hits,
                      "misses": statistics.misses},
            "near_duplicates": sorted(batch.copies), "near_matches": batch.near,
            "usage_calls": sum(run["usage"]["calls"] for run in batch.runs),
            "outputs": outputs, "runs": batch.runs}  # fmt: skip


def write_outputs(out: Path, batch: Batch) -> dict[str, Any]:
    """Write `<document>.md` (summary and tags) per analysed document and `index.json`."""
    files: dict[str, Any] = {}
    entries = []
    for analysis in batch.analyses:
        name = f"{Path(analysis.document).stem}.md"
        tags = ", ".join(analysis.tags)
        files[name] = f"# {analysis.document}\n\n{analysis.summary}\n\nTags: {tags}\n"
        entries.append({"document": analysis.document, "file": name, "tags": analysis.tags})
    failed = [attrs.asdict(failure) for failure in batch.failed]
    files["index.json"] = {"documents": entries, "failed": failed}
    written = _common.write_outputs(str(out), files)
    return {"folder": str(out), "index": str(out / "index.json"), "files": written}


def find_documents(sources: list[str]) -> list[Document]:
    """Each source is a URL, a file, or a folder (its .txt files); a missing file is kept, so
    it fails at download like an unreachable URL. Names are made unique: they name the files
    written."""
    documents: list[Document] = []
    names: set[str] = set()
    for source in sources:
        paths = sorted(Path(source).glob("*.txt")) if Path(source).is_dir() else [source]
        for path in map(str, paths):
            name = re.sub(r"[^\w.-]", "_", path.rstrip("/").rsplit("/", 1)[-1]).lstrip(".")
            name = name or "document"
            while name in names:
                name = f"{len(names)}-{name}"
            names.add(name)
            documents.append(Document(name=name, source=path))
    return documents


async def read_sources(sources: list[str]) -> list[Document]:
    """The documents of `sources` (listed in a worker thread); none is a usage error."""
    documents = await trio.to_thread.run_sync(find_documents, sources)
    if not documents:
        raise SystemExit(f"no documents in {', '.join(sources)} (a folder's .txt files count)")
    return documents


async def main(args: Namespace) -> None:
    sources = [*args.sources, *([args.folder] if args.folder else [])]
    out = Path(args.out or tempfile.mkdtemp(prefix="documents-"))
    if args.json:  # one batch job, in `--mode`, over the sources (default: the shipped folder)
        documents = await read_sources(sources or [str(FOLDERS[0])])
        _common.dump(await run_batches(args, args.mode, documents, out, show=False))
        return
    # The table: sequential against concurrent, on the sources or on both shipped folders.
    rows = []
    notes = []
    for chosen in [sources] if sources else [[str(folder)] for folder in FOLDERS]:
        documents = await read_sources(chosen)
        label = Path(chosen[0]).name if len(chosen) == 1 else f"{len(chosen)} sources"
        before = await run_batches(args, "sequential", documents, None, show=True)
        after = await run_batches(args, "concurrent", documents, out / label, show=True)
        for run in (before, after):
            speedup = f"{before['wall_ms'] / run['wall_ms']:.2f}x" if run["wall_ms"] else "-"
            failed = ", ".join(f"{f['document']} ({f['error']})" for f in run["failed"])
            rows.append([escape(label), run["documents"], run["mode"], run["workers"],
                         f"{run['wall_ms']:.0f}", speedup, SEED[run["mode"]],
                         run["usage_calls"], escape(failed or "-")])  # fmt: skip
        copies = ", ".join(after["near_duplicates"]) or "none"
        near = ", ".join(f"{m['document']} ({m['similarity']})" for m in after["near_matches"])
        notes.append(escape(f"{label}: copies served from the cache: {copies}; near matches"
                            f" verified (own summary computed): {near or 'none'}"))  # fmt: skip
    _common.print_table(
        f"Documents (seed 004): wall ms, {args.download_workers} download workers",
        ["folder", "docs", "mode", "workers", "wall ms", "speed-up x", "seed x", "calls", "failed"],
        rows,
        [*notes, escape(f"Summaries, tags and index.json: {out}")],
    )


if __name__ == "__main__":
    parse = _common.parser(__doc__)
    parse.add_argument("sources", nargs="*", help="files, folders of .txt files, or URLs")
    parse.add_argument("--folder", help="a folder of .txt documents (same as a source)")
    parse.add_argument("--mode", choices=["sequential", "concurrent"], default="concurrent")
    parse.add_argument("--workers", type=int, default=3, help="documents analysed at once")
    parse.add_argument("--download-workers", type=int, default=5, help="downloads at once")
    parse.add_argument("--batch-size", type=int, default=0, help="documents a run (0: all)")
    parse.add_argument(
        "--fail",
        action="append",
        default=[],
        metavar="DOCUMENT=KINDS",
        help="fail DOCUMENT's next LLM calls: 400, 503, timeout or network, in order",
    )
    parse.add_argument("--out", metavar="DIR", help="write summaries, tags and index.json here")
    arguments = parse.parse_args(sys.argv[1:])
    if min(arguments.workers, arguments.download_workers) < 1 or arguments.batch_size < 0:
        parse.error("--workers and --download-workers must be >= 1, --batch-size >= 0")
    if any(source.startswith(("http://", "https://")) for source in arguments.sources):
        # A web server answers in real seconds: on the virtual clock its timeouts would pass
        # while the request is on the wire.
        if arguments.clock == "virtual":
            parse.error("URL sources are downloaded in real time: drop --clock virtual")
        arguments.clock = "real"
    _common.run(main, arguments)
