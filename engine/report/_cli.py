"""The `specroute` command line: `run` a flow, `report` on a run log, `bench` the scenarios.

    specroute run examples/planner.py:planner --input user_input="generate changelog" \\
        --mode speculative --log runs.jsonl
    specroute report runs.jsonl                       # rich tables
    specroute report runs.jsonl --html report.html    # one self-contained page
    specroute report runs.jsonl --json                # the summary for machines
    specroute bench speculation                       # bench/speculation.py
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
import trio.testing
from rich.console import Console
from rich.table import Table
from specroute.routes import SpecrouteError

from .._flow import Flow
from .._mode import Mode
from ._errors import RunLogError
from ._html import pick_run, render_html
from ._log import RunLog, read_log
from ._progress import RunProgress
from ._schema import ms, run_to_json
from ._summary import summarize
from ._terminal import print_summary

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._trace import RunResult
    from ._schema import RunRecord

__all__ = ["main"]


def load_flow(target: str) -> Flow:
    """The flow named by `MODULE:NAME`, MODULE a dotted module or a path to a .py file."""
    module_name, sep, attribute = target.rpartition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"`flow` must look like MODULE:NAME, got {target!r}")
    if module_name.endswith(".py") or "/" in module_name:
        path = Path(module_name)
        if not path.is_file():
            raise ValueError(f"`flow`: no file {str(path)!r}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ValueError(f"`flow`: cannot import {str(path)!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    flow = getattr(module, attribute, None)
    if not isinstance(flow, Flow):
        raise ValueError(f"`flow`: {module_name} has no Flow named {attribute!r}")
    return flow


def parse_inputs(pairs: Sequence[str], json_pairs: Sequence[str]) -> dict[str, Any]:
    """`k=v` pairs as strings, and `k=JSON` pairs decoded."""
    inputs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"`--input` must look like NAME=VALUE, got {pair!r}")
        inputs[key] = value
    for pair in json_pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"`--input-json` must look like NAME=JSON, got {pair!r}")
        try:
            inputs[key] = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"`--input-json` {key}: not JSON ({exc.msg}), got {value!r}") from None
    return inputs


def _run(args: argparse.Namespace) -> int:
    flow = load_flow(args.flow)
    inputs = parse_inputs(args.input, args.input_json)

    async def go() -> RunResult:
        if args.no_progress:
            return await flow.run(inputs, mode=args.mode)
        with RunProgress() as progress:
            return await flow.run(inputs, mode=args.mode, observer=progress)

    clock = trio.testing.MockClock(autojump_threshold=0) if args.clock == "virtual" else None
    try:
        result = trio.run(go, clock=clock)
    except SpecrouteError as exc:
        Console(stderr=True).print(f"[bold red]run failed:[/] {exc}")
        return 1
    if args.log:
        run_id = RunLog(args.log).append(
            result, inputs=inputs, record_inputs=args.record_inputs, label=args.label
        )
        Console(stderr=True).print(f"logged run {run_id} to {args.log}")
    if args.json:
        print(json.dumps(run_to_json(result), indent=2))
    else:
        Console().print(
            f"{result.flow}: route {result.route or '-'}, wall {result.wall_time * 1000:,.0f} ms"
            f" (sequential {result.sequential_time * 1000:,.0f} ms), wasted "
            f"{result.wasted_time * 1000:,.0f} ms, ${result.usage.cost:.4f}"
        )
    return 0


def _steps_table(record: RunRecord, number: int) -> Table:
    run = record.result
    table = Table(title=f"Run {number} ({record.id[:8]}): {record.label}, route {run.route}")
    for name in ("step", "branch", "status", "start ms", "end ms", "speculative", "wasted", "$"):
        table.add_column(name, justify="right" if "ms" in name or name == "$" else "left")
    for entry in sorted(run.trace, key=lambda e: (e.start, e.end)):
        table.add_row(
            entry.step, entry.branch or "-", entry.status.value,
            f"{ms(entry.start - run.started):,.0f}", f"{ms(entry.end - run.started):,.0f}",
            "yes" if entry.speculative else "", "yes" if entry.wasted else "",
            f"{entry.cost:.4f}" if entry.usage else "",
        )  # fmt: skip
    return table


def _report(args: argparse.Namespace) -> int:
    try:
        reading = read_log(args.log, strict=args.strict)
    except (OSError, RunLogError) as exc:
        Console(stderr=True).print(f"[bold red]cannot read the log:[/] {exc}")
        return 2
    records = reading.records
    summary = summarize(records)
    chosen = pick_run(records, args.run) if args.run is not None or args.html else None
    if args.html:
        page = render_html(
            summary,
            records,
            run=chosen if args.run is not None else None,
            problems=reading.problems,
            title=f"specroute report: {args.log}",
        )
        Path(args.html).parent.mkdir(parents=True, exist_ok=True)
        Path(args.html).write_text(page, encoding="utf-8")
        Console(stderr=True).print(f"HTML report written to {Path(args.html).resolve()}")
    if args.json:
        data = {
            "log": str(args.log),
            "summary": summary.to_dict(),
            "problems": [{"line": p.line, "reason": p.reason} for p in reading.problems],
        }
        print(json.dumps(data, indent=2))
    elif not args.html:
        console = Console()
        print_summary(summary, reading.problems, console=console)
        if args.run is not None and chosen is not None:
            console.print(_steps_table(chosen, records.index(chosen) + 1))
    return 0


def _bench(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    scripts = sorted(path for path in folder.glob("*.py") if not path.name.startswith("_"))
    if args.name:
        scripts = [path for path in scripts if path.stem == args.name]
        if not scripts:
            known = ", ".join(path.stem for path in sorted(folder.glob("*.py"))) or "none"
            Console(stderr=True).print(f"no scenario {args.name!r} in {folder} (known: {known})")
            return 2
    failed = 0
    for script in scripts:
        Console(stderr=True).rule(f"{script}")
        done = subprocess.run([sys.executable, str(script), *args.extra], check=False)
        failed += done.returncode != 0
    return 1 if failed else 0


def parser() -> argparse.ArgumentParser:
    """The argument parser of the `specroute` command."""
    top = argparse.ArgumentParser(prog="specroute", description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a flow, with a live progress display")
    run.add_argument("flow", help="MODULE:NAME (MODULE dotted or a path to a .py file)")
    run.add_argument("--input", action="append", default=[], metavar="NAME=VALUE")
    run.add_argument("--input-json", action="append", default=[], metavar="NAME=JSON")
    run.add_argument("--mode", choices=[mode.value for mode in Mode], default="speculative")
    run.add_argument("--clock", choices=["real", "virtual"], default="real")
    run.add_argument("--log", help="append the run to this run log (JSON Lines)")
    run.add_argument("--label", help="name this configuration in the log (default: the mode)")
    run.add_argument("--record-inputs", action="store_true", help="log raw inputs, not a digest")
    run.add_argument("--json", action="store_true", help="print the run as JSON")
    run.add_argument("--no-progress", action="store_true", help="no live display")
    run.set_defaults(handler=_run)

    report = commands.add_parser("report", help="summarize a run log")
    report.add_argument("log", help="the run log (JSON Lines)")
    report.add_argument("--html", metavar="OUT", help="write a self-contained HTML report")
    report.add_argument("--json", action="store_true", help="print the summary as JSON")
    report.add_argument("--run", metavar="N", help="the run to show: position (1-based) or id")
    report.add_argument("--strict", action="store_true", help="fail on the first bad line")
    report.set_defaults(handler=_report)

    bench = commands.add_parser("bench", help="run bench/ scenarios and print their tables")
    bench.add_argument("name", nargs="?", help="one scenario (a file name without .py)")
    bench.add_argument("--dir", default="bench", help="the scenarios' folder (bench)")
    bench.add_argument("extra", nargs=argparse.REMAINDER, help="arguments for the scenario")
    bench.set_defaults(handler=_bench)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `specroute` command.

    Args:
        argv: The arguments (default: `sys.argv[1:]`).

    Returns:
        The exit status: 0 done, 1 a run or benchmark failed, 2 bad arguments or log.
    """
    top = parser()
    args = top.parse_args(argv)
    try:
        return int(args.handler(args))
    except ValueError as exc:
        top.error(str(exc))
    return 2  # pragma: no cover - `error` exits


if __name__ == "__main__":
    sys.exit(main())
