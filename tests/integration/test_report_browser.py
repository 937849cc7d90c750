"""The HTML report in headless Chromium: a bar for every step, no hostile script, screenshots.

Chromium is Debian's `chromium` (the Makefile's `chromium` target installs it). Without
it this test fails rather than skips: CI must render the report.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing
from report_records import hostile_run
from specroute.engine import Flow, step

if TYPE_CHECKING:
    from specroute.engine import RunResult

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


# Each payload, if it ran, would mark the page's <body> with `data-pwned`.
PWN = "document.body.setAttribute('data-pwned', '1')"
PAYLOADS = [
    f"<script>{PWN}</script>",
    f'<img src=x onerror="{PWN}">',
    f'"\'><svg onload="{PWN}">',
    f"</title></bdi></td></table><script>{PWN}</script>",
    f"]]><script>{PWN}</script><!--",
    "{{ 7*7 }}{% raw %}\u202e[/]&ndash;",
]


class Dom(HTMLParser):
    """What the browser built: every tag, the body's attributes, bars per timeline."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.body: dict[str, str | None] = {}
        self.bars = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        if tag == "body":
            self.body = found
        if tag == "rect" and "bar" in (found.get("class") or "").split():
            self.bars += 1


async def payload_run(text: str) -> RunResult:
    """A real run of a flow named `text` whose step outputs `text`."""

    @step(output="answer")
    async def echo(request: str) -> str:
        await trio.sleep(0.1)
        return text

    return await Flow([echo], name=text).run(request=text)


@pytest.mark.integration
def test_hostile_text_runs_no_script_in_chromium(tmp_path: Path) -> None:
    from specroute.engine.report import RunRecord, log_line, read_report, render_report

    browser = chromium()
    log = tmp_path / "hostile.jsonl"
    lines = []
    for number, text in enumerate(PAYLOADS):
        # Flow, configuration, route, router, step, branch, error and source fields...
        lines.append(hostile_run(text, number=number).to_json())
        # ...and a real run whose flow name and output are the payload.
        result = trio.run(payload_run, text, clock=trio.testing.MockClock(autojump_threshold=0))
        lines.append(log_line(result, label=text))
    log.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    for index in (1, 2 * len(PAYLOADS) - 1):
        report = read_report(log, run=str(index))
        assert isinstance(report.shown, RunRecord)
        page = tmp_path / f"hostile-{index}.html"
        page.write_text(render_report(report, title=PAYLOADS[0]), encoding="utf-8")
        dom = subprocess.run(
            [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=2000", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
        parsed = Dom()
        parsed.feed(dom)
        assert "data-pwned" not in parsed.body
        assert "script" not in parsed.tags
        assert "img" not in parsed.tags
        # One bar per step of the run shown, whatever its names hold.
        shown = TimelineBars()
        shown.feed(dom)
        assert shown.run == report.shown.id
        assert len(shown.bars) == len(report.shown.result.trace)
        # ...and so in every other run's timeline on the page.
        expected = len(report.shown.result.trace)
        expected += sum(len(other.record.result.trace) for other in report.others)
        assert parsed.bars == expected
        assert "{{ 7*7 }}" in dom


@pytest.mark.integration
def test_demo_report_screenshot(tmp_path: Path) -> None:
    from specroute.engine.report import read_report, render_report

    browser = chromium()
    log = tmp_path / "planner.jsonl"
    write_log(log)
    report = read_report(log)
    # The default timeline is a speculative run, not the slowest (sequential) one.
    assert report.shown is not None
    assert report.shown.label != "sequential"
    ARTIFACTS.mkdir(exist_ok=True)
    page = ARTIFACTS / "report-demo.html"
    page.write_text(render_report(report, title="specroute demo: examples/planner.py"))
    screenshot = ARTIFACTS / "report-demo.png"
    screenshot.unlink(missing_ok=True)
    subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={screenshot}", "--window-size=1400,2400", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000
