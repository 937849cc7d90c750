"""The error reading a run log raises, under `SpecrouteError`.

The hierarchy::

    SpecrouteError
    └── RunLogError    a run log line that cannot be read: not JSON, a schema version this
                       reader does not know, or a field missing or of the wrong type

`read_log` collects these as `LogProblem`s and keeps reading; only `strict=True` (and the
`specroute report --strict` flag) raises the first one.
"""

from __future__ import annotations

from specroute.routes import SpecrouteError

__all__ = ["RunLogError"]


class RunLogError(SpecrouteError):
    """A line of a run log could not be read.

    Raised by `read_log(path, strict=True)` for the first bad line, and by
    `parse_record` for a record that does not follow the schema. Unlike a missing file
    (`OSError`), the file opened: one line in it is damaged or from another schema.

    Attributes:
        path: The log file, or None for a record parsed on its own.
        line: The 1-based line number, or None for a record parsed on its own.
        reason: What is wrong with the line.
    """

    def __init__(self, reason: str, *, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:"
        if line is not None:
            where += f"{line}: " if path is not None else f"line {line}: "
        elif where:
            where += " "
        super().__init__(f"{where}{reason}")
        self.path = path
        self.line = line
        self.reason = reason
