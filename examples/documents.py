"""The document batch from seed 004: analyse a folder of documents with a worker cap.

The batch is one run: `map_` runs a flow per document, its words (case, spacing and
punctuation normalised away), a summary (an LLM call whose time grows with the document) and
tags for the summary (500 ms). `--mode sequential` analyses one document after another;
`--mode concurrent` keeps `--workers` documents in flight (the map's `max_parallel`). Every
item shares the run's cache, keyed on the document's words, so a re-typed copy is an exact
hit. A document that is only *near* another (a revised price) is a semantic near match: a
guess that the summary step verifies, never served as its summary. A rich progress bar (a
`RunObserver`) counts documents.

    python examples/documents.py                    # sequential vs concurrent, as a table
    python examples/documents.py --mode concurrent --workers 3 --json
    python examples/documents.py --clock real --scale 0.1
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _common
from _common import ask, open_llm
from rich.console import Console
from rich.progress import Progress
from specroute.cache import CacheOptions, HashingEmbedder, open_cache
from specroute.engine import Flow, StepStatus, map_, step
from specroute.engine.report import run_to_json

if TYPE_CHECKING:
    from specroute.engine.llm import LLMClient

FOLDER = Path(__file__).parent / "data" / "documents"
SEED = {"sequential": "1.00x", "concurrent": "2.33-2.64x"}


# A cached answer is keyed on what it depends on beyond its inputs: the model and the prompt.
SUMMARY_CACHE = CacheOptions(
    semantic="normalised", depends_on={"model": _common.MODEL, "prompt": "1"}
)
TAGS_CACHE = CacheOptions(depends_on={"model": _common.MODEL, "prompt": "1"})


@step(output="normalised")
async def normalise(text: str) -> str:
    """The document as its words: other case, spacing and punctuation make one key."""
    return " ".join(re.findall(r"\w+", text.lower()))


@step(cache=SUMMARY_CACHE, cache_inputs=("normalised",))  # a re-typed copy hits exactly
async def summary(text: str, normalised: str, llm: LLMClient) -> str:
    return await ask(llm, "summary", 1000 + 20 * len(text.split()), f"summarise:\n{text}")


@step(cache=TAGS_CACHE, cache_inputs=("summary",))
async def tags(summary: str, llm: LLMClient) -> list[str]:
    answer = await ask(llm, "tags", 500, f"three tags for: {summary[:200]}")
    return answer.split()[:3]


document = Flow([normalise, summary, tags], name="document", inputs=["text", "llm"])


class DocumentProgress:
    """A `RunObserver` that advances a rich progress bar as each document's last step ends."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress = progress
        self.task = progress.add_task("documents", total=total) if progress else None

    def step_started(self, step: str, branch: str, speculative: bool) -> None:
        pass

    def step_finished(self, step: str, branch: str, status: StepStatus, seconds: float) -> None:
        if self.progress is not None and self.task is not None and step == "tags":
            self.progress.advance(self.task)
            self.progress.refresh()


def batch_flow(workers: int) -> Flow:
    """The whole batch: `document` mapped over the texts, `workers` at a time."""
    analyse = map_(document, over="texts", item="text", into="tags_per_document",
                   max_parallel=workers)  # fmt: skip
    return Flow([analyse], name="documents", inputs=["texts", "llm"])


async def batch(mode: str, workers: int, texts: dict[str, str], show: bool) -> dict[str, Any]:
    """Analyse every document in one run; `concurrent` keeps `workers` documents in flight."""
    workers = 1 if mode == "sequential" else workers
    console = Console(stderr=True)
    async with open_llm() as (llm, _), open_cache(embedder=HashingEmbedder()) as cache:
        with Progress(console=console, auto_refresh=False, disable=not show) as progress:
            observer = DocumentProgress(progress, len(texts))
            result = await batch_flow(workers).run(
                texts=list(texts.values()), llm=llm, cache=cache, observer=observer
            )
        statistics = cache.statistics()
    record = run_to_json(result)
    names = list(texts)
    # An item's steps run in branch "tags_per_document[i]": i is the document's place.
    hit = {int(entry.branch.split("[")[1].rstrip("]"))
           for entry in result.trace if entry.status is StepStatus.CACHED}  # fmt: skip
    return {"mode": mode, "workers": workers, "documents": len(texts),
            "wall_ms": record["wall_ms"], "sequential_ms": record["sequential_ms"],
            "cache": {"hits": statistics.hits, "semantic_hits": statistics.semantic_hits,
                      "misses": statistics.misses},
            "near_duplicates": [names[index] for index in sorted(hit)],
            "usage_calls": record["usage"]["calls"], "run": record}  # fmt: skip


def read_folder(folder: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(folder.glob("*.txt"))}


async def main(args: Any) -> None:
    texts = read_folder(Path(args.folder))
    if args.json:
        _common.dump(await batch(args.mode, args.workers, texts, show=False))
        return
    before = await batch("sequential", args.workers, texts, show=True)
    after = await batch("concurrent", args.workers, texts, show=True)
    rows = [[run["mode"], run["workers"], f"{run['wall_ms']:.0f}",
             f"{before['wall_ms'] / run['wall_ms']:.2f}x", SEED[run["mode"]],
             f"{run['cache']['hits']} ({', '.join(run['near_duplicates'])})"]
            for run in (before, after)]  # fmt: skip
    _common.print_table(
        f"Documents (seed 004): {len(texts)} documents from {FOLDER.name}/, wall ms",
        ["mode", "workers", "wall ms", "speed-up x", "seed x", "cache hits (documents)"],
        rows,
    )


if __name__ == "__main__":
    parse = _common.parser(__doc__)
    parse.add_argument("--mode", choices=["sequential", "concurrent"], default="concurrent")
    parse.add_argument("--workers", type=int, default=3, help="documents in flight at most")
    parse.add_argument("--folder", default=str(FOLDER), help="a folder of .txt documents")
    _common.run(main, parse.parse_args(sys.argv[1:]))
