"""The HTML report in headless Chromium: a timeline bar for every step, and a screenshot.

Chromium is Debian's `chromium` (the Makefile's `chromium` target installs it). Without
it this test fails rather than skips: CI must render the report.
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
PLANNER = ROOT / "examples" / "planner.py"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is missing: run `make chromium` (apt-get install chromium)")
    return found


class TimelineBars(HTMLParser):
    """The `data-step`/`data-status` of each `rect.bar` inside `#timeline`, as rendered."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.bars: list[tuple[str | None, str | None, str | None]] = []
        self.run: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id") == "timeline":
            self.depth = 1
            self.run = found.get("data-run")
        elif self.depth and tag not in ("rect", "line", "circle", "path", "polyline"):
            self.depth += 1
        if self.depth and tag == "rect" and "bar" in (found.get("class") or "").split():
            self.bars.append((found.get("data-step"), found.get("data-status"),
                              found.get("data-branch")))  # fmt: skip

    def handle_endtag(self, tag: str) -> None:
        if self.depth and tag not in ("rect", "line", "circle", "path", "polyline"):
            self.depth -= 1


def write_log(path: Path) -> None:
    """The planner's runs in every path and mode, appended to `path` (virtual time)."""
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), str(PLANNER), "--log", str(path)],
        check=True, capture_output=True,
    )  # fmt: skip


@pytest.mark.integration
def test_chromium_renders_a_bar_for_every_step(tmp_path: Path) -> None:
    from specroute.engine.report import read_log, render_html, summarize

    browser = chromium()
    log = tmp_path / "planner.jsonl"
    write_log(log)
    records = read_log(log, strict=True).records
    # Path A, speculative: speculated, cancelled, skipped and wasted steps all appear.
    chosen = next(r for r in records if r.label == "speculative" and r.result.route == "reuse")
    ARTIFACTS.mkdir(exist_ok=True)
    page = ARTIFACTS / "report-browser.html"
    page.write_text(render_html(summarize(records), records, run=chosen, title="planner"))
    profile = tmp_path / "profile"
    base = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]

    dom = subprocess.run(
        [*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
        check=True,
    ).stdout  # fmt: skip
    parser = TimelineBars()
    parser.feed(dom)
    assert parser.run == chosen.id
    expected = sorted((e.step, e.status.value, e.branch) for e in chosen.result.trace)
    assert sorted(parser.bars) == expected
    assert {status for _, status, _ in parser.bars} >= {"ok", "cancelled", "skipped"}

    screenshot = ARTIFACTS / "report-timeline.png"
    screenshot.unlink(missing_ok=True)
    subprocess.run(
        [*base, f"--screenshot={screenshot}", "--window-size=1400,900", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000
