"""Inline SVG charts for the HTML report: a run's timeline, latency per route, waste per run.

Each function returns one `<svg>` element as `markupsafe.Markup`, ready for the page's
autoescaped template; every piece of user text in it (step, branch, route names, errors)
goes through `text()`: escaped, and wrapped in Unicode isolates (FSI ... PDI, SVG having no
`<bdi>`) so a name holding U+202E cannot turn the rest of the chart around. Times are drawn
in ms from each run's start, so a live `RunResult` and one read from a log draw alike.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from markupsafe import Markup, escape

from .._trace import StepStatus
from ._schema import ms

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._trace import RunResult, TraceEntry
    from ._schema import RunRecord
    from ._summarize import RunFigures
    from ._summary import RouteSummary

__all__ = [
    "STATUS_COLOURS",
    "isolated",
    "latency_chart",
    "nice_ticks",
    "text",
    "timeline",
    "waste_chart",
    "waste_note",
]

STATUS_COLOURS = {
    StepStatus.OK: "#4c78a8",
    StepStatus.CACHED: "#54a24b",
    StepStatus.CANCELLED: "#f58518",
    StepStatus.FAILED: "#e45756",
    StepStatus.SKIPPED: "#c9c3bf",
    StepStatus.RECOVERED: "#b279a2",
}
BRANCH_COLOURS = ("#5f6b7a", "#7b61ff", "#00a3a3", "#d4a000", "#e0529c", "#2f9e44", "#8c564b")
WIDTH = 1160
LABEL_WIDTH = 230
ROW = 22
MAX_BUCKETS = 120
_ISOLATE_CONTROLS = re.compile("[\u2066-\u2069]")


def isolated(value: str) -> str:
    """`value` between FSI and PDI, its own isolate controls dropped.

    A PDI in the value would otherwise close the isolate early and let an override after it
    run on; overrides and embeddings inside are closed by the final PDI (Unicode bidi
    algorithm, UAX #9, rule X6a).
    """
    return "\u2068" + _ISOLATE_CONTROLS.sub("", value) + "\u2069"


def text(value: str) -> str:
    """User text for SVG: escaped, and `isolated` so its direction stays inside."""
    return str(escape(isolated(value)))


def nice_ticks(top: float, count: int = 8) -> list[float]:
    """Round tick values from 0 to at least `top` (1, 2 or 5 times a power of ten apart)."""
    if not 0 < top < math.inf:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def _fmt_ms(value: float) -> str:
    return f"{value / 1000:g} s" if value >= 10_000 else f"{value:g} ms"


def _axis(x0: float, width: float, top: float, y: float, height: float) -> list[str]:
    ticks = nice_ticks(top)
    span = ticks[-1] or 1.0
    out = []
    for tick in ticks:
        x = x0 + tick / span * width
        out.append(
            f'<line class="grid" x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" y2="{y + height:.1f}"/>'
            f'<text class="tick" x="{x:.1f}" y="{y - 6:.1f}" text-anchor="middle">'
            f"{_fmt_ms(tick)}</text>"
        )
    return out


def _rows(run: RunResult) -> list[tuple[str, list[TraceEntry]]]:
    groups: dict[str, list[TraceEntry]] = {"": []}
    for entry in sorted(run.trace, key=lambda e: (e.start, e.end)):
        groups.setdefault(entry.branch, []).append(entry)
    return [(branch, entries) for branch, entries in groups.items() if entries]


def _bar(
    entry: TraceEntry, zero: float, x: float, y: float, width: float, colour: str, hatch: str
) -> str:
    status = entry.status.value
    classes = f"bar status-{status}" + (" wasted" if entry.wasted else "")
    classes += " speculative" if entry.speculative else ""
    tip = (
        f"{entry.step} [{entry.branch or 'top'}] {status}"
        f"{' wasted' if entry.wasted else ''}{' speculative' if entry.speculative else ''}: "
        f"{ms(entry.start - zero):g}-{ms(entry.end - zero):g} ms ({ms(entry.duration):g} ms)"
    )
    if entry.usage is not None:
        tip += f", {entry.usage.calls} LLM calls, ${entry.usage.cost:.4f}"
    if entry.items is not None:
        first = "" if entry.first_item is None else f", first at {ms(entry.first_item - zero):g} ms"
        tip += f", streamed {entry.items} items{first}"
    if entry.error:
        tip += f", {entry.error}"
    fill = "none" if entry.status is StepStatus.SKIPPED else STATUS_COLOURS[entry.status]
    bar = (
        f'<rect class="{classes}" data-step="{escape(entry.step)}" data-status="{status}" '
        f'data-branch="{escape(entry.branch)}" data-wasted="{str(entry.wasted).lower()}" '
        f'data-speculative="{str(entry.speculative).lower()}" x="{x:.1f}" y="{y:.1f}" '
        f'width="{width:.1f}" height="{ROW - 6}" rx="3" fill="{fill}" stroke="{colour}">'
        f"<title>{text(tip)}</title></rect>"
    )
    if entry.wasted:
        bar += (
            f'<rect class="hatch" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
            f'height="{ROW - 6}" rx="3" fill="url(#{hatch})" pointer-events="none"/>'
        )
    return bar


def timeline(record: RunRecord, *, key: str = "") -> str:
    """A Gantt chart of one run: a row and a bar per step execution, grouped by branch.

    `key` tells apart several timelines on one page (their hatch patterns' ids).

    Bars are `<rect class="bar">` elements carrying `data-step`, `data-status`,
    `data-branch`, `data-wasted` and `data-speculative`; wasted bars are hatched,
    speculative ones outlined with dashes, and each router's decision is a vertical line.
    """
    run = record.result
    zero = run.started
    rows = _rows(run)
    hatch = f"hatch{key}"
    top = max([ms(run.wall_time), *(ms(entry.end - zero) for entry in run.trace)]) or 1.0
    span = nice_ticks(top)[-1] or 1.0
    plot = WIDTH - LABEL_WIDTH - 40
    header = 34
    height = header + ROW * sum(len(entries) + 1 for _, entries in rows) + 10
    scale = plot / span
    parts = [
        f'<svg class="timeline" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg" role="img">',
        f'<defs><pattern id="{hatch}" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" '
        'stroke="#fff" stroke-width="2.5" stroke-opacity="0.75"/></pattern></defs>',
        *_axis(LABEL_WIDTH, plot, span, header, height - header - 4),
    ]
    y = float(header)
    for index, (branch, entries) in enumerate(rows):
        colour = BRANCH_COLOURS[index % len(BRANCH_COLOURS)]
        name = branch or "top level"
        parts.append(
            f'<g class="branch" data-branch="{escape(branch)}">'
            f'<rect class="band" x="0" y="{y:.1f}" width="{WIDTH}" height="{ROW}"/>'
            f'<rect x="4" y="{y + 5:.1f}" width="10" height="10" rx="2" fill="{colour}"/>'
            f'<text class="branch-name" x="20" y="{y + 15:.1f}">{text(name)}</text></g>'
        )
        y += ROW
        for entry in entries:
            duration = ms(entry.duration)
            x = LABEL_WIDTH + ms(entry.start - zero) * scale
            width = max(duration * scale, 3.0)
            parts.append(
                f'<rect x="8" y="{y + 3:.1f}" width="4" height="{ROW - 6}" fill="{colour}"/>'
                f'<text class="step-name" x="20" y="{y + 15:.1f}">{text(entry.step)}</text>'
            )
            parts.append(_bar(entry, zero, x, y + 3, width, colour, hatch))
            if entry.first_item is not None:
                # A streamed step: its readers may start here, before the bar ends.
                first = LABEL_WIDTH + ms(entry.first_item - zero) * scale
                parts.append(
                    f'<line class="first-item" data-step="{escape(entry.step)}" '
                    f'x1="{first:.1f}" x2="{first:.1f}" y1="{y + 1:.1f}" y2="{y + ROW - 1:.1f}" '
                    f'stroke="#111" stroke-width="2"><title>{text(entry.step)}: first of '
                    f"{entry.items} items at {ms(entry.first_item - zero):g} ms</title></line>"
                )
            if entry.status is StepStatus.SKIPPED:
                parts.append(f'<text class="tick" x="{x + 8:.1f}" y="{y + 15:.1f}">skipped</text>')
            elif duration * scale > 46:
                parts.append(
                    f'<text class="bar-label" x="{x + 5:.1f}" y="{y + 15:.1f}">'
                    f"{duration:g} ms</text>"
                )
            else:
                # Too short for a label inside (a 0 ms step is a 3 px mark): label it beside.
                parts.append(
                    f'<text class="tick short-label" x="{x + width + 4:.1f}" '
                    f'y="{y + 15:.1f}">{duration:g} ms</text>'
                )
            y += ROW
    for taken in run.routes:
        x = LABEL_WIDTH + ms(taken.at - zero) * scale
        parts.append(
            f'<line class="decision" x1="{x:.1f}" y1="{header - 2}" x2="{x:.1f}" '
            f'y2="{height - 4}"/><text class="decision-label" x="{x + 4:.1f}" '
            f'y="{header + 12}">{text(taken.router)} \u2192 {text(taken.label)}</text>'
        )
    end = LABEL_WIDTH + ms(run.wall_time) * scale
    parts.append(
        f'<line class="wall" x1="{end:.1f}" y1="{header - 2}" x2="{end:.1f}" y2="{height - 4}"/>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def latency_chart(routes: Sequence[RouteSummary], runs: Sequence[RunFigures]) -> str:
    """Each route's wall times as dots, with its p50, p95 and sequential p50 marked."""
    walls = [run.wall_ms for run in runs]
    top = max([1.0, *walls, *(r.sequential.p50 for r in routes)])
    span = nice_ticks(top)[-1]
    label_width = 160
    plot = WIDTH - label_width - 40
    row = 46
    header = 30
    height = header + row * max(1, len(routes)) + 10
    parts = [
        f'<svg class="latency" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg" role="img">',
        *_axis(label_width, plot, span, header, height - header - 6),
    ]
    for index, route in enumerate(routes):
        y = header + row * index + row / 2
        walls = [run.wall_ms for run in runs if run.route == route.route]
        parts.append(
            f'<text class="step-name" x="8" y="{y + 4:.1f}">{text(route.route)}</text>'
            f'<text class="tick" x="8" y="{y + 17:.1f}">{route.runs} runs</text>'
        )
        for number, wall in enumerate(walls):
            jitter = ((number * 7919) % 21 - 10) * 1.3
            parts.append(
                f'<circle class="dot" cx="{label_width + wall / span * plot:.1f}" '
                f'cy="{y + jitter:.1f}" r="3.5"/>'
            )
        for name, value, css in (
            ("p50", route.wall.p50, "p50"),
            ("p95", route.wall.p95, "p95"),
            ("seq p50", route.sequential.p50, "seq"),
        ):
            x = label_width + value / span * plot
            parts.append(
                f'<line class="mark {css}" x1="{x:.1f}" y1="{y - 17:.1f}" x2="{x:.1f}" '
                f'y2="{y + 17:.1f}"><title>{name}: {value:,.0f} ms</title></line>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def _buckets(count: int) -> int:
    return max(1, math.ceil(count / MAX_BUCKETS))


def waste_note(count: int) -> str:
    """What the waste chart adds up per bar for `count` runs ("" when a bar is one run)."""
    size = _buckets(count)
    if size == 1:
        return ""
    return (
        f"{count:,} runs are more than {MAX_BUCKETS} bars: each bar adds up the step time "
        f"wasted in {size:,} consecutive runs (the last bar may hold fewer), and the dollar "
        "line is cumulative at the end of each bar."
    )


def waste_chart(runs: Sequence[RunFigures]) -> str:
    """Wasted step time per run as bars (runs in log order, bucketed when there are many,
    see `waste_note`), and cumulative wasted dollars as a line on a dollar axis."""
    size = _buckets(len(runs))
    buckets = [runs[i : i + size] for i in range(0, len(runs), size)]
    wasted = [sum(run.wasted_ms for run in bucket) for bucket in buckets]
    dollars: list[float] = []
    total = 0.0
    for bucket in buckets:
        total += sum(run.wasted_cost for run in bucket)
        dollars.append(total)
    unpriced = sum(run.wasted_unpriced_calls for run in runs)
    left, header, plot_h = 70, 30, 180
    plot = WIDTH - left - 90
    height = header + plot_h + 34
    span = nice_ticks(max([1.0, *wasted]), 4)[-1]
    dollar_ticks = nice_ticks(total, 4) if total > 0 else [0.0]
    dollar_span = dollar_ticks[-1] or 1.0
    parts = [
        f'<svg class="waste" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg" role="img">'
    ]
    for tick in nice_ticks(span, 4):
        y = header + plot_h - tick / span * plot_h
        parts.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + plot}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_fmt_ms(tick)}</text>"
        )
    # The dollar axis, on the right, for the cumulative line.
    for tick in dollar_ticks:
        y = header + plot_h - tick / dollar_span * plot_h
        parts.append(
            f'<text class="tick dollar-tick" x="{left + plot + 6}" y="{y + 4:.1f}">'
            f"${tick:.4g}</text>"
        )
    width = plot / max(1, len(buckets))
    for index, value in enumerate(wasted):
        h = value / span * plot_h
        x = left + index * width
        first = index * size + 1
        which = f"run {first}" if size == 1 else f"runs {first}-{first + len(buckets[index]) - 1}"
        parts.append(
            f'<rect class="waste-bar" x="{x + width * 0.1:.1f}" y="{header + plot_h - h:.1f}" '
            f'width="{max(width * 0.8, 1):.1f}" height="{h:.1f}"><title>{which}: '
            f"{value:,.0f} ms wasted, ${dollars[index]:.4f} wasted so far</title></rect>"
        )
    if total > 0:
        points = " ".join(
            f"{left + (i + 0.5) * width:.1f},{header + plot_h - d / dollar_span * plot_h:.1f}"
            for i, d in enumerate(dollars)
        )
        parts.append(f'<polyline class="dollars" points="{points}"/>')
    label = f"${total:.4f} total" if not unpriced else f"${total:.4f} + {unpriced} unpriced calls"
    if unpriced and not total:
        label = f"unpriced ({unpriced} wasted calls)"
    parts.append(
        f'<text class="tick dollars-label" x="{left + plot + 6}" y="{header - 12}">{label}</text>'
    )
    parts.append(
        f'<text class="tick" x="{left}" y="{height - 8}">run 1</text>'
        f'<text class="tick" x="{left + plot}" y="{height - 8}" text-anchor="end">'
        f"run {len(runs)}</text></svg>"
    )
    return Markup("".join(parts))
