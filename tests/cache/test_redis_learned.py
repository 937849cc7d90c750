"""`SharedLearnedState` (`cache/_redis_learned.py`): workers on one real redis-server learn
once. Counts add up exactly across concurrent states, a retried batch counts once, an
outage never reaches a run, and the totals can be read and reset."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import attrs
import pytest
import trio
from specroute.cache import (
    CacheConfigError,
    RedisConnection,
    RedisUnavailableError,
    SharedLearnedState,
    open_redis,
    open_shared_learned,
    read_shared_learned,
    reset_shared_learned,
)
from specroute.engine import Flow, router, step
from specroute.routes import LearnedFigure, LearnedState, Route, RouteStatistics

from tests.routes.test_learned import LABELS, view_of

if TYPE_CHECKING:
    from tests.conftest import RedisServer


def record(state: LearnedState, rng: random.Random, expected: dict[LearnedFigure, Any]) -> None:
    """One worker's observation of each kind, tallied in `expected`."""
    label = rng.choice(LABELS)
    RouteStatistics(decay=1.0).observe(view_of(state), {}, label)
    confirmed = rng.random() < 0.7
    state.router("decide").calibration.record(0.95, confirmed)
    state.step("extract").record(confirmed)
    memory = state.router("decide").predictor
    memory["asked"] = memory.get("asked", 0) + 1
    field = "confirmed" if confirmed else "refuted"
    for figure, amount in (
        (LearnedFigure("predictor", "decide", ("counts", None, label)), 1.0),
        (LearnedFigure("predictor", "decide", ("asked",)), 1),
        (LearnedFigure("calibration", "decide", (0.01, 95, field)), 1),
        (LearnedFigure("step", "extract", (field,)), 1),
    ):
        expected[figure] = expected.get(figure, 0) + amount


async def test_concurrent_workers_add_up_exactly(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    expected: dict[LearnedFigure, Any] = {}
    pushed: list[int] = []

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        async with (
            open_redis(redis_server.url, timeout=5) as redis,
            open_shared_learned(redis, key="k", interval=0.005, prefix=redis_prefix) as state,
        ):
            for _ in range(150):
                record(state, rng, expected)
                await trio.sleep(rng.random() * 0.002)
                if rng.random() < 0.05:
                    await state.sync()
            pushed.append(state.statistics().pushed)

    async with trio.open_nursery() as nursery:
        for seed in range(5):
            nursery.start_soon(worker, seed)
    async with open_redis(redis_server.url) as redis:
        totals = await read_shared_learned(redis, key="k", prefix=redis_prefix)
        # A worker that starts now starts from the totals.
        async with open_shared_learned(redis, key="k", prefix=redis_prefix) as late:
            assert late.figures() == expected
    assert totals.figures() == expected
    assert totals.step("extract").settled == 5 * 150
    # Each worker pushed in many batches, interleaved with the others'.
    assert min(pushed) > 10


async def test_a_worker_sees_what_another_learned(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    async with (
        open_redis(redis_server.url) as redis,
        open_shared_learned(redis, key="k", prefix=redis_prefix) as one,
        open_shared_learned(redis, key="k", prefix=redis_prefix) as two,
    ):
        assert isinstance(one, LearnedState)
        stats = RouteStatistics(decay=1.0, bucket=lambda inputs: (inputs["lang"], 1))
        for _ in range(3):
            stats.observe(view_of(one), {"lang": "en"}, "slow")
        await one.sync()
        await two.sync()
        assert two.router("decide").predictor == {"counts": {("en", 1): {"slow": 3.0}}}
        assert stats.probabilities(view_of(two), {"lang": "en"}) == {"fast": 0.2, "slow": 0.8}
        assert two.statistics().pulled >= 1


async def test_a_retried_batch_counts_once(redis_server: RedisServer, redis_prefix: str) -> None:
    @attrs.define(eq=False)
    class ReplyLostOnce(RedisConnection):
        """Runs each script on the real server, but loses the first push's reply."""

        lost: int = 0

        async def evaluate(self, script: Any, keys: list[str], args: list[Any]) -> Any:
            reply = await super().evaluate(script, keys, args)
            if self.lost == 0 and len(args) > 5:
                self.lost += 1
                raise RedisUnavailableError("reply lost on the way back")
            return reply

    async with open_redis(redis_server.url) as plain:
        lossy = ReplyLostOnce(client=plain.client)
        async with open_shared_learned(lossy, key="k", interval=60, prefix=redis_prefix) as state:
            state.step("extract").record(confirmed=True)
            assert not await state.sync()  # applied in Redis, but the worker cannot know
            assert state.statistics().pending
            state.step("extract").record(confirmed=True)
            assert await state.sync()  # the same batch again: skipped, acknowledged
            assert await state.sync()  # then the second count
            assert lossy.lost == 1
            assert state.statistics().pushed == 2
        totals = await read_shared_learned(plain, key="k", prefix=redis_prefix)
    assert totals.step("extract").confirmed == 2


@pytest.mark.filterwarnings("ignore:Unclosed <MemoryObject:ResourceWarning")
async def test_an_outage_keeps_learning_locally_and_pushes_when_redis_is_back(
    private_redis_server: RedisServer, redis_prefix: str
) -> None:
    async with (
        open_redis(private_redis_server.url, timeout=0.2) as redis,
        open_shared_learned(redis, key="k", interval=60, prefix=redis_prefix) as state,
        open_shared_learned(redis, key="k", interval=60, prefix=redis_prefix) as other,
    ):
        state.step("extract").record(confirmed=True)
        assert await state.sync()
        # `state` does not see this before Redis goes: its copy will lack it.
        other.step("summarise").record(confirmed=True)
        assert await other.sync()
        private_redis_server.stop()
        for _ in range(3):
            state.step("extract").record(confirmed=False)
        assert not await state.sync()
        assert state.statistics().failed_syncs >= 1
        # Runs go on reading and writing the local copy.
        assert (state.step("extract").confirmed, state.step("extract").refuted) == (1, 3)
        private_redis_server.start()
        # Redis came back empty: the first worker to sync seeds it from its copy, and the
        # other pushes again what it had applied after that copy's version.
        with trio.fail_after(5):
            for _ in range(100):  # retrying the sync is the point
                if await state.sync():
                    break
                await trio.sleep(0.05)
        assert state.statistics().reseeded == 1
        assert await other.sync()
        assert await state.sync()
        for worker in (state, other):
            assert worker.step("extract").confirmed == 1
            assert worker.step("extract").refuted == 3
            assert worker.step("summarise").confirmed == 1
        totals = await read_shared_learned(redis, key="k", prefix=redis_prefix)
    assert totals.figures() == state.figures()


async def test_reset_on_one_worker_or_in_redis_reaches_every_worker(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    async with (
        open_redis(redis_server.url) as redis,
        open_shared_learned(redis, key="k", interval=60, prefix=redis_prefix) as one,
        open_shared_learned(redis, key="k", interval=60, prefix=redis_prefix) as two,
    ):
        for state in (one, two):
            state.step("extract").record(confirmed=True)
            state.step("summarise").record(confirmed=True)
            state.router("decide").calibration.record(0.9, confirmed=True)
            await state.sync()
        await one.sync()
        assert one.step("extract").confirmed == 2
        # A local reset is a change like any other: it takes away what this worker saw.
        one.reset(step="extract")
        await one.sync()
        await two.sync()
        assert two.step("extract").settled == 0
        assert two.step("summarise").confirmed == 2
        # Clearing in Redis reaches the workers at their next sync.
        await reset_shared_learned(redis, key="k", router="decide", prefix=redis_prefix)
        await one.sync()
        assert one.router("decide").calibration.totals() == (0, 0)
        assert one.step("summarise").confirmed == 2
        await reset_shared_learned(redis, key="k", prefix=redis_prefix)
        two.step("summarise").record(confirmed=False)
        await two.sync()
        assert two.figures() == {LearnedFigure("step", "summarise", ("refuted",)): 1}
        totals = await read_shared_learned(redis, key="k", prefix=redis_prefix)
        assert totals.figures() == two.figures()


async def test_runs_learn_into_the_shared_state(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    @step(name="decide")
    async def decide(request: str) -> Route:
        return Route(request)

    @step(output="answer")
    async def work(request: str) -> str:
        return request

    branches: dict[str, Any] = {label: Flow([work], name=label) for label in LABELS}
    flow = Flow([router(decide, branches, predictor=RouteStatistics(decay=1.0))], name="f")
    async with (
        open_redis(redis_server.url) as redis,
        open_shared_learned(redis, key="k", prefix=redis_prefix) as one,
        open_shared_learned(redis, key="k", prefix=redis_prefix) as two,
    ):
        await flow.run(request="slow", learned=one)
        await flow.run(request="slow", learned=two)
        await flow.run(request="fast", learned=two)
    async with open_redis(redis_server.url) as redis:
        totals = await read_shared_learned(redis, key="k", prefix=redis_prefix)
    assert totals.router("decide").predictor == {"counts": {None: {"slow": 2.0, "fast": 1.0}}}


async def test_unshareable_numbers_stay_local(redis_server: RedisServer, redis_prefix: str) -> None:
    async with (
        open_redis(redis_server.url) as redis,
        open_shared_learned(redis, key="k", prefix=redis_prefix) as state,
    ):
        state.router("decide").predictor["counts"] = {frozenset({"a"}): {"fast": 1.0}}
        state.router("decide").predictor["asked"] = 4
        await state.sync()
        assert state.statistics().unshared == 1
        totals = await read_shared_learned(redis, key="k", prefix=redis_prefix)
        assert totals.router("decide").predictor == {"asked": 4}
        assert frozenset({"a"}) in state.router("decide").predictor["counts"]


async def test_snapshot_is_plain_and_errors_say_how_to_fix(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    async with open_redis(redis_server.url) as redis:
        with pytest.raises(CacheConfigError, match="`key` must be a non-empty str"):
            async with open_shared_learned(redis, key=""):
                pass
        with pytest.raises(CacheConfigError, match="`interval` must be a number"):
            async with open_shared_learned(redis, key="k", interval=0):
                pass
        state = None
        with pytest.raises(ValueError, match="mine"):  # noqa: PT012  # raised in the block
            async with open_shared_learned(redis, key="k", prefix=redis_prefix) as state:
                state.step("s").record(confirmed=True)
                raise ValueError("mine")
        assert state is not None
        snapshot = state.snapshot()
        assert type(snapshot) is LearnedState
        assert snapshot.step("s").confirmed == 1
        with pytest.raises(CacheConfigError, match="inside `async with open_shared_learned"):
            await state.sync()
        assert isinstance(state, SharedLearnedState)
        assert state.statistics().syncs >= 2  # on the way in and on the way out
        with pytest.raises(CacheConfigError, match="not by calling the class"):
            await SharedLearnedState().sync()
        # What was recorded before the block ended was pushed on the way out.
        totals = await read_shared_learned(redis, key="k", prefix=redis_prefix)
        assert totals.step("s").confirmed == 1


async def test_addresses_round_trip_through_redis(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    odd = 'router "one", two'
    keys: list[Any] = [None, True, 2, 2.5, -3, 'é " ,]', ("en", (1, None)), ()]
    async with (
        open_redis(redis_server.url) as redis,
        open_shared_learned(redis, key="k", prefix=redis_prefix) as state,
    ):
        memory = state.router(odd).predictor
        for n, key in enumerate(keys, 1):
            memory.setdefault("by key", {})[key] = n
        memory["float"] = 0.1
        state.router("other").predictor["asked"] = 1
        await state.sync()
        totals = await read_shared_learned(redis, key="k", prefix=redis_prefix)
        assert totals.figures() == state.figures()
        stored = totals.router(odd).predictor["by key"]
        assert {(type(key), key) for key in stored} == {(type(key), key) for key in keys}
        # Clearing one router matches its name exactly, quotes and commas included.
        await reset_shared_learned(redis, key="k", router=odd, prefix=redis_prefix)
        totals = await read_shared_learned(redis, key="k", prefix=redis_prefix)
        assert totals.figures() == {LearnedFigure("predictor", "other", ("asked",)): 1}


async def test_decayed_statistics_merge_close_to_one_process(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    stats = RouteStatistics(decay=0.99)
    alone = LearnedState()
    rng = random.Random(7)
    async with (
        open_redis(redis_server.url) as redis,
        open_shared_learned(redis, key="k", interval=60, prefix=redis_prefix) as one,
        open_shared_learned(redis, key="k", interval=60, prefix=redis_prefix) as two,
    ):
        for round_ in range(40):
            # The traffic drifts from "fast" to "slow" halfway.
            weights = (3, 1) if round_ < 20 else (1, 3)
            for worker in (one, two):
                for label in rng.choices(LABELS, weights=weights, k=5):
                    stats.observe(view_of(worker), {}, label)
                    stats.observe(view_of(alone), {}, label)
                await worker.sync()
        await one.sync()
        shared = stats.probabilities(view_of(one), {})
    expected = stats.probabilities(view_of(alone), {})
    # Ten observations per interval at decay 0.99: equal to first order (see the module).
    assert shared["slow"] == pytest.approx(expected["slow"], abs=0.02)
    assert shared["slow"] > 0.6
    totals = sum(one.router("decide").predictor["counts"][None].values())
    assert totals == pytest.approx(
        sum(alone.router("decide").predictor["counts"][None].values()), rel=0.05
    )


async def test_two_workers_resetting_the_same_counts_never_go_below_zero(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    async with (
        open_redis(redis_server.url) as redis,
        open_shared_learned(redis, key="k", interval=60, prefix=redis_prefix) as one,
        open_shared_learned(redis, key="k", interval=60, prefix=redis_prefix) as two,
    ):
        one.step("extract").record(confirmed=True)
        await one.sync()
        await two.sync()
        # Both take away the one count they saw: the totals would be -1.
        one.reset()
        two.reset()
        await one.sync()
        await two.sync()
        assert two.step("extract").confirmed == 0
        await one.sync()
        await two.sync()
        assert one.step("extract").confirmed == two.step("extract").confirmed == 0
        totals = await read_shared_learned(redis, key="k", prefix=redis_prefix)
        assert totals.figures() == {}
        # And counting goes on from zero.
        one.step("extract").record(confirmed=True)
        await one.sync()
        await two.sync()
        assert two.step("extract").confirmed == 1
