"""The step path: call one step (or serve it from the cache), record it, and hand a failure
to its scope.

Failures never travel through nurseries: a step's exception is wrapped once in
`StepFailedError` and given to `Scope.fail`, which cancels the smallest scope that must stop
(a branch that has not won yet, else the run). Nurseries therefore only see
`trio.Cancelled`, which the cancelled scope absorbs.

Cancellation is all or nothing for each step. No step's function is called once its task
is cancelled (its inputs may appear in the very instant its scope is cancelled): it is
recorded as `skipped`. An effect that has started is shielded and runs to its end, for at
most its `effect_grace` after the cancellation reached it; past that it is cancelled and
recorded as `cancelled` with a `StepTimeoutError` naming its grace.
"""

from __future__ import annotations

import contextlib
import math
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import trio
from specroute.cache import CacheHit, CacheMiss, ComputationFailedError
from specroute.routes import StepFailedError, StepTimeoutError

from ._graph import Expansion
from ._predicted import drop, open_guess, settle
from ._state import Execution, PendingStore, add, store
from ._stream import STREAM_WAITS, Stream, stream_name
from ._trace import StepStatus
from .llm import no_hedging

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable

    from ._state import Guess, RunState, Scope
    from ._step import Step

__all__ = ["Called", "call", "lookup", "run_plain_step", "run_step"]

OK, FAILED, CACHED, RECOVERED, SKIPPED, CANCELLED = (
    StepStatus.OK,
    StepStatus.FAILED,
    StepStatus.CACHED,
    StepStatus.RECOVERED,
    StepStatus.SKIPPED,
    StepStatus.CANCELLED,
)
# Raises `Cancelled` if the calling task is cancelled, else returns without yielding.
_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled
_current_task = trio.lowlevel.current_task


async def lookup(run: RunState, step: Step, kwargs: dict[str, Any]) -> CacheHit | CacheMiss | None:
    """Look `step` up in the run's cache; None when it is not cached in this run.

    The step is looked up by its identity (name and function, or its explicit cache name),
    so two functions under one step name never share entries."""
    options = step.options.cache
    if run.cache is None or options is None:
        return None
    names = step.options.cache_inputs
    keyed = kwargs if names is None else {n: kwargs[n] for n in names if n in kwargs}
    identity = step.cache_identity
    assert identity is not None  # a step with cache options has one
    return await run.cache.lookup(identity, options, run.namespace, keyed)


async def run_step(run: RunState, scope: Scope, index: int, token: object | None = None) -> None:
    """The task of one step: call it, then write its value (which may start others)."""
    step: Step = scope.flow.nodes[index]  # type: ignore[assignment]
    if token is not None and isinstance(step, Expansion):
        # Like a router, a map or loop holds no slot itself: its body's steps need them.
        run.limiter.release_on_behalf_of(token)  # type: ignore[union-attr]
        token = None
    try:
        called = await call(run, scope, step, admitted=token is not None)
        if called.ok:
            scope.write(step.output, called.value)
            scope.node_done()
    finally:
        if token is not None:
            run.limiter.release_on_behalf_of(token)  # type: ignore[union-attr]


async def run_plain_step(run: RunState, scope: Scope, index: int) -> None:
    """The task of a plain step (no cache, timeout, fallback, cap or observer): `call`
    and `run_step` in one frame, since this is most steps and every frame costs.

    When the step's value makes exactly one more plain step of the same scope ready, that
    step runs next in this task instead of in a new one (`RunState.tail`): a chain costs
    one task, not one per step. Steps that become ready together still start in tasks of
    their own, so nothing that could run at once waits; and the task lives in the scope's
    nursery either way, so cancelling the scope cancels it.
    """
    by_task = run.meter.by_task
    task = _current_task()
    now = run.now
    nodes = scope.flow.nodes
    values = scope.values
    unread = scope.tables.unread
    picks = scope.picks
    # A step starts when the one before it in this task ended (nothing is awaited between
    # them): one clock read a step.
    start = now()
    while True:
        step: Step = nodes[index]  # type: ignore[assignment]
        pick = picks[index]
        try:
            if pick is not None:
                inputs = pick(values)  # by position (see `Step.pick`): one value, or a tuple
            else:
                kwargs = scope.gather(step.params)
        except KeyError:  # an input not in this scope (or an optional one not given)
            pick = None
            kwargs = scope.gather(step.params)
        by_task[task] = None
        # The record is built once, when the step ends (see `Execution`).
        speculative = not scope.confirmed
        error = None
        try:
            status = SKIPPED
            await _checkpoint_if_cancelled()
            status = CANCELLED
            # The inputs are not kept alive by this frame while the step waits.
            if pick is None:
                running = step.fn(**kwargs)
                del kwargs
            elif step.spread:
                running = step.fn(*inputs)
                del inputs
            else:
                running = step.fn(inputs)
                del inputs
            value = await running
            status = OK
        except Exception as exc:  # noqa: BLE001 -- the step boundary: wrapped and re-raised by `execute`
            status = FAILED
            error = exc
        finally:
            execution = Execution(
                scope,
                step.name,
                step.params,
                step.output,
                start,
                speculative,
                now(),
                status,
                by_task.pop(task, None),
            )
            if error is not None:
                execution.error = error
            run.executions.append(execution)
        if status is not OK:
            _fail(scope, step, error)
            return
        if unread[index] and not scope.exports and scope.writes_plainly:
            values[step.output] = value  # all `write` would do (see `Tables.unread`)
            index = -1  # and it makes nothing ready
        elif scope.in_order:
            # The next node in flow order is the one this value makes ready (see
            # `Scope.in_order`), so `write` has no reader to count down: store, export.
            values[step.output] = value
            if scope.exports and scope.chosen and step.output in scope.exports:
                scope.parent.write(step.output, value)  # type: ignore[union-attr]
            scope.done += 1
            index += 1
            if index == len(nodes):
                return
            # If the scope was cancelled meanwhile, the next step's checkpoint skips it.
            scope.launched |= 1 << index
            start = execution.end
            continue
        else:
            run.tail_scope = scope
            try:
                scope.write(step.output, value)
            finally:
                index = run.tail_index  # `take_tail`, inline
                run.tail_scope = None
                run.tail_index = -1
        scope.done += 1  # `node_done`, inline: one call fewer on every step
        if scope.finished is not None and scope.done == len(scope.missing):
            scope.finished.set()
        if index < 0:
            return
        if scope.tables.routers_at[index]:
            await run.run_here(scope, index)
            return
        start = execution.end


def _fail(scope: Scope, step: Step, error: BaseException | None) -> None:
    failure = StepFailedError(
        f"step {step.name!r} failed{scope.where}: {type(error).__name__}: {error}",
        step=step.name,
        branch=scope.path,
    )
    failure.__cause__ = error
    scope.fail(failure)


class Called:
    """What `call` gives back: whether the step produced a value, the value, its record."""

    __slots__ = ("execution", "ok", "value")

    def __init__(self, ok: bool, value: Any, execution: Execution) -> None:
        self.ok = ok
        self.value = value
        self.execution = execution


async def call(
    run: RunState,
    scope: Scope,
    step: Step,
    found: CacheHit | CacheMiss | None = None,
    admitted: bool = False,
    kwargs: dict[str, Any] | None = None,
) -> Called:
    """Run one step function (or serve it from the cache); record it; hand a failure to its
    scope. `admitted` steps already hold a slot of the run's limiter; `kwargs` are its
    inputs if the caller has gathered them already (a router has, for its cache lookup)."""
    if kwargs is None:
        kwargs = scope.gather(step.params)
    by_task = run.meter.by_task
    task = trio.lowlevel.current_task()
    by_task[task] = None
    now = run.now
    start = now()
    execution = Execution(
        scope, step.name, step.params, step.output, start, not scope.confirmed, start
    )
    observer = run.observer
    if observer is not None:
        observer.step_started(step.name, scope.path, execution.speculative)
    guess: Guess | None = None
    try:
        options = step.options.cache
        if found is None and options is not None:
            found = await lookup(run, step, kwargs)
        if isinstance(found, CacheHit):
            if found.kind == "semantic" and options.on_semantic_hit != "trust":  # type: ignore[union-attr]
                # A near match is a guess: it may start the steps downstream, and the step
                # still computes its value, stored under this request's own key.
                guess = open_guess(run, scope, step, found, _predicted(step, found.value))
                found = CacheMiss(key=found.key, exact=options.exact, embedding=found.embedding)  # type: ignore[union-attr]
            else:
                execution.status, execution.similarity = CACHED, found.similarity
                run.cache_hits += 1
                run.cache_saved += found.seconds
                if step.streamed:  # the stored items replay at once as a stream
                    return Called(True, _replay(scope, step, found.value, execution), execution)
                return Called(True, found.value, execution)
        execution.status = SKIPPED
        await _checkpoint_if_cancelled()
        execution.status = CANCELLED
        if isinstance(step, Expansion):
            value = await step.expand(run, scope, kwargs, execution)
        elif step.streamed:
            value = await _produce(run, scope, step, kwargs, found, admitted, execution)
        elif step.options.effect:
            value = await _effect(run, scope, step, kwargs, found, admitted, execution)
        elif found is None and (run.limiter is None or admitted):
            value = await _invoke(step, kwargs)  # `_compute`'s first case, one frame fewer
        else:
            value = await _compute(run, scope, step, kwargs, found, admitted, execution)
        execution.status = OK
        if guess is not None:
            settle(run, guess, value, options.agree)  # type: ignore[union-attr]
            guess = None
        return Called(True, value, execution)
    except Exception as exc:  # noqa: BLE001 -- the step boundary: wrapped and re-raised by `execute`
        execution.status = FAILED
        execution.error = exc
        # A stream that readers have begun to read cannot be replaced by another.
        started = execution.stream is not None and execution.stream.items
        if step.options.fallback is not None and not started:
            # The step's safe default stands in; the failure stays in the trace.
            try:
                if step.fallback_takes_inputs:
                    value = step.options.fallback(exc, MappingProxyType(kwargs))
                else:
                    value = step.options.fallback(exc)
                if step.streamed:
                    value = _replay(scope, step, value, execution)
            except Exception as fallback_error:  # noqa: BLE001 -- becomes the step's failure
                execution.error = fallback_error
            else:
                execution.status = RECOVERED
                return Called(True, value, execution)
    finally:
        if guess is not None:
            drop(run, guess, f"step {step.name!r} ended {execution.status.value}")
        if step.options.streams:
            execution.stream_wait = STREAM_WAITS.pop(task, 0.0)
        execution.end = end = now()
        execution.calls = by_task.pop(task, None)
        run.executions.append(execution)
        if observer is not None:
            observer.step_finished(step.name, scope.path, execution.status, end - execution.start)
    _fail(scope, step, execution.error)
    return Called(False, None, execution)


async def _compute(
    run: RunState,
    scope: Scope,
    step: Step,
    kwargs: dict[str, Any],
    found: CacheMiss | None,
    admitted: bool,
    execution: Execution,
) -> Any:
    """The step's value: called (under its timeout and the run's cap), or computed once for
    a cache miss and stored (now, or when its branch is confirmed)."""
    if found is None:
        if run.limiter is None or admitted:
            return await _invoke(step, kwargs)
        async with run.limiter:
            execution.start = run.now()  # queued time is not step time
            return await _invoke(step, kwargs)
    run.cache_misses += 1
    try:
        caller = trio.lowlevel.current_task()
        value, seconds = await run.cache.compute_once(  # type: ignore[union-attr]
            found.key, lambda: _timed(run, step, kwargs, admitted, caller)
        )
    except ComputationFailedError as failed:
        raise (failed.__cause__ or failed) from None
    await _keep(run, PendingStore(scope, step.name, found, value, seconds))
    return value


async def _keep(run: RunState, pending: PendingStore) -> None:
    """Store a computed value now, or when its branch is confirmed."""
    if pending.scope.confirmed:
        await store(pending, run.cache)  # type: ignore[arg-type]
    else:
        pending.scope.pending_stores = add(pending.scope.pending_stores, pending)


def _collected(step: Step, items: list[Any]) -> Any:
    """A streamed step's whole value, made from its items."""
    collect = step.options.collect
    return items if collect is None else collect(items)


def _predicted(step: Step, value: Any) -> dict[str, Any]:
    """What a near match predicts: the step's value, and for a streamed step its stream."""
    if not step.streamed:
        return {step.output: value}
    items = list(value)
    return {
        step.output: _collected(step, items),
        stream_name(step.output): Stream.complete(step.name, items),
    }


def _replay(scope: Scope, step: Step, items: Any, execution: Execution) -> Any:
    """Stored (or fallback) items, given to stream readers as a stream that is already over;
    returns the step's whole value."""
    items = list(items)
    stream = execution.stream = Stream.complete(step.name, items)
    scope.write(stream_name(step.output), stream)
    return _collected(step, items)


async def _produce(
    run: RunState,
    scope: Scope,
    step: Step,
    kwargs: dict[str, Any],
    found: CacheMiss | None,
    admitted: bool,
    execution: Execution,
) -> Any:
    """A streamed step's run: its items go to its readers as they come (see `_stream`), and
    its whole value is made from them at the end. On a cache miss the complete list of
    items is stored (when its branch is confirmed). Concurrent misses on a streamed step
    each compute: a stream's readers read it live, so one computation cannot serve two
    runs' readers."""
    start = trio.current_time()
    if run.limiter is None or admitted:
        items = await _stream_out(run, scope, step, kwargs, execution)
    else:
        async with run.limiter:
            execution.start = start = run.now()
            items = await _stream_out(run, scope, step, kwargs, execution)
    if found is not None:
        run.cache_misses += 1
        seconds = trio.current_time() - start
        await _keep(run, PendingStore(scope, step.name, found, items, seconds))
    return _collected(step, items)


async def _stream_out(
    run: RunState, scope: Scope, step: Step, kwargs: dict[str, Any], execution: Execution
) -> list[Any]:
    """Run a streamed step's generator, publishing each item; abort the stream unless it
    ran to its end, so no reader takes a cut stream for a whole one."""
    stream = execution.stream = Stream(step.name, step.options.stream_buffer)
    name = stream_name(step.output)
    timeout = step.options.timeout
    deadline = trio.current_time() + timeout if timeout is not None else math.inf
    try:
        with trio.CancelScope(deadline=deadline) as limit:
            generator: AsyncGenerator[Any, None] = step.fn(**kwargs)  # type: ignore[assignment]
            async with contextlib.aclosing(generator) as produced:
                async for item in produced:
                    if not stream.items:
                        scope.write(name, stream)  # its stream readers start now
                    await stream.publish(item)
        if limit.cancelled_caught:
            raise StepTimeoutError(f"step {step.name!r} ran longer than its timeout of {timeout}s")
    except BaseException as exc:
        stream.abort(exc)
        raise
    stream.finish()
    if not stream.items:
        scope.write(name, stream)  # an empty stream: its readers start and see it end
    return stream.items


async def _effect(
    run: RunState,
    scope: Scope,
    step: Step,
    kwargs: dict[str, Any],
    found: CacheMiss | None,
    admitted: bool,
    execution: Execution,
) -> Any:
    """`_compute` for an effect: shielded, so a cancellation (from outside, the run's
    timeout or a failing sibling) lets it finish, for at most its `effect_grace` after the
    cancellation reached it.

    A shielded task is told nothing of the cancellation, so an unshielded watcher beside it
    is: when it is cancelled, it gives the shield a deadline. If the effect then finishes, its
    record says so (`ok`, or `failed` if it raised) before the `Cancelled` goes on up."""
    shield = trio.CancelScope(shield=True)
    failure: Exception | None = None
    value: Any = None
    # The step's own task may run effect tools (`run_tool_loop`): its branch is confirmed.
    meter = run.meter
    task = trio.lowlevel.current_task()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_grant_grace, shield, step.options.effect_grace)
        # An effect's LLM calls run once each: never hedged.
        with shield, no_hedging():
            meter.effect_tasks |= {task}
            try:
                value = await _compute(run, scope, step, kwargs, found, admitted, execution)
            except Exception as exc:  # noqa: BLE001 -- re-raised below, outside the nursery
                failure = exc
                execution.status = FAILED
                execution.error = exc
            else:
                execution.status = OK
            finally:
                meter.effect_tasks -= {task}
        if shield.cancelled_caught:
            execution.status = CANCELLED
            execution.error = StepTimeoutError(
                f"effect step {step.name!r} was still running {step.options.effect_grace}s "
                f"after its run was cancelled (its `effect_grace`), so it was cancelled and "
                f"may be half done; raise `effect_grace=` if it needs longer to finish"
            )
        # Stop the watcher; if the run was cancelled, leaving the nursery raises `Cancelled`.
        nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return value


async def _grant_grace(shield: trio.CancelScope, grace: float) -> None:
    """Wait for a cancellation, then let the shielded effect run `grace` seconds more."""
    try:
        await trio.sleep_forever()
    finally:
        # Also reached when `_effect` stops this watcher, after the shield was left: a
        # deadline on a scope that has exited changes nothing.
        shield.deadline = min(shield.deadline, trio.current_time() + grace)


async def _timed(
    run: RunState, step: Step, kwargs: dict[str, Any], admitted: bool, caller: trio.lowlevel.Task
) -> tuple[Any, float]:
    """The step's value and how long it took: a later hit saves that much.

    It runs in the cache's single-flight task, not the step's (`caller`): the LLM calls it
    makes are handed to the step's task, so the step's trace entry carries them."""
    by_task = run.meter.by_task
    flight = trio.lowlevel.current_task()
    by_task[flight] = None
    try:
        if run.limiter is None or admitted:
            start = trio.current_time()
            value = await _invoke(step, kwargs)
        else:
            async with run.limiter:
                start = trio.current_time()
                value = await _invoke(step, kwargs)
    finally:
        calls = by_task.pop(flight, None)
        if calls and caller in by_task:  # not once the step's own task has ended
            own = by_task[caller]
            by_task[caller] = calls if own is None else own + calls
    return value, trio.current_time() - start


def _invoke(step: Step, kwargs: dict[str, Any]) -> Awaitable[Any]:
    """The step's call, under its timeout if it has one (without one, the function's own
    coroutine, so no frame of ours sits between the caller and the step)."""
    timeout = step.options.timeout
    if timeout is None:
        return step.fn(**kwargs)
    return _invoke_with_timeout(step, kwargs, timeout)


async def _invoke_with_timeout(step: Step, kwargs: dict[str, Any], timeout: float) -> Any:
    with trio.move_on_after(timeout):
        return await step.fn(**kwargs)
    raise StepTimeoutError(f"step {step.name!r} ran longer than its timeout of {timeout}s")
