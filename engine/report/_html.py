"""The HTML report: one self-contained file (inline CSS and SVG, no scripts, no network).

Every piece of user text (flow, step, branch, route and label names, errors, log paths,
predictors' sources and policies' notes) goes through `html.escape`, so a step named
`<script>` is shown, never run.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from ._schema import ms
from ._svg import STATUS_COLOURS, latency_chart, timeline, waste_chart

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._trace import RouterDecision
    from ._log import LogProblem
    from ._schema import RunRecord
    from ._summary import Summary

__all__ = ["pick_run", "render_html"]

MAX_RUN_ROWS = 200
_CSS = """
:root { --ink: #1f2933; --muted: #6b7785; --line: #e4e7eb; --bg: #f7f8fa; --card: #fff; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: var(--ink); background: var(--bg); }
main { max-width: 1220px; margin: 0 auto; padding: 28px 28px 60px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 34px 0 10px; }
.sub { color: var(--muted); margin: 0 0 20px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
        padding: 12px 14px; }
.card .value { font-size: 22px; font-weight: 650; }
.card .label { color: var(--muted); font-size: 12px; }
.roi { margin-top: 14px; padding: 12px 16px; border-radius: 10px; border: 1px solid; }
.roi.pays { background: #ebf8ee; border-color: #a6dcb3; }
.roi.costs { background: #fff8e6; border-color: #f0d58a; }
.roi.does-not-pay { background: #fdecec; border-color: #f2b1b1; }
table { border-collapse: collapse; background: var(--card); border: 1px solid var(--line);
        border-radius: 10px; overflow: hidden; width: 100%; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: right;
         white-space: nowrap; }
th { background: #eef1f4; font-weight: 600; font-size: 12px; color: #3e4c59; }
th:first-child, td:first-child { text-align: left; }
tr.total td { font-weight: 650; }
table.runs td:nth-child(-n+6), table.runs th:nth-child(-n+6) { text-align: left; }
tr.chosen td { background: #eef4ff; }
table.decisions td, table.decisions th { text-align: left; white-space: normal; }
.panel { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
         padding: 14px; overflow-x: auto; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; margin: 0 0 10px; color: #3e4c59;
          font-size: 12px; }
.legend span { display: inline-flex; align-items: center; gap: 6px; }
.swatch { width: 16px; height: 11px; border-radius: 3px; display: inline-block;
          border: 1px solid rgba(0,0,0,.15); }
.swatch.wasted { background: repeating-linear-gradient(45deg, #f58518 0 3px, #fbd3ad 3px 6px); }
.swatch.speculative { border: 1.5px dashed #1f2933; background: #fff; }
svg { display: block; width: 100%; height: auto; }
svg text { font: 12px system-ui, sans-serif; fill: var(--ink); }
svg .tick { fill: var(--muted); font-size: 11px; }
svg .grid { stroke: #eceff3; }
svg .band { fill: #f3f5f8; }
svg .branch-name { font-weight: 650; fill: #3e4c59; }
svg .bar { stroke-width: 0; }
svg .bar.speculative { stroke-width: 1.5; stroke-dasharray: 4 2; }
svg .bar.status-skipped { stroke: #9aa5b1; stroke-width: 1; stroke-dasharray: 2 2; }
svg .bar.wasted { opacity: .85; }
svg .bar-label { fill: #fff; font-size: 11px; pointer-events: none; }
svg .decision { stroke: #1f2933; stroke-dasharray: 5 3; }
svg .decision-label { font-size: 11px; font-weight: 600; }
svg .wall { stroke: #e45756; stroke-width: 1.5; }
svg .dot { fill: #4c78a8; fill-opacity: .45; }
svg .mark { stroke-width: 3; }
svg .mark.p50 { stroke: #1f2933; }
svg .mark.p95 { stroke: #e45756; }
svg .mark.seq { stroke: #9aa5b1; stroke-dasharray: 3 2; }
svg .waste-bar { fill: #f58518; }
svg .dollars { fill: none; stroke: #e45756; stroke-width: 2; }
.problems { color: #b42318; }
footer { color: var(--muted); margin-top: 40px; font-size: 12px; }
"""


def pick_run(records: Sequence[RunRecord], which: str | None = None) -> RunRecord:
    """The run a report's timeline shows.

    Args:
        records: The runs, in log order.
        which: A 1-based position in `records`, or the start of a run id; None for the
            slowest run.

    Returns:
        The run.

    Raises:
        ValueError: No runs, or nothing matches `which` (or it matches several ids).
    """
    if not records:
        raise ValueError("the log holds no readable runs, so there is no run to show")
    if which is None:
        return max(records, key=lambda record: record.result.wall_time)
    if which.isdigit() and len(which) < 8:
        number = int(which)
        if not 1 <= number <= len(records):
            raise ValueError(f"`--run` must be between 1 and {len(records)}, got {number}")
        return records[number - 1]
    found = [record for record in records if record.id.startswith(which)]
    if len(found) != 1:
        problem = "no run id starts" if not found else f"{len(found)} run ids start"
        raise ValueError(f"`--run`: {problem} with {which!r}; give a position or a longer id")
    return found[0]


def _when(time: str | None) -> str:
    return "" if time is None else time[:19].replace("T", " ") + " UTC"


def _card(value: str, label: str) -> str:
    return (
        f'<div class="card"><div class="value">{value}</div><div class="label">{label}</div></div>'
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _cards(summary: Summary) -> str:
    speculation = summary.speculation
    cache = summary.cache
    cards = [
        (f"{summary.runs:,}", "runs"),
        (f"{summary.wall.p50:,.0f} ms", f"wall p50 (sequential {summary.sequential.p50:,.0f})"),
        (f"{summary.wall.p95:,.0f} ms", f"wall p95 (sequential {summary.sequential.p95:,.0f})"),
        (f"{summary.saved_ms:,.0f} ms", f"saved per run ({_pct(summary.saved_pct)})"),
        (f"{summary.speedup:.2f}x", "speed-up vs sequential"),
        (_pct(speculation.right_rate), f"speculation right ({speculation.speculated} tries)"),
        (f"{speculation.saved_ms_mean:,.0f} ms", "head start when right"),
        (f"{speculation.wasted_ms:,.0f} ms", "step time wasted when wrong"),
        (f"${summary.wasted_cost:,.4f}", "dollars wasted"),
        (_pct(cache.hit_rate), f"cache hit rate ({cache.hits} hits)"),
        (f"{cache.saved_ms:,.0f} ms", f"saved by cache (${cache.saved_cost:,.4f})"),
        (str(summary.failed_steps), "failed steps"),
    ]
    return '<div class="cards">' + "".join(_card(v, escape(label)) for v, label in cards) + "</div>"


def _route_table(summary: Summary) -> str:
    head = ("route", "runs", "share", "wall p50", "wall p95", "seq p50", "seq p95", "saved",
            "saved %", "wasted", "wasted $")  # fmt: skip
    rows = []
    for route in summary.routes:
        cells = (
            escape(route.route), f"{route.runs:,}", _pct(route.share), f"{route.wall.p50:,.0f}",
            f"{route.wall.p95:,.0f}", f"{route.sequential.p50:,.0f}",
            f"{route.sequential.p95:,.0f}", f"{route.saved_ms:,.0f}", _pct(route.saved_pct),
            f"{route.wasted_ms:,.0f}", f"${route.wasted_cost:,.4f}",
        )  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    rows.append(
        '<tr class="total"><td>all</td>'
        f"<td>{summary.runs:,}</td><td>{_pct(1.0 if summary.runs else None)}</td>"
        f"<td>{summary.wall.p50:,.0f}</td><td>{summary.wall.p95:,.0f}</td>"
        f"<td>{summary.sequential.p50:,.0f}</td><td>{summary.sequential.p95:,.0f}</td>"
        f"<td>{summary.saved_ms:,.0f}</td><td>{_pct(summary.saved_pct)}</td>"
        f"<td>{summary.wasted_ms / max(1, summary.runs):,.0f}</td>"
        f"<td>${summary.wasted_cost / max(1, summary.runs):,.4f}</td></tr>"
    )
    header = "".join(f"<th>{name}</th>" for name in head)
    note = "<p class='sub'>Times in ms; saved and wasted are means per run.</p>"
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>{note}"


def _label_table(summary: Summary) -> str:
    head = ("configuration", "runs", "wall mean", "wall p95", "saved", "wasted", "wasted $",
            "speed-up")  # fmt: skip
    rows = []
    for label in summary.labels:
        cells = (
            escape(label.label), f"{label.runs:,}", f"{label.wall.mean:,.0f}",
            f"{label.wall.p95:,.0f}", f"{label.saved_ms:,.0f}", f"{label.wasted_ms:,.0f}",
            f"${label.wasted_cost:,.4f}", f"{label.speedup:.2f}x",
        )  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    header = "".join(f"<th>{name}</th>" for name in head)
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def _row(cells: Sequence[str]) -> str:
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def _prediction_table(summary: Summary) -> str:
    head = ("router", "decisions", "predicted", "by", "right", "wrong", "accuracy",
            "speculated", "wasted ms", "wasted $", "exact hits", "trusted hits",
            "verified hits", "confirmed", "denied", "denied wasted ms")  # fmt: skip
    rows = []
    for part in summary.predictions:
        cells = (
            escape(part.router), str(part.decisions), str(part.predicted),
            escape(", ".join(part.sources)) or "&ndash;", str(part.right), str(part.wrong),
            _pct(part.accuracy), str(part.speculated), f"{part.wasted_ms:,.0f}",
            f"${part.wasted_cost:,.4f}", str(part.exact_hits), str(part.trusted_hits),
            str(part.verified_hits), str(part.confirmed), str(part.denied),
            f"{part.denied_wasted_ms:,.0f}",
        )  # fmt: skip
        rows.append(_row(cells))
    header = "".join(f"<th>{name}</th>" for name in head)
    note = (
        "<p class='sub'>Speculated: branches started on a prediction; wasted: their steps "
        "in branches the router did not pick. Trusted hits were served unverified; verified "
        "hits only predicted the route, and the real router confirmed or denied them "
        "(denied: a wrong near match caught).</p>"
    )
    return f"<table class='predictions'><tr>{header}</tr>{''.join(rows)}</table>{note}"


def _plan(decision: RouterDecision) -> str:
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
        parts.append(escape(f"{label} ({depth}{why})"))
    declined = [
        escape(f"{label}: {reason.note or 'did not pay'}")
        for label, reason in decision.reasons.items()
        if label not in decision.plan
    ]
    text = "; ".join(parts) or "&ndash;"
    return text + (f" <span class='sub'>(not: {'; '.join(declined)})</span>" if declined else "")


def _decision_table(record: RunRecord) -> str:
    head = ("router", "branch", "predicted", "speculated (why)", "returned", "right", "cache")
    rows = []
    for decision in record.result.decisions:
        predicted = "&ndash;"
        prediction = decision.prediction
        if prediction is not None:
            odds = ", ".join(f"{label} {p:.0%}" for label, p in prediction.probabilities.items())
            predicted = escape(f"{odds or 'nothing'} by {prediction.source or '?'}")
        elif decision.note:
            predicted = escape(decision.note)
        right = {True: "yes", False: "no", None: "&ndash;"}[decision.right]
        cache = escape(decision.cache or "") or "&ndash;"
        if decision.similarity is not None:
            cache += f" ({decision.similarity:.3f})"
        returned = escape(decision.label) if decision.label is not None else "(cancelled)"
        if decision.wasted:
            returned += " (branch lost)"
        cells = (
            escape(decision.router), escape(decision.branch) or "&ndash;", predicted,
            _plan(decision), returned, right, cache,
        )  # fmt: skip
        rows.append(_row(cells))
    header = "".join(f"<th>{name}</th>" for name in head)
    return f"<table class='decisions'><tr>{header}</tr>{''.join(rows)}</table>"


def _legend() -> str:
    items = [
        f'<span><i class="swatch" style="background:{colour}"></i>{status.value}</span>'
        for status, colour in STATUS_COLOURS.items()
    ]
    items += [
        '<span><i class="swatch wasted"></i>wasted (branch lost)</span>',
        '<span><i class="swatch speculative"></i>speculative</span>',
        '<span><i class="swatch" style="background:#1f2933;width:2px"></i>route decided</span>',
        '<span><i class="swatch" style="background:#e45756;width:2px"></i>run ended</span>',
    ]
    return '<div class="legend">' + "".join(items) + "</div>"


def _runs_table(records: Sequence[RunRecord], chosen: RunRecord) -> str:
    head = ("#", "id", "time", "flow", "configuration", "route", "wall", "sequential", "wasted",
            "dollars", "cache hits")  # fmt: skip
    start = max(0, len(records) - MAX_RUN_ROWS)
    rows = []
    for number, record in enumerate(records[start:], start=start + 1):
        chosen_row = ' class="chosen"' if record is chosen else ""
        run = record.result
        cells = (
            str(number), escape(record.id[:8]), escape(record.time[:19]), escape(run.flow),
            escape(record.label), escape(run.route or "&ndash;"), f"{ms(run.wall_time):,.0f}",
            f"{ms(run.sequential_time):,.0f}", f"{ms(run.wasted_time):,.0f}",
            f"${run.usage.cost:,.4f}", str(run.cache_hits),
        )  # fmt: skip
        rows.append(f"<tr{chosen_row}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    header = "".join(f"<th>{name}</th>" for name in head)
    note = f"<p class='sub'>The last {MAX_RUN_ROWS} runs.</p>" if start else ""
    return f"{note}<table class='runs'><tr>{header}</tr>{''.join(rows)}</table>"


def render_html(
    summary: Summary,
    records: Sequence[RunRecord],
    *,
    run: RunRecord | None = None,
    problems: Sequence[LogProblem] = (),
    title: str = "specroute report",
) -> str:
    """The report as one self-contained HTML page.

    Args:
        summary: `summarize(records)`.
        records: The runs, in log order.
        run: The run whose timeline is shown (default: the slowest).
        problems: Unreadable log lines, listed at the end.
        title: The page's title (escaped), e.g. the log's path.

    Returns:
        The HTML text.
    """
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{escape(title)}</h1>",
        f"<p class='sub'>{summary.runs:,} runs of {escape(', '.join(summary.flows) or '&ndash;')}"
        + (
            f" &middot; {escape(_when(summary.first))} &ndash; {escape(_when(summary.last))}"
            if summary.first
            else ""
        )
        + "</p>",
        _cards(summary),
        f"<div class='roi {summary.roi.verdict.replace(' ', '-')}'><b>ROI.</b> "
        f"{escape(summary.roi.statement)}</div>",
    ]
    if records:
        chosen = run or pick_run(records)
        number = next(i for i, record in enumerate(records, start=1) if record is chosen)
        which = "the slowest run" if run is None else "the chosen run"
        shown = chosen.result
        parts += [
            f"<h2 id='timeline-title'>Timeline of run {number} ({which}): "
            f"{escape(shown.flow)}, {escape(chosen.label)}, route "
            f"{escape(shown.route or '&ndash;')}, {ms(shown.wall_time):,.0f} ms "
            f"(sequential {ms(shown.sequential_time):,.0f} ms, wasted "
            f"{ms(shown.wasted_time):,.0f} ms, ${shown.usage.cost:,.4f})</h2>",
            f"<div class='panel' id='timeline' data-run='{escape(chosen.id)}'>{_legend()}",
            timeline(chosen),
            "</div>",
        ]
        if shown.decisions:
            parts += [
                "<h2>Router decisions in this run</h2>",
                _decision_table(chosen),
            ]
        if summary.predictions:
            parts += [
                "<h2 id='predictions'>Predictions and verification</h2>",
                _prediction_table(summary),
            ]
        parts += [
            "<h2>Runs by route</h2>",
            _route_table(summary),
            "<h2>Latency by route (each dot a run; black p50, red p95, grey dashed "
            "sequential p50)</h2>",
            f"<div class='panel'>{latency_chart(summary.routes, records)}</div>",
            "<h2>Waste over time (orange: step time wasted per run; red: dollars wasted, "
            "cumulative)</h2>",
            f"<div class='panel'>{waste_chart(records)}</div>",
            "<h2>Runs by configuration</h2>",
            _label_table(summary),
            "<h2>Runs</h2>",
            _runs_table(records, chosen),
        ]
    if problems:
        items = "".join(f"<li>{escape(str(problem))}</li>" for problem in problems)
        parts.append(f"<h2>Unreadable log lines</h2><ul class='problems'>{items}</ul>")
    parts.append(
        "<footer>Written by specroute. Saved time is measured against each run's own "
        "sequential baseline (its useful steps' durations added up).</footer>"
    )
    parts.append("</main></body></html>")
    return "".join(parts)
