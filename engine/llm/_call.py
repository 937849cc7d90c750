"""One call's bookkeeping: its attempts, what each delivered, and what the call is billed.

An attempt is open from the moment it may send until it ends; if the call is cancelled (or
its deadline passes) while one is open, the open attempt is closed as cut short and billed
for the prompt plus the text received, so a cancelled call is never reported free once the
provider has seen it. Whether it has is learnt from httpcore's `trace` extension: an attempt
whose request body never finished leaving the process bills nothing. (A transport that does
not trace, such as `httpx.MockTransport`, is taken to have sent its request.)

Where the bill is an estimate: counts the provider reported are used as they are; a prompt
it never counted is estimated from its text, and an answer cut short is billed the text
parsed before the cut. That is a lower bound: a provider that had generated more (a stream
the client had not yet read, a whole answer still being generated) bills more. Such usage
is marked `estimated` and `partial`.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio

from ._meter import Attempt
from ._usage import Usage
from ._wire import Progress

__all__ = ["CallState"]


@attrs.define(eq=False)
class CallState:
    """The attempts of one `complete` call, closed and open."""

    prompt_estimate: int
    started: float
    attempts: list[Attempt] = attrs.field(factory=list)
    progress: Progress | None = None
    last_progress: Progress | None = None
    status_code: int | None = None
    retry_after: float | None = None
    _opened_at: float = 0.0
    _traced: bool = False
    _sent: bool = False

    def open_attempt(self) -> Progress:
        self.progress = Progress()
        self.status_code = None
        self.retry_after = None
        self._opened_at = trio.current_time()
        self._traced = False
        self._sent = False
        return self.progress

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        """Take one httpcore trace event (`extensions={"trace": call.trace}`)."""
        self._traced = True
        if event.endswith(".send_request_body.complete"):
            self._sent = True

    def close_attempt(self, *, error: str | None, billed: bool = True) -> Attempt:
        """Close the open attempt and return its record; `billed=False` if nothing was sent."""
        attempt = Attempt(
            number=len(self.attempts) + 1,
            started=self._opened_at,
            finished=trio.current_time(),
            status_code=self.status_code,
            error=error,
            retry_after=self.retry_after,
            usage=self._usage_of_open(complete=error is None) if billed else Usage(),
        )
        self.attempts.append(attempt)
        self.last_progress = self.progress
        self.progress = None
        return attempt

    def set_delay(self, delay: float) -> None:
        self.attempts[-1] = attrs.evolve(self.attempts[-1], delay=delay)

    def usage(self, *, partial: bool) -> Usage:
        total = Usage()
        for attempt in self.attempts:
            total += attempt.usage
        return attrs.evolve(total, partial=partial)

    def _usage_of_open(self, *, complete: bool) -> Usage:
        progress = self.progress
        if progress is None:
            return Usage()
        if self.status_code is not None and self.status_code >= 400:
            # Providers do not bill requests they refused.
            return Usage()
        if self._traced and not self._sent and self.status_code is None:
            # The request never left the process: no provider saw it.
            return Usage()
        return progress.usage(self.prompt_estimate, partial=not complete)
