"""Streams are lossless and never deadlock: random flows of streamed and plain steps, each
input read whole or as a stream (some readers stopping early, some slow, buffers of any
size), in every mode, against a plain-Python reference.

A flow that deadlocked would sleep forever in virtual time; `trio.fail_after` turns that
into a failure.
"""

from __future__ import annotations

import inspect
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import example, given, note
from hypothesis import strategies as st
from specroute.engine import Flow, Mode, RunResult, StreamReader, step


@attrs.frozen
class Node:
    name: str
    reads: tuple[str, ...]  # names of earlier nodes
    as_stream: tuple[str, ...]  # those of `reads` read as streams
    items: int | None  # None: a plain step; else a streamed step yielding this many
    every: int  # seconds per item (or the whole step's duration, if plain)
    buffer: int
    stop_after: int | None  # a stream reader that stops reading after this many items

    def describe(self) -> str:
        kind = "plain" if self.items is None else f"{self.items} items"
        return (
            f"{self.name}({', '.join(f'~{r}' if r in self.as_stream else r for r in self.reads)})"
            f" {kind} every {self.every}s buffer {self.buffer} stop {self.stop_after}"
        )


@st.composite
def stream_flows(draw: st.DrawFn) -> tuple[Node, ...]:
    nodes: list[Node] = []
    for index in range(draw(st.integers(1, 6))):
        earlier = [node.name for node in nodes]
        reads = tuple(draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3))
                      if earlier else ())  # fmt: skip
        streamed = {node.name for node in nodes if node.items is not None}
        as_stream = tuple(r for r in reads if r in streamed and draw(st.booleans()))
        nodes.append(
            Node(
                name=f"n{index}",
                reads=reads,
                as_stream=as_stream,
                items=draw(st.none() | st.integers(0, 4)),
                every=draw(st.integers(0, 2)),
                buffer=draw(st.integers(1, 3)),
                stop_after=draw(st.none() | st.integers(0, 2)) if as_stream else None,
            )
        )
    return tuple(nodes)


def items_of(node: Node, inputs: dict[str, Any]) -> list[Any]:
    return [(node.name, index, tuple(sorted(inputs.items()))) for index in range(node.items or 0)]


def reference(nodes: tuple[Node, ...]) -> dict[str, Any]:
    """Each node's value, one at a time: a stream read is the list of items read."""
    values: dict[str, Any] = {}
    produced: dict[str, list[Any]] = {}
    for node in nodes:
        inputs = {}
        for name in node.reads:
            if name in node.as_stream:
                inputs[name] = produced[name][: node.stop_after]
            else:
                inputs[name] = values[name]
        if node.items is None:
            values[node.name] = ("value", node.name, tuple(sorted(inputs.items())))
        else:
            produced[node.name] = items_of(node, inputs)
            values[node.name] = produced[node.name]
    return values


@attrs.define
class Probe:
    running: int = 0


def build(nodes: tuple[Node, ...], probe: Probe) -> Flow:
    steps = []
    for node in nodes:
        steps.append(_step(node, probe))
    return Flow(steps, name="streams")


def _step(node: Node, probe: Probe) -> Any:
    async def gather(inputs: dict[str, Any]) -> dict[str, Any]:
        seen = {}
        for name, value in inputs.items():
            if isinstance(value, StreamReader):
                taken: list[Any] = []
                if node.stop_after != 0:
                    async for item in value:
                        taken.append(item)
                        await trio.sleep(node.every)  # a slow reader
                        if node.stop_after is not None and len(taken) >= node.stop_after:
                            break
                seen[name] = taken
            else:
                seen[name] = value
        return seen

    if node.items is None:

        async def plain(**inputs: Any) -> Any:
            probe.running += 1
            try:
                seen = await gather(inputs)
                await trio.sleep(node.every)
                return ("value", node.name, tuple(sorted(seen.items())))
            finally:
                probe.running -= 1

        body: Any = plain
    else:

        async def streamed(**inputs: Any) -> Any:
            probe.running += 1
            try:
                seen = await gather(inputs)
                for item in items_of(node, seen):
                    await trio.sleep(node.every)
                    yield item
            finally:
                probe.running -= 1

        body = streamed
    body.__name__ = node.name
    body.__signature__ = inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in node.reads]
    )
    options: dict[str, Any] = {"streams": list(node.as_stream)}
    if node.items is not None:
        options["stream_buffer"] = node.buffer
    return step(**options)(body)


def run(nodes: tuple[Node, ...], mode: Mode, probe: Probe, cancel_at: float | None) -> Any:
    flow = build(nodes, probe)
    finished: list[RunResult] = []

    async def main() -> None:
        with trio.fail_after(10_000):  # virtual seconds: only a deadlock gets here
            with trio.move_on_after(cancel_at if cancel_at is not None else 5_000):
                finished.append(await flow.run(mode=mode))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return finished[0] if finished else None


# A reader that stops after one item, while a fast producer has a buffer of one: the
# producer must not wait for it after it has stopped.
QUITTER = (
    Node("n0", (), (), items=4, every=0, buffer=1, stop_after=None),
    Node("n1", ("n0",), ("n0",), items=None, every=1, buffer=1, stop_after=1),
)


@given(nodes=stream_flows(), mode=st.sampled_from(list(Mode)))
@example(nodes=QUITTER, mode=Mode.SPECULATIVE)
def test_streams_give_the_reference_values_in_every_mode(
    nodes: tuple[Node, ...], mode: Mode
) -> None:
    note("\n".join(node.describe() for node in nodes))
    probe = Probe()
    result = run(nodes, mode, probe, None)
    assert result is not None
    assert probe.running == 0
    expected = reference(nodes)
    assert {name: result.values[name] for name in expected} == expected
    for entry in result.trace:
        node = next(n for n in nodes if n.name == entry.step)
        assert entry.items == node.items


@given(nodes=stream_flows(), cancel_at=st.integers(0, 12))
def test_outside_cancellation_closes_every_stream(nodes: tuple[Node, ...], cancel_at: int) -> None:
    note("\n".join(node.describe() for node in nodes))
    probe = Probe()
    run(nodes, Mode.SPECULATIVE, probe, cancel_at + 0.5)
    assert probe.running == 0


def expected_wall(nodes: tuple[Node, ...], mode: Mode) -> float:
    """The run's wall time from the rules in the README, with no backpressure (every buffer
    holds a whole stream): a node starts when its whole inputs exist and its streamed
    inputs have a first item (or ended empty); it reads its streams in turn, one item per
    `every` seconds, waiting for items not yet produced and for the end unless it stops
    early; a streamed node then yields an item every `every` seconds."""
    items_at: dict[str, list[float]] = {}
    ends: dict[str, float] = {}
    previous_end = 0.0
    for node in nodes:
        if mode is Mode.SEQUENTIAL:
            start = previous_end
        else:
            start = 0.0
            for name in node.reads:
                if name in node.as_stream and items_at[name]:
                    start = max(start, items_at[name][0])
                else:
                    start = max(start, ends[name])
        t = start
        for name in node.as_stream:
            if node.stop_after == 0:
                continue
            stopped = False
            for taken, at in enumerate(items_at[name], 1):
                t = max(t, at) + node.every
                if node.stop_after is not None and taken >= node.stop_after:
                    stopped = True
                    break
            if not stopped:
                t = max(t, ends[name])  # the end of the stream is read too
        if node.items is None:
            ends[node.name] = t + node.every
        else:
            items_at[node.name] = [t + node.every * (k + 1) for k in range(node.items)]
            ends[node.name] = items_at[node.name][-1] if node.items else t
        previous_end = ends[node.name]
    return max(ends.values(), default=0.0)


@given(nodes=stream_flows(), mode=st.sampled_from(list(Mode)))
@example(nodes=QUITTER, mode=Mode.PARALLEL)
def test_wall_time_is_exact_in_virtual_time(nodes: tuple[Node, ...], mode: Mode) -> None:
    # Buffers that hold a whole stream: backpressure never binds, so the times follow
    # from the durations alone (the deadlock and value tests above cover small buffers).
    nodes = tuple(attrs.evolve(node, buffer=4) for node in nodes)
    note("\n".join(node.describe() for node in nodes))
    result = run(nodes, mode, Probe(), None)
    assert result is not None
    assert result.wall_time == pytest.approx(expected_wall(nodes, mode))
