"""The HTML report: one self-contained file (inline CSS and SVG, no scripts, no network).

The page is the Jinja2 template `templates/report.html.j2`, rendered with autoescaping on,
so every value is escaped unless it is `Markup` (only the SVG charts, which escape their own
user text in `_svg.py`): a field added later is safe by default. Every user string (flow,
step, branch, route and label names, errors, log paths, predictors' sources and policies'
notes) sits in a `<bdi>`, so an unterminated U+202E in a flow name cannot reverse the
heading around it; long ones wrap in their own box and wide tables scroll in their own
container.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import TYPE_CHECKING

import attrs
import jinja2

from ._report import Report
from ._schema import ms
from ._svg import (
    STATUS_COLOURS,
    isolated,
    latency_chart,
    text,
    timeline,
    waste_chart,
    waste_note,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._trace import RouterDecision
    from ._log import LogProblem
    from ._schema import RunRecord
    from ._summary import Summary

__all__ = ["MAX_RUN_ROWS", "render_html", "render_report"]

MAX_RUN_ROWS = 200
_DASH = "\u2013"  # an en dash, as text: the template escapes it once


@attrs.frozen(kw_only=True)
class _DecisionRow:
    """One router decision as the page shows it: plain text, escaped by the template."""

    router: str
    branch: str
    predicted: str
    plan: str
    declined: str
    returned: str | None
    wasted: bool
    right: str
    cache: str


def _plan(decision: RouterDecision) -> tuple[str, str]:
    parts = []
    for label, limit in decision.plan.items():
        depth = "whole branch" if limit is None else f"{limit} steps"
        reason = decision.reasons.get(label)
        why = ""
        if reason is not None:
            why = (
                f": p {reason.probability:.2f}, saving ${reason.saving:,.5f} against "
                f"waste ${reason.waste:,.5f}" + (f", {reason.note}" if reason.note else "")
            )
        parts.append(f"{label} ({depth}{why})")
    declined = [
        f"{label}: {reason.note or 'did not pay'}"
        for label, reason in decision.reasons.items()
        if label not in decision.plan
    ]
    return "; ".join(parts), "; ".join(declined)


def _decision(decision: RouterDecision) -> _DecisionRow:
    predicted = ""
    prediction = decision.prediction
    if prediction is not None:
        odds = ", ".join(f"{label} {p:.0%}" for label, p in prediction.probabilities.items())
        predicted = f"{odds or 'nothing'} by {prediction.source or '?'}"
    elif decision.note:
        predicted = decision.note
    cache = decision.cache or ""
    if decision.similarity is not None:
        cache += f" ({decision.similarity:.3f})"
    plan, declined = _plan(decision)
    return _DecisionRow(
        router=decision.router,
        branch=decision.branch,
        predicted=predicted,
        plan=plan,
        declined=declined,
        returned=decision.label,
        wasted=decision.wasted,
        right={True: "yes", False: "no", None: _DASH}[decision.right],
        cache=cache,
    )


def _pct(value: float | None) -> str:
    return _DASH if value is None else f"{value:.0%}"


def _dollars(cost: float, unpriced: int = 0) -> str:
    # A model outside the price table costs an unknown amount: never show it as $0.
    if not unpriced:
        return f"${cost:,.4f}"
    return f"${cost:,.4f} + {unpriced} unpriced" if cost else "unpriced"


def _when(time: str | None) -> str:
    return "" if time is None else time[:19].replace("T", " ") + " UTC"


def _cards(summary: Summary) -> list[tuple[str, str]]:
    speculation = summary.speculation
    cache = summary.cache
    return [
        (f"{summary.runs:,}", "runs"),
        (f"{summary.wall.p50:,.0f} ms", f"wall p50 (sequential {summary.sequential.p50:,.0f})"),
        (f"{summary.wall.p95:,.0f} ms", f"wall p95 (sequential {summary.sequential.p95:,.0f})"),
        (f"{summary.saved_ms:,.0f} ms", f"saved per run ({_pct(summary.saved_pct)})"),
        (f"{summary.speedup:.2f}x", "speed-up vs sequential"),
        (_pct(speculation.right_rate), f"speculation right ({speculation.speculated} tries)"),
        (f"{speculation.saved_ms_mean:,.0f} ms", "head start when right"),
        (f"{speculation.wasted_ms:,.0f} ms", "step time wasted when wrong"),
        (_dollars(summary.wasted_cost, summary.wasted_unpriced_calls), "dollars wasted"),
        (_pct(cache.hit_rate), f"cache hit rate ({cache.hits} hits)"),
        (f"{cache.saved_ms:,.0f} ms", f"saved by cache (${cache.saved_cost:,.4f})"),
        (
            f"{cache.exact_evictions:,} / {cache.semantic_evictions:,}",
            "cache evictions, exact / semantic",
        ),
        (str(summary.failed_steps), "failed steps"),
    ]


@functools.cache
def _template() -> jinja2.Template:
    folder = resources.files(__package__) / "templates"
    environment = jinja2.Environment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
    )
    environment.filters["isolate"] = isolated
    template = environment.from_string((folder / "report.html.j2").read_text(encoding="utf-8"))
    template.globals["css"] = (folder / "report.css").read_text(encoding="utf-8")
    return template


def render_report(report: Report, *, title: str = "specroute report") -> str:
    """A `Report` (from `read_report`) as one self-contained HTML page.

    Without readable runs the page says so and lists every damaged line with its reason.

    Args:
        report: What to show.
        title: The page's title (escaped), e.g. the log's path.

    Returns:
        The HTML text.
    """
    summary = report.summary
    shown = report.shown
    start = max(0, len(report.runs) - MAX_RUN_ROWS)
    return _template().render(
        title=title,
        summary=summary,
        cards=_cards(summary),
        shown=shown,
        shown_number=report.shown_number,
        chosen=report.chosen,
        which="the chosen run" if report.chosen else "the run that best shows speculation",
        legend=[(status.value, colour) for status, colour in STATUS_COLOURS.items()],
        timeline_svg=timeline(shown) if shown is not None else "",
        others=[(other, timeline(other.record, key=f"-{other.number}")) for other in report.others],
        decisions=[_decision(d) for d in shown.result.decisions] if shown is not None else [],
        runs=report.runs,
        runs_table=report.runs[start:],
        runs_start=start,
        latency_svg=latency_chart(summary.routes, report.runs) if report.runs else "",
        waste_svg=waste_chart(report.runs) if report.runs else "",
        waste_note=waste_note(len(report.runs)),
        problems=report.problems,
        problem_count=report.problem_count,
        ms=ms,
        pct=_pct,
        dollars=_dollars,
        when=_when,
        svg_text=text,
    )


def render_html(
    summary: Summary,
    records: Sequence[RunRecord],
    *,
    run: RunRecord | None = None,
    problems: Sequence[LogProblem] = (),
    title: str = "specroute report",
) -> str:
    """The report of runs in memory as one self-contained HTML page (see `render_report`).

    Args:
        summary: `summarize(records)`.
        records: The runs, in log order.
        run: The run whose timeline is shown (default: the one that best shows
            speculation, `pick_run`).
        problems: Unreadable log lines, listed at the end.
        title: The page's title (escaped), e.g. the log's path.

    Returns:
        The HTML text.
    """
    which = None
    if run is not None:
        which = str(next(i for i, record in enumerate(records, start=1) if record is run))
    report = attrs.evolve(
        Report.of(records, run=which),
        summary=summary,
        problems=tuple(problems),
        problem_count=len(problems),
    )
    return render_report(report, title=title)
