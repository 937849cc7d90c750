"""The summary as rich tables, for `specroute report LOG` in a terminal.

Rich reads a plain `str` cell as console markup, so a route labelled `[/]` would crash the
report and one labelled `[link=...]` would print a link. Every piece of user text (flow,
route, configuration and router names, predictors' sources, log problems) goes in through
`user_text`: a `Text`, which rich shows as it is, with control characters (a raw escape
sequence would still make a link or move the cursor) and bidi controls shown as `\x1b`-style
escapes. Only this module's own strings are markup.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.console import RenderableType

    from ._log import LogProblem
    from ._summary import Summary

__all__ = ["print_summary", "summary_tables", "user_text"]

# C0 and C1 controls, and the bidi embedding, override and isolate controls.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: str) -> str:
    """`value` with control and bidi characters written as escapes (`"\\x1b"`)."""
    return _CONTROLS.sub(_escaped, value)


def user_text(value: str, style: str = "") -> Text:
    """User text for the terminal: never markup, control characters shown as escapes.

    Args:
        value: A name, label, error or any other text from a user or a log.
        style: A rich style for all of it.

    Returns:
        A `Text` that shows `value` as typed (`"\\x1b"` for an escape character).
    """
    return Text(visible(value), style=style)


def _ms(value: float) -> str:
    return f"{value:,.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _dollars(value: float, unpriced: int = 0) -> str:
    # Calls to a model outside the price table cost an unknown amount: never "$0".
    if not unpriced:
        return f"${value:,.4f}"
    return f"${value:,.4f} + {unpriced} unpriced calls" if value else "unpriced"


def _routes(summary: Summary) -> Table:
    table = Table(title="Runs by route: wall time against the sequential baseline (ms)")
    for name in ("route", "runs", "share", "p50", "p95", "seq p50", "seq p95", "saved", "saved %"):
        table.add_column(name, justify="left" if name == "route" else "right", no_wrap=True)
    rows = [(route.route, route) for route in summary.routes]
    for name, part in rows:
        table.add_row(
            user_text(name), str(part.runs), _pct(part.share), _ms(part.wall.p50),
            _ms(part.wall.p95),
            _ms(part.sequential.p50), _ms(part.sequential.p95), _ms(part.saved_ms),
            _pct(part.saved_pct),
        )  # fmt: skip
    table.add_section()
    table.add_row(
        "all", str(summary.runs), _pct(1.0 if summary.runs else None), _ms(summary.wall.p50),
        _ms(summary.wall.p95), _ms(summary.sequential.p50), _ms(summary.sequential.p95),
        _ms(summary.saved_ms), _pct(summary.saved_pct), style="bold",
    )  # fmt: skip
    return table


def _labels(summary: Summary) -> Table:
    table = Table(title="Runs by configuration (mean per run)")
    for name in ("config", "runs", "wall ms", "p95 ms", "saved ms", "wasted ms", "wasted $",
                 "speed-up"):  # fmt: skip
        table.add_column(name, justify="left" if name == "config" else "right", no_wrap=True)
    for label in summary.labels:
        table.add_row(
            user_text(label.label), str(label.runs), _ms(label.wall.mean), _ms(label.wall.p95),
            _ms(label.saved_ms), _ms(label.wasted_ms),
            _dollars(label.wasted_cost, label.wasted_unpriced_calls),
            f"{label.speedup:.2f}x",
        )  # fmt: skip
    return table


def _figures(summary: Summary) -> Table:
    speculation = summary.speculation
    cache = summary.cache
    table = Table(title="Speculation and cache", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("speculated branches", f"{speculation.speculated} in {speculation.runs} runs"),
        ("right (router picked the speculated branch)",
         f"{speculation.right} ({_pct(speculation.right_rate)})"),
        ("latency saved when right (head start)",
         f"{_ms(speculation.saved_ms_mean)} ms mean, {_ms(speculation.saved_ms)} ms total"),
        ("wrong", str(speculation.wrong)),
        ("step time wasted when wrong", f"{_ms(speculation.wasted_ms)} ms"),
        ("dollars wasted when wrong",
         _dollars(speculation.wasted_cost, summary.wasted_unpriced_calls)),
        ("cache hits / lookups", f"{cache.hits} / {cache.hits + cache.misses}"
         f" ({_pct(cache.hit_rate)})"),
        ("latency saved by the cache", f"{_ms(cache.saved_ms)} ms"),
        ("cache evictions, exact / semantic",
         f"{cache.exact_evictions} / {cache.semantic_evictions}"),
        ("dollars saved by the cache (estimated)", _dollars(cache.saved_cost)
         + (f" ({cache.unpriced_hits} hits unpriced)" if cache.unpriced_hits else "")),
        ("LLM dollars, all runs", _dollars(summary.cost, summary.unpriced_calls)),
        ("failed steps", str(summary.failed_steps)),
    ]  # fmt: skip
    for name, value in rows:
        table.add_row(name, value)
    return table


def _predictions(summary: Summary) -> Table:
    table = Table(title="Predictions and verification")
    table.add_column("router")
    for part in summary.predictions:
        table.add_column(user_text(part.router), justify="right")
    rows: list[tuple[str, list[str | Text]]] = [
        ("decisions", [str(p.decisions) for p in summary.predictions]),
        ("predicted (by)", [user_text(f"{p.predicted} ({', '.join(p.sources) or '-'})")
                            for p in summary.predictions]),
        ("right / wrong (accuracy)", [f"{p.right} / {p.wrong} ({_pct(p.accuracy)})"
                                      for p in summary.predictions]),
        ("branches speculated on a prediction", [str(p.speculated) for p in summary.predictions]),
        ("  wasted in those that lost", [f"{_ms(p.wasted_ms)} ms, {_dollars(p.wasted_cost)}"
                                         for p in summary.predictions]),
        ("exact cache hits (route served)", [str(p.exact_hits) for p in summary.predictions]),
        ("semantic hits served unverified (trust)", [str(p.trusted_hits)
                                                     for p in summary.predictions]),
        ("semantic hits verified", [str(p.verified_hits) for p in summary.predictions]),
        ("  confirmed (router agreed)", [str(p.confirmed) for p in summary.predictions]),
        ("  denied (wrong near matches caught)", [f"{p.denied} ({_ms(p.denied_wasted_ms)} ms"
                                                  " wasted)" for p in summary.predictions]),
    ]  # fmt: skip
    for name, values in rows:
        table.add_row(name, *values)
    return table


def _value_predictions(summary: Summary) -> Table:
    table = Table(title="Predicted values (semantic near matches on steps)")
    for column in (
        "step",
        "near matches",
        "speculated",
        "confirmed / refuted",
        "confirm rate",
        "wasted downstream",
    ):
        table.add_column(column, justify="left" if column == "step" else "right")
    for part in summary.value_predictions:
        table.add_row(
            user_text(part.step),
            str(part.near_matches),
            str(part.speculated),
            f"{part.confirmed} / {part.refuted}",
            _pct(part.confirm_rate),
            f"{_ms(part.wasted_ms)} ms, {_dollars(part.wasted_cost)}",
        )
    return table  # fmt: skip


def _hedging(summary: Summary) -> Table:
    table = Table(title="Hedged LLM calls and failover, per step")
    for name in ("step", "requests", "hedges", "won", "saved ms", "hedge $", "failed over"):
        table.add_column(name, justify="left" if name == "step" else "right", no_wrap=True)
    for part in summary.hedging:
        table.add_row(
            user_text(part.step), str(part.calls), str(part.hedges_started),
            f"{part.hedges_won} ({_pct(part.win_rate)})", _ms(part.saved_ms),
            _dollars(part.cost), str(part.failed_over),
        )  # fmt: skip
    return table


def summary_tables(summary: Summary, problems: Sequence[LogProblem] = ()) -> RenderableType:
    """The report for a terminal: routes, configurations, speculation and cache, ROI.

    Predictions and verification get a table of their own when the log records router
    decisions.

    Args:
        summary: From `summarize`.
        problems: Unreadable log lines, listed under the tables.

    Returns:
        A rich renderable.
    """
    flows = ", ".join(summary.flows) or "-"
    title = user_text(f"{summary.runs} runs of {flows}", style="bold")
    if summary.first is not None:
        title.append_text(user_text(f"  ({summary.first} .. {summary.last})", style="dim"))
    parts: list[RenderableType] = [title, _routes(summary), _labels(summary), _figures(summary)]
    if summary.predictions:
        parts.append(_predictions(summary))
    if summary.value_predictions:
        parts.append(_value_predictions(summary))
    if summary.hedging:
        parts.append(_hedging(summary))
    colour = {"pays": "green", "costs": "yellow"}.get(summary.roi.verdict, "red")
    parts.append(Text("ROI: ", style="bold") + user_text(summary.roi.statement, style=colour))
    if problems:
        parts.append(Text(f"{len(problems)} log lines could not be read:", style="bold red"))
        parts.extend(user_text(f"  {problem}", style="red") for problem in problems)
    return Group(*parts)


def print_summary(
    summary: Summary, problems: Sequence[LogProblem] = (), *, console: Console | None = None
) -> None:
    """Print `summary_tables(summary, problems)`.

    Args:
        summary: From `summarize`.
        problems: Unreadable log lines.
        console: Where to print (default: a new stdout console).
    """
    (console or Console()).print(summary_tables(summary, problems))
