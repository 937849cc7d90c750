"""The `specroute` command line: `run` a flow, `report` on a run log, `bench` the scenarios.

    specroute run examples/planner.py:planner --input user_input="generate changelog" \\
        --mode speculative --log runs.jsonl
    specroute report runs.jsonl                       # rich tables
    specroute report runs.jsonl --html report.html    # one self-contained page
    specroute report runs.jsonl --json                # the summary for machines
    specroute bench speculation                       # bench/speculation.py (a checkout)

Every failure is one line on stderr, `specroute: error: ...`, with exit status 2 for bad
arguments (and an unreadable log) and 1 for a failed run, benchmark or output.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import trio
import trio.testing
from rich.console import Console
from rich.table import Table
from specroute.routes import SpecrouteError

from .._flow import Flow
from .._mode import Mode
from ._errors import RunLogError
from ._html import render_report
from ._log import RunLog
from ._progress import RunProgress
from ._report import read_report
from ._schema import ms, run_to_json
from ._summary import finite
from ._terminal import print_summary, user_text, visible

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._trace import RunResult
    from ._schema import RunRecord

__all__ = ["main"]


class UsageError(ValueError):
    """Bad arguments: `main` prints one line and exits 2."""


class FailedError(Exception):
    """A run, a benchmark or an output failed: `main` prints one line and exits 1."""


class _Parser(argparse.ArgumentParser):
    # argparse prints its usage before the error; a command-line failure is one line.
    def error(self, message: str) -> NoReturn:
        _fail(f"{message} (see `{self.prog} --help`)", 2)


def _one_line(text: str) -> str:
    # An error may quote user text: one line, and no escape sequence reaches the terminal.
    return visible(" ".join(str(text).split()))


def _say(message: str) -> None:
    sys.stderr.write(f"specroute: error: {_one_line(message)}\n")


def _fail(message: str, status: int) -> NoReturn:
    _say(message)
    sys.exit(status)


def load_flow(target: str) -> Flow:
    """The flow named by `MODULE:NAME`, MODULE a dotted module or a path to a .py file."""
    module_name, sep, attribute = target.rpartition(":")
    if not sep or not module_name or not attribute:
        raise UsageError(f"`flow` must look like MODULE:NAME, got {target!r}")
    try:
        if module_name.endswith(".py") or "/" in module_name:
            path = Path(module_name)
            if not path.is_file():
                raise UsageError(f"`flow`: no file {str(path)!r}")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None:
                raise UsageError(f"`flow`: cannot import {str(path)!r}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except UsageError:
        raise
    except ModuleNotFoundError as exc:
        raise UsageError(
            f"`flow`: no module {exc.name or module_name!r}; give a dotted module on the "
            "Python path or a path to a .py file"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed to import: say how
        raise UsageError(
            f"`flow`: importing {module_name} failed: {type(exc).__name__}: {exc}"
        ) from None
    flow = getattr(module, attribute, None)
    if not isinstance(flow, Flow):
        raise UsageError(f"`flow`: {module_name} has no Flow named {attribute!r}")
    return flow


def parse_inputs(pairs: Sequence[str], json_pairs: Sequence[str]) -> dict[str, Any]:
    """`k=v` pairs as strings, and `k=JSON` pairs decoded; a name given twice is refused."""
    inputs: dict[str, Any] = {}

    def put(flag: str, key: str, value: Any) -> None:
        if key in inputs:
            raise UsageError(f"`{flag}`: input {key!r} is given twice; give each input once")
        inputs[key] = value

    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"`--input` must look like NAME=VALUE, got {pair!r}")
        put("--input", key, value)
    for pair in json_pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"`--input-json` must look like NAME=JSON, got {pair!r}")
        try:
            decoded = json.loads(value, parse_constant=_no_constant)
        except ValueError as exc:
            raise UsageError(f"`--input-json` {key}: not JSON ({exc}), got {value!r}") from None
        put("--input-json", key, decoded)
    return inputs


def _no_constant(text: str) -> float:
    raise ValueError(f"{text} is not a JSON number")


def strict_json(data: Any) -> str:
    """`data` as strict JSON text (non-finite numbers as null), indented."""
    return json.dumps(finite(data), indent=2, allow_nan=False, ensure_ascii=False)


def _writable(flag: str, path: Path) -> None:
    """Refuse, before any work, an output path that cannot be written."""
    if path.is_dir():
        raise UsageError(f"`{flag}`: {str(path)!r} is a folder; give a file path")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"`{flag}`: cannot write {str(path)!r}: {str(folder)!r} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"`{flag}`: cannot write {str(path)!r}: the file is read-only")


def _run(args: argparse.Namespace) -> int:
    inputs = parse_inputs(args.input, args.input_json)
    if args.log:
        _writable("--log", Path(args.log))
    flow = load_flow(args.flow)

    async def go() -> RunResult:
        if args.no_progress:
            return await flow.run(inputs, mode=args.mode)
        with RunProgress() as progress:
            return await flow.run(inputs, mode=args.mode, observer=progress)

    clock = trio.testing.MockClock(autojump_threshold=0) if args.clock == "virtual" else None
    try:
        result = trio.run(go, clock=clock)
    except SpecrouteError as exc:
        raise FailedError(f"run failed: {exc}") from None
    if args.log:
        log = RunLog(args.log)
        try:
            run_id = log.append(
                result, inputs=inputs, record_inputs=args.record_inputs, label=args.label
            )
            log.flush()
        except OSError as exc:
            raise FailedError(f"cannot write the run log {args.log!r}: {exc}") from None
        Console(stderr=True).print(user_text(f"logged run {run_id} to {args.log}"))
    if args.json:
        _out(strict_json(run_to_json(result)))
    else:
        line = (
            f"{result.flow}: route {result.route or '-'}, wall {result.wall_time * 1000:,.0f} ms"
            f" (sequential {result.sequential_time * 1000:,.0f} ms), wasted "
            f"{result.wasted_time * 1000:,.0f} ms, "
            f"{_dollars(result.usage.cost, result.usage.unpriced_calls)}"
        )
        Console(soft_wrap=True).print(user_text(line))
    return 0


def _dollars(cost: float, unpriced: int) -> str:
    if not unpriced:
        return f"${cost:.4f}"
    return f"${cost:.4f} + {unpriced} unpriced calls" if cost else "unpriced"


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _steps_table(record: RunRecord, number: int) -> Table:
    run = record.result
    table = Table(
        title=user_text(f"Run {number} ({record.id[:8]}): {record.label}, route {run.route}")
    )
    for name in ("step", "branch", "status", "start ms", "end ms", "speculative", "wasted", "$"):
        table.add_column(name, justify="right" if "ms" in name or name == "$" else "left")
    for entry in sorted(run.trace, key=lambda e: (e.start, e.end)):
        usage = entry.usage
        table.add_row(
            user_text(entry.step), user_text(entry.branch or "-"), entry.status.value,
            f"{ms(entry.start - run.started):,.0f}", f"{ms(entry.end - run.started):,.0f}",
            "yes" if entry.speculative else "", "yes" if entry.wasted else "",
            "" if usage is None else _dollars(usage.cost, usage.unpriced_calls).lstrip("$"),
        )  # fmt: skip
    return table


def _report(args: argparse.Namespace) -> int:
    if args.html:
        _writable("--html", Path(args.html))
    try:
        report = read_report(args.log, run=args.run, strict=args.strict)
    except (OSError, RunLogError) as exc:
        raise UsageError(f"cannot read the log {args.log!r}: {exc}") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.html:
        page = render_report(report, title=f"specroute report: {args.log}")
        out = Path(args.html)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise FailedError(f"cannot write the HTML report {args.html!r}: {exc}") from None
        Console(stderr=True, soft_wrap=True).print(
            user_text(f"HTML report written to {out.resolve()}")
        )
    if args.json:
        data = {
            "log": str(args.log),
            "summary": report.summary.to_dict(),
            "problems": [{"line": p.line, "reason": p.reason} for p in report.problems],
            "problem_count": report.problem_count,
        }
        _out(strict_json(data))
    elif not args.html:
        console = Console()
        print_summary(report.summary, report.problems, console=console)
        if args.run is not None and report.shown is not None:
            console.print(_steps_table(report.shown, report.shown_number or 0))
    return 0


def _bench(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    if not folder.is_dir():
        raise UsageError(
            f"no benchmark folder {str(folder)!r}: benchmarks are scripts in a checkout of "
            "specroute, not in the installed package; run from the checkout or pass --dir"
        )
    known = sorted(path for path in folder.glob("*.py") if not path.name.startswith("_"))
    scripts = [path for path in known if path.stem == args.name] if args.name else known
    if not scripts:
        names = ", ".join(path.stem for path in known) or "none"
        what = f"no scenario {args.name!r}" if args.name else "no scenarios"
        raise UsageError(f"{what} in {str(folder)!r} (known: {names})")
    failed = []
    for script in scripts:
        Console(stderr=True).rule(user_text(str(script)))
        done = subprocess.run([sys.executable, str(script), *args.extra], check=False)
        if done.returncode:
            failed.append(script.stem)
    if failed:
        raise FailedError(f"benchmarks failed: {', '.join(failed)}")
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser of the `specroute` command."""
    top = _Parser(prog="specroute", description=__doc__.splitlines()[0])
    top.add_argument("--version", action="version", version=f"specroute {_version()}")
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
        The exit status: 0 done, 1 a run, benchmark or output failed (or stdout closed
        early), 2 bad arguments or an unreadable log. Each failure is one line on stderr,
        `specroute: error: ...` (raised as `SystemExit`).
    """
    args = parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except UsageError as exc:
        _say(str(exc))
        return 2
    except FailedError as exc:
        _say(str(exc))
        return 1
    except BrokenPipeError:
        # The reader went away (`specroute report --json | head -1`): stop quietly, and
        # point stdout at /dev/null so the interpreter's last flush does not complain.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _version() -> str:
    try:
        return importlib.metadata.version("specroute")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


if __name__ == "__main__":
    sys.exit(main())
