"""Maps: a sub-flow over a list made during the run, in input order, under both caps, with
failures raised or collected, observed, traced, and speculative with its branch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import trio
from specroute.cache import CacheOptions, HashingEmbedder, open_cache
from specroute.engine import (
    Always,
    Branches,
    ConfigurationError,
    ConfigurationTypeError,
    Flow,
    ItemFailed,
    Map,
    Route,
    RunResult,
    StepDefinitionError,
    StepFailedError,
    StepStatus,
    map_,
    router,
    step,
)

if TYPE_CHECKING:
    from pathlib import Path

    from trio.testing import MockClock


class InFlight:
    """Counts item steps running at once."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.started: list[int] = []

    async def work(self, item: int, seconds: float) -> None:
        self.now += 1
        self.most = max(self.most, self.now)
        self.started.append(item)
        try:
            await trio.sleep(seconds)
        finally:
            self.now -= 1


def doc_flow(
    flight: InFlight,
    *,
    durations: dict[int, float] | None = None,
    fail: frozenset[int] = frozenset(),
    **options: Any,
) -> Flow:
    """`docs` (1 s) lists `n` numbers; `summaries` maps `summarize` over them; `report` joins."""
    seconds = durations or {}

    @step
    async def docs(n: int) -> list[int]:
        await trio.sleep(1)
        return list(range(n))

    @step
    async def summarize(doc: int, prefix: str) -> str:
        await flight.work(doc, seconds.get(doc, 1))
        if doc in fail:
            raise ValueError(f"doc {doc} is unreadable")
        return f"{prefix}{doc}"

    @step
    async def report(summaries: tuple[Any, ...]) -> tuple[Any, ...]:
        return summaries

    return Flow(
        [docs, map_(summarize, over="docs", item="doc", into="summaries", **options), report],
        name="docs",
    )


async def test_results_come_in_input_order_and_items_run_at_once(autojump_clock: MockClock) -> None:
    flight = InFlight()
    flow = doc_flow(flight, durations={0: 3, 1: 1, 2: 2})
    result = await flow.run(n=3, prefix="s", mode="parallel")
    assert result.outputs["report"] == ("s0", "s1", "s2")
    assert flight.most == 3
    assert result.wall_time == 1 + 3


async def test_an_empty_list_maps_to_an_empty_tuple(autojump_clock: MockClock) -> None:
    flight = InFlight()
    for mode in ("sequential", "parallel", "speculative"):
        result = await doc_flow(flight).run(n=0, prefix="s", mode=mode)
        assert result.outputs["report"] == ()
    assert flight.started == []


async def test_sequential_mode_runs_items_one_after_another(autojump_clock: MockClock) -> None:
    flight = InFlight()
    result = await doc_flow(flight, durations={0: 3, 1: 1, 2: 2}).run(
        n=3, prefix="s", mode="sequential"
    )
    assert result.outputs["report"] == ("s0", "s1", "s2")
    assert flight.most == 1
    assert flight.started == [0, 1, 2]
    assert result.wall_time == 1 + 3 + 1 + 2


async def test_max_parallel_caps_items_and_starts_them_in_input_order(
    autojump_clock: MockClock,
) -> None:
    flight = InFlight()
    flow = doc_flow(flight, durations={0: 1, 1: 2, 2: 3, 3: 1, 4: 2}, max_parallel=2)
    result = await flow.run(n=5, prefix="s", mode="parallel")
    assert flight.most == 2
    assert flight.started == [0, 1, 2, 3, 4]
    # slots: 0 (0-1), 1 (0-2), 2 (1-4), 3 (2-3), 4 (3-5): the last ends at 5
    assert result.wall_time == 1 + 5


async def test_the_runs_cap_covers_item_steps_and_the_map_holds_no_slot(
    autojump_clock: MockClock,
) -> None:
    flight = InFlight()
    result = await doc_flow(flight).run(n=4, prefix="s", max_concurrency=1)
    assert flight.most == 1
    assert result.outputs["report"] == ("s0", "s1", "s2", "s3")
    assert result.wall_time == 1 + 4


async def test_a_failing_item_fails_the_run_and_stops_the_others(
    autojump_clock: MockClock,
) -> None:
    flight = InFlight()
    flow = doc_flow(flight, durations={0: 5, 1: 1, 2: 5}, fail=frozenset({1}))
    with pytest.raises(StepFailedError) as caught:
        await flow.run(n=3, prefix="s", mode="parallel")
    assert caught.value.branch == "summaries[1]"
    assert "doc 1 is unreadable" in str(caught.value)
    assert flight.now == 0
    statuses = {(e.branch, e.status) for e in caught.value.trace}
    assert ("summaries[0]", StepStatus.CANCELLED) in statuses
    assert ("summaries[2]", StepStatus.CANCELLED) in statuses


async def test_collect_puts_failures_in_the_result_and_goes_on(autojump_clock: MockClock) -> None:
    flight = InFlight()
    for mode in ("sequential", "parallel"):
        flow = doc_flow(flight, fail=frozenset({1, 3}), on_error="collect")
        result = await flow.run(n=4, prefix="s", mode=mode)
        summaries = result.outputs["report"]
        assert summaries[0] == "s0"
        assert summaries[2] == "s2"
        failed = summaries[1]
        assert isinstance(failed, ItemFailed)
        assert (failed.index, failed.item) == (1, 1)
        assert isinstance(failed.error, StepFailedError)
        assert failed.error.branch == "summaries[1]"
        assert isinstance(summaries[3], ItemFailed)
        failed_entries = [e for e in result.trace if e.status is StepStatus.FAILED]
        assert sorted(e.branch for e in failed_entries) == ["summaries[1]", "summaries[3]"]
        assert not any(e.wasted for e in result.trace)


async def test_the_trace_shows_each_items_steps_and_the_critical_path_crosses_the_map(
    autojump_clock: MockClock,
) -> None:
    flight = InFlight()
    result = await doc_flow(flight, durations={0: 1, 1: 3}).run(n=2, prefix="s")
    by_branch = {(e.step, e.branch): e for e in result.trace}
    assert by_branch["summarize", "summaries[0]"].duration == 1
    assert by_branch["summarize", "summaries[1]"].duration == 3
    assert by_branch["summaries", ""].duration == 0
    assert by_branch["summaries.split", ""].duration == 0
    path = [(e.step, e.branch) for e in result.critical_path]
    assert path == [
        ("docs", ""),
        ("summaries.split", ""),
        ("summarize", "summaries[1]"),
        ("summaries", ""),
        ("report", ""),
    ]
    # The items' work counts once: the map's own entries take no time.
    assert result.sequential_time == 1 + 1 + 3


async def test_the_observer_sees_each_items_steps(autojump_clock: MockClock) -> None:
    seen: list[tuple[str, str, str]] = []

    class Progress:
        def step_started(self, step: str, branch: str, speculative: bool) -> None:
            seen.append(("start", step, branch))

        def step_finished(self, step: str, branch: str, status: StepStatus, seconds: float) -> None:
            seen.append((str(status), step, branch))

    await doc_flow(InFlight()).run(n=2, prefix="s", observer=Progress())
    assert ("start", "summarize", "summaries[0]") in seen
    assert ("ok", "summarize", "summaries[1]") in seen
    assert seen.index(("start", "summaries", "")) < seen.index(("ok", "summaries", ""))


async def test_items_read_the_enclosing_flows_values_and_nest(autojump_clock: MockClock) -> None:
    @step
    async def rows(n: int) -> list[list[int]]:
        return [list(range(i)) for i in range(n)]

    @step
    async def cell(value: int, scale: int) -> int:
        await trio.sleep(1)
        return value * scale

    inner = map_(cell, over="row", item="value", into="cells")
    outer = map_([inner], over="rows", item="row", into="table")
    result = await Flow([rows, outer]).run(n=3, scale=10)
    assert result.outputs["table"] == ((), (0,), (0, 10))
    assert result.wall_time == 1
    assert {e.branch for e in result.trace if e.step == "cell"} == {
        "table[1]/cells[0]",
        "table[2]/cells[0]",
        "table[2]/cells[1]",
    }


def speculative_flow(effects: list[str]) -> Flow:
    """A router (2 s) picks `a` or `b`; branch `a` maps an item step with an effect."""

    @step
    async def decide(choice: str) -> Route:
        await trio.sleep(2)
        return Route(choice)

    @step
    async def work(doc: int) -> int:
        await trio.sleep(1)
        return doc

    @step(effect=True)
    async def send(work: int) -> int:
        effects.append(f"sent {work}")
        return work

    @step(output="answer")
    async def gather(sent: tuple[int, ...]) -> str:
        return f"a{sent}"

    @step(output="answer")
    async def other(docs: list[int]) -> str:
        await trio.sleep(1)
        return "b"

    a = Flow([map_([work, send], over="docs", item="doc", into="sent"), gather], outputs=["answer"])
    b = Flow([other], outputs=["answer"])
    return Flow([router(decide, {"a": a, "b": b})], name="speculative")


async def test_a_lost_branch_cancels_its_maps_items_and_no_effect_runs(
    autojump_clock: MockClock,
) -> None:
    effects: list[str] = []
    result = await speculative_flow(effects).run(
        choice="b", docs=[1, 2], speculate=Branches({"decide": ["a", "b"]})
    )
    assert result.outputs["answer"] == "b"
    assert effects == []
    items = [e for e in result.trace if e.branch.startswith("decide:a/sent[")]
    # The items' work ran beside the router and is wasted; their effects never started.
    assert sorted((e.step, e.status, e.wasted) for e in items) == [
        ("send", StepStatus.SKIPPED, False),
        ("send", StepStatus.SKIPPED, False),
        ("work", StepStatus.OK, True),
        ("work", StepStatus.OK, True),
    ]
    assert all(e.speculative for e in items)
    assert result.wall_time == 2


async def test_a_won_branch_lets_its_items_effects_run_once_confirmed(
    autojump_clock: MockClock,
) -> None:
    effects: list[str] = []
    result = await speculative_flow(effects).run(
        choice="a", docs=[1, 2], speculate=Branches({"decide": ["a"]})
    )
    assert result.outputs["answer"] == "a(1, 2)"
    assert sorted(effects) == ["sent 1", "sent 2"]
    sends = [e for e in result.trace if e.step == "send"]
    # The items' work ran beside the router (0-1 s); their effects waited for it (2 s).
    assert [e.start for e in sends] == [2, 2]
    assert not any(e.wasted for e in result.trace)
    assert result.wall_time == 2


async def test_a_value_that_is_not_a_list_fails_the_map_step(autojump_clock: MockClock) -> None:
    flow = doc_flow(InFlight())
    with pytest.raises(StepFailedError, match="must be a list") as caught:
        await Flow(list(flow.nodes)[1:]).run(docs="abc", prefix="s")
    assert caught.value.step == "summaries"


def test_a_map_is_a_node_and_names_what_it_reads() -> None:
    @step
    async def summarize(doc: int, prefix: str) -> str:
        return prefix

    made = map_(summarize, over="docs", item="doc", into="summaries")
    assert isinstance(made, Map)
    assert made.params == ("docs", "prefix")
    assert made.output == "summaries"
    assert "Map 'summaries'" in repr(made)


async def test_a_map_runs_only_in_a_flow() -> None:
    @step
    async def one(doc: int) -> int:
        return doc

    with pytest.raises(StepDefinitionError, match="only inside a flow"):
        await map_(one, over="docs", into="out")(docs=[1])


def test_bad_maps_are_refused_when_built() -> None:
    @step
    async def two(doc: int, other: int) -> int:
        return doc

    @step
    async def first(doc: int) -> int:
        return doc

    @step
    async def second(doc: int) -> int:
        return doc

    with pytest.raises(StepDefinitionError, match="`item=`"):
        map_(two, over="docs", into="out")
    with pytest.raises(StepDefinitionError, match="never reads"):
        map_(two, over="docs", item="nope", into="out")
    with pytest.raises(StepDefinitionError, match="`result=`"):
        map_([first, second], over="docs", into="out")
    with pytest.raises(StepDefinitionError, match="not produced"):
        map_(first, over="docs", into="out", result="nope")
    with pytest.raises(StepDefinitionError, match="both 'doc'"):
        map_(first, over="doc", into="out")
    with pytest.raises(ConfigurationError, match="`max_parallel` must be"):
        map_(first, over="docs", into="out", max_parallel=0)
    with pytest.raises(ConfigurationTypeError, match="`max_parallel` must be"):
        map_(first, over="docs", into="out", max_parallel=True)
    with pytest.raises(ConfigurationError, match="`on_error` must be"):
        map_(first, over="docs", into="out", on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="`into` must be"):
        map_(first, over="docs", into="not a name")
    with pytest.raises(ConfigurationTypeError, match="`over` must be"):
        map_(first, over=3, into="out")  # type: ignore[arg-type]


def saved(folder: Path) -> list[Path]:
    """The result files in `folder` (a blocking listing, kept out of the async tests)."""
    return sorted(folder.glob("*.json"))


def resumable(calls: list[int], folder: Path, *, broken: frozenset[int], **options: Any) -> Flow:
    @step
    async def summarize(doc: int) -> dict[str, Any]:
        calls.append(doc)
        await trio.sleep(1 + doc)
        if doc in broken:
            raise ValueError(f"doc {doc} is unreadable")
        return {"doc": doc, "summary": f"s{doc}"}

    return Flow([map_(summarize, over="docs", into="summaries", checkpoint=folder, **options)])


@pytest.mark.parametrize("mode", ["sequential", "parallel"])
async def test_a_resumable_map_skips_the_items_an_earlier_run_finished(
    mode: str, tmp_path: Path, autojump_clock: MockClock
) -> None:
    calls: list[int] = []
    with pytest.raises(StepFailedError, match="doc 2 is unreadable"):
        await resumable(calls, tmp_path, broken=frozenset({2}), max_parallel=1).run(
            docs=[0, 1, 2, 3], mode=mode
        )
    assert calls == [0, 1, 2]
    assert len(saved(tmp_path)) == 2  # items 0 and 1, each written as it ended
    calls.clear()
    result = await resumable(calls, tmp_path, broken=frozenset()).run(docs=[3, 1, 0, 2], mode=mode)
    assert sorted(calls) == [2, 3]
    assert [r["summary"] for r in result.outputs["summaries"]] == ["s3", "s1", "s0", "s2"]
    resumed = [(e.branch, e.status) for e in result.trace if e.step == "summaries.resumed"]
    assert resumed == [("summaries[1]", StepStatus.CACHED), ("summaries[2]", StepStatus.CACHED)]
    calls.clear()
    again = await resumable(calls, tmp_path, broken=frozenset()).run(docs=[0, 1, 2, 3])
    assert calls == []
    assert [r["doc"] for r in again.outputs["summaries"]] == [0, 1, 2, 3]


async def test_a_resumable_map_keeps_what_finished_before_a_cancellation(
    tmp_path: Path, autojump_clock: MockClock
) -> None:
    calls: list[int] = []
    outside = trio.CancelScope()

    @step
    async def summarize(doc: int) -> int:
        calls.append(doc)
        if doc == 2:
            # Cancelled from outside while item 2 runs: items 0 and 1 have ended. (Not a
            # deadline: the clock jumps ahead while the map's files are read in a thread.)
            outside.cancel()
        await trio.sleep(1)
        return doc

    flow = Flow([map_(summarize, over="docs", into="out", checkpoint=tmp_path, max_parallel=1)])
    with outside:
        await flow.run(docs=[0, 1, 2, 3])
    assert outside.cancelled_caught
    assert calls == [0, 1, 2]
    assert len(saved(tmp_path)) == 2
    calls.clear()
    result = await flow.run(docs=[0, 1, 2, 3])
    assert calls == [2, 3]
    assert result.outputs["out"] == (0, 1, 2, 3)


async def test_collected_failures_are_not_saved_and_run_again(
    tmp_path: Path, autojump_clock: MockClock
) -> None:
    calls: list[int] = []
    first = await resumable(calls, tmp_path, broken=frozenset({1}), on_error="collect").run(
        docs=[0, 1]
    )
    assert isinstance(first.outputs["summaries"][1], ItemFailed)
    calls.clear()
    second = await resumable(calls, tmp_path, broken=frozenset(), on_error="collect").run(
        docs=[0, 1]
    )
    assert calls == [1]
    assert second.outputs["summaries"][1] == {"doc": 1, "summary": "s1"}


async def test_a_result_that_is_not_json_fails_the_map_naming_the_item(
    tmp_path: Path, autojump_clock: MockClock
) -> None:
    @step
    async def keep(doc: int) -> object:
        return {doc}

    flow = Flow([map_(keep, over="docs", into="kept", checkpoint=tmp_path)])
    with pytest.raises(StepFailedError, match="item 0 cannot be written") as caught:
        await flow.run(docs=[0])
    assert caught.value.step == "kept"


async def test_a_damaged_result_file_is_ignored(tmp_path: Path, autojump_clock: MockClock) -> None:
    calls: list[int] = []
    await resumable(calls, tmp_path, broken=frozenset()).run(docs=[0])
    (written,) = saved(tmp_path)
    await trio.Path(written).write_text("{not json")
    calls.clear()
    result = await resumable(calls, tmp_path, broken=frozenset()).run(docs=[0])
    assert calls == [0]
    assert result.outputs["summaries"] == ({"doc": 0, "summary": "s0"},)


def test_a_checkpoint_must_be_a_path() -> None:
    @step
    async def one(doc: int) -> int:
        return doc

    with pytest.raises(ConfigurationTypeError, match="`checkpoint` must be"):
        map_(one, over="docs", into="out", checkpoint=3)  # type: ignore[arg-type]


async def test_a_router_in_each_item_speculates_as_its_policy_says(
    autojump_clock: MockClock,
) -> None:
    @step
    async def kind(doc: int) -> Route:
        await trio.sleep(2)
        return Route("even" if doc % 2 == 0 else "odd")

    @step(output="label")
    async def even(doc: int) -> str:
        await trio.sleep(1)
        return f"{doc} is even"

    @step(output="label")
    async def odd(doc: int) -> str:
        await trio.sleep(1)
        return f"{doc} is odd"

    labelled = map_([router(kind, {"even": [even], "odd": [odd]})], over="docs", into="labels")
    flow = Flow([labelled])
    assert flow.routers == {"kind": ("even", "odd")}
    result = await flow.run(docs=[1, 2], speculate=Branches({"kind": ["even"]}))
    assert result.outputs["labels"] == ("1 is odd", "2 is even")
    # Item 1 guessed wrong (3 s: its odd branch starts when the router answers), item 2
    # guessed right (2 s); the wrong guess is wasted.
    assert result.wall_time == 3
    wasted = [(e.step, e.branch) for e in result.trace if e.wasted]
    assert wasted == [("even", "labels[0]/kind:even")]


def planned(plans: dict[str, list[str]], log: list[str], *, effect: bool = False) -> Flow:
    """`plan` (2 s, semantically cached) lists sub-tasks; a map runs `work` (1 s, an effect
    if asked) on each; `join` reads the results. `log` records each finished `work`."""

    @step(cache=CacheOptions(semantic="request"), estimated_seconds=2.0)
    async def plan(request: str) -> list[str]:
        await trio.sleep(2)
        return plans[request]

    @step(effect=effect)
    async def work(task: str) -> str:
        await trio.sleep(1)
        log.append(f"{task} at {trio.current_time()}")
        return task.upper()

    @step
    async def join(done: tuple[str, ...]) -> str:
        return "+".join(done)

    return Flow([plan, map_(work, over="plan", item="task", into="done"), join])


async def run_on_near_match(real: list[str], log: list[str], **options: Any) -> RunResult:
    """Store `plan` for "Plan a trip?", then ask "plan a trip" (a near match) whose real
    plan is `real`; `log` keeps only the second run's work."""
    plans = {"Plan a trip?": ["a", "b"], "plan a trip": real}
    flow = planned(plans, log, **options)
    async with open_cache(embedder=HashingEmbedder()) as cache:
        await flow.run(request="Plan a trip?", cache=cache, speculate=Always())
        log.clear()
        return await flow.run(request="plan a trip", cache=cache, speculate=Always())


async def test_a_map_starts_its_items_on_a_predicted_list(autojump_clock: MockClock) -> None:
    log: list[str] = []
    result = await run_on_near_match(["a", "b"], log)
    # The items ran on the near match's list beside `plan` (0-1 s of its 2 s) and were kept.
    assert result.outputs["join"] == "A+B"
    assert result.wall_time == 2
    start = result.started
    assert sorted(log) == [f"a at {start + 1}", f"b at {start + 1}"]
    branches = {e.branch for e in result.trace if e.step == "work"}
    assert branches == {"plan:predicted/done[0]", "plan:predicted/done[1]"}
    assert result.wasted_time == 0
    assert [(g.step, g.confirmed) for g in result.predicted_values] == [("plan", True)]


async def test_a_refuted_list_keeps_the_items_it_shares_with_the_real_one(
    autojump_clock: MockClock,
) -> None:
    log: list[str] = []
    result = await run_on_near_match(["c", "a", "a"], log)
    assert result.outputs["join"] == "C+A+A"
    start = result.started
    # `a` finished on the guess (1 s) and is taken once; `c` and the second `a` run after
    # `plan` (2-3 s); `b` was wasted.
    assert sorted(log) == [
        f"a at {start + 1}",
        f"a at {start + 3}",
        f"b at {start + 1}",
        f"c at {start + 3}",
    ]
    entries = [
        (e.step, e.branch, e.status, e.wasted)
        for e in result.trace
        if e.branch.startswith(("done", "plan:predicted/done"))
    ]
    assert ("done.reused", "done[1]", StepStatus.OK, False) in entries
    assert ("work", "plan:predicted/done[0]", StepStatus.OK, False) in entries  # used after all
    assert ("work", "plan:predicted/done[1]", StepStatus.OK, True) in entries  # `b`
    assert result.wasted_time == 1
    reused = next(e for e in result.trace if e.step == "done.reused")
    earlier = result.trace[reused.waited_on[-1]]
    assert (earlier.step, earlier.branch) == ("work", "plan:predicted/done[0]")


async def test_an_item_effect_never_runs_on_a_refuted_list(autojump_clock: MockClock) -> None:
    log: list[str] = []
    result = await run_on_near_match(["a", "c"], log, effect=True)
    # Effects wait for the guess: none ran on it, so nothing is taken; both run after `plan`.
    assert result.outputs["join"] == "A+C"
    assert sorted(log) == [f"a at {result.started + 3}", f"c at {result.started + 3}"]
    assert not [e for e in result.trace if e.step == "done.reused"]
