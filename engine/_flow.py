"""`Flow`: a graph of steps and routers that you can run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from specroute.routes import Always, process_learned_state

from ._graph import Graph
from ._run import execute

if TYPE_CHECKING:
    from collections.abc import Mapping

    from specroute.cache import StepCache
    from specroute.routes import LearnedState, SpeculationPolicy

    from ._mode import Mode
    from ._observer import RunObserver
    from ._trace import RunResult

__all__ = ["Flow"]

DEFAULT_POLICY = Always()


class Flow(Graph):
    """A set of steps and routers; the graph comes from the names they read and write.

    A flow is a value: building it checks it, and no run changes it (what runs learn goes
    in a `LearnedState`).

    Args:
        nodes: Steps and routers, in any order.
        name: The flow's name, for traces and errors.
        outputs: The values the flow returns (default: the values no node of the flow
            reads). A branch's outputs appear in the flow around its router.
        inputs: The run inputs, if you want them checked now: any value read that no step
            produces and that is not listed raises `MissingInputError` at once.
        speculate: The default speculation policy for runs of this flow.

    Raises:
        FlowError: A subclass naming the step, value or router at fault: `CycleError`,
            `DuplicateProducerError`, `MissingInputError`, `BranchError`,
            `StepDefinitionError`, `UnknownBranchError`.
        ConfigurationTypeError: `nodes` not a list, `inputs` or `outputs` given as one
            string (which would be read letter by letter), or `speculate` not a policy.
    """

    async def run(
        self,
        inputs: Mapping[str, Any] | None = None,
        /,
        *,
        mode: Mode | str = "speculative",
        speculate: SpeculationPolicy | None = None,
        max_concurrency: int | Any | None = None,
        timeout: float | None = None,
        cache: StepCache | None = None,
        namespace: str = "default",
        observer: RunObserver | None = None,
        learned: LearnedState | None = None,
        admit: Literal["ready", "longest"] = "ready",
        **named_inputs: Any,
    ) -> RunResult:
        """Run the flow inside trio and return what it produced, the route and the trace.

        Args:
            inputs: Run inputs as a mapping (for names that clash with these keywords).
            mode: `"sequential"` (one step at a time, each router before its branch),
                `"parallel"` (dataflow, no speculation) or `"speculative"` (dataflow, and
                branches start beside their router as the policy says).
            speculate: The speculation policy (default: the flow's, else `Always()`).
            max_concurrency: Cap on steps in flight: an int, or a `trio.CapacityLimiter`
                to share one cap between runs.
            timeout: Seconds the whole run may take.
            cache: The cache that serves steps with a `cache` option (from
                `specroute.cache.open_cache`, or any `StepCache`); without one those steps
                always run. A speculative branch's results enter it only if the branch wins.
            namespace: The tenant: a hard partition of the cache; a non-empty `str`.
            observer: Told as each step starts and ends (a progress display, metrics).
            learned: Where predictors and cache-hit calibration learn (default: the
                process's one `LearnedState`, shared by every run).
            admit: Under `max_concurrency`, which ready step takes a free slot: `"ready"`
                (the default), the one that became ready first; `"longest"`, the one with
                the longest `estimated_seconds` (the longest-processing-time rule: four
                steps of 6, 5, 4 and 3 s on three slots end at 7 s, not up to 9 s).
            **named_inputs: Run inputs by name.

        Returns:
            The `RunResult`.

        Raises:
            ConfigurationError: An argument out of range (`max_concurrency=0`,
                `timeout=-1`), or `ConfigurationTypeError` for one of the wrong kind (not a
                policy, cache, observer or `LearnedState`); raised before any step runs,
                in every mode.
            FlowError: Missing or unknown inputs, or a policy naming an unknown router or
                branch (in every mode); raised before any step runs.
            CacheConfigError: `namespace` is not a non-empty `str` (also a `ValueError`);
                raised before any step runs.
            StepFailedError: A step on the winning path raised, or a router's cache lookup
                failed and it has no fallback (one error, not a group; see the README's
                "When things go wrong").
            UnknownRouteError: A winning router returned a label with no branch.
            HandoffError: A winning router handed over values its branch does not declare.
            RunTimeoutError: `timeout` passed.
            ObserverFailedError: The observer raised; the run stopped.
            trio.Cancelled: The caller's scope was cancelled: one bare `Cancelled`, never
                swallowed and never wrapped in a group.
            KeyboardInterrupt: Ctrl-C; every task has stopped when it propagates.
            SystemExit: A step called `sys.exit()`; re-raised as itself.
        """
        values = dict(inputs or {})
        values.update(named_inputs)
        return await execute(
            self,
            values,
            mode=mode,
            policy=(
                speculate
                if speculate is not None
                else self.speculate
                if self.speculate is not None
                else DEFAULT_POLICY
            ),
            max_concurrency=max_concurrency,
            timeout=timeout,
            cache=cache,
            namespace=namespace,
            observer=observer,
            learned=learned if learned is not None else process_learned_state(),
            admit=admit,
        )
