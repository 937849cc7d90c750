"""Steps served from the cache: hits in the trace, known routes, speculation never stores."""

from __future__ import annotations

import socket  # noqa: TC003 -- the step annotation below is resolved at run time
from typing import TYPE_CHECKING

import pytest
import trio
from specroute.cache import CacheOptions, HashingEmbedder, open_cache
from specroute.engine import Flow, Step, StepStatus, router, step
from specroute.routes import (
    Always,
    Never,
    Route,
    SpecrouteError,
    StepDefinitionError,
    StepFailedError,
)

if TYPE_CHECKING:
    from trio.testing import MockClock


def planner(calls: list[str], *, fail_think: bool = False) -> Flow:
    @step(cache=CacheOptions(semantic="request"))
    async def decide(request: str) -> Route:
        calls.append("decide")
        await trio.sleep(0.5)
        return Route("known", answer="saved") if "known" in request else Route("new")

    @step(output="answer", cache=CacheOptions())
    async def think(request: str) -> str:
        calls.append("think")
        await trio.sleep(1)
        if fail_think:
            raise RuntimeError("model down")
        return f"answer to {request}"

    return Flow(
        [
            router(
                decide,
                {"known": Flow([], outputs=["answer"]), "new": Flow([think])},
                handoff={"known": ["answer"]},
            )
        ]
    )


async def test_second_run_is_served_from_the_cache(autojump_clock: MockClock) -> None:
    calls: list[str] = []
    flow = planner(calls)
    async with open_cache(embedder=HashingEmbedder()) as cache:
        cold = await flow.run(request="write a poem", cache=cache, speculate=Always())
        warm = await flow.run(request="write a poem", cache=cache, speculate=Always())
    assert cold.outputs == warm.outputs == {"answer": "answer to write a poem"}
    assert calls == ["think", "decide"] or calls == ["decide", "think"]
    assert [e.status for e in warm.trace] == [StepStatus.CACHED, StepStatus.CACHED]
    assert (warm.cache_hits, warm.cache_misses) == (2, 0)
    assert warm.cache_saved_time == pytest.approx(1.5)
    assert warm.wall_time == 0
    # A route known from the cache starts nothing speculatively and wastes nothing.
    assert not any(e.speculative for e in warm.trace)
    assert warm.wasted_time == 0


async def test_losing_branch_never_writes_the_cache(autojump_clock: MockClock) -> None:
    calls: list[str] = []

    @step(cache=CacheOptions())
    async def decide(request: str) -> Route:
        await trio.sleep(2)
        return Route(request)

    @step(output="answer", cache=CacheOptions())
    async def slow(request: str) -> str:
        calls.append("slow")
        await trio.sleep(1)  # finishes before the router decides, then loses
        return "slow answer"

    @step(output="answer")
    async def fast() -> str:
        return "fast answer"

    flow = Flow([router(decide, {"slow": Flow([slow]), "fast": Flow([fast])})])
    async with open_cache() as cache:
        lost = await flow.run(request="fast", cache=cache, speculate=Always())
        assert lost.outputs == {"answer": "fast answer"}
        stores_after_loss = cache.statistics().stores
        won = await flow.run(request="slow", cache=cache, speculate=Always())
    assert stores_after_loss == 1  # only the router's decision, not the loser's value
    assert won.outputs == {"answer": "slow answer"}
    assert calls == ["slow", "slow"]  # the speculative result was not kept


async def test_failed_computation_is_not_cached(autojump_clock: MockClock) -> None:
    calls: list[str] = []
    flow = planner(calls, fail_think=True)
    async with open_cache() as cache:
        for _ in range(2):
            with pytest.raises(StepFailedError, match="model down"):
                await flow.run(request="new thing", cache=cache)
    assert calls.count("think") == 2


async def test_semantic_router_hit_is_verified_by_default(autojump_clock: MockClock) -> None:
    flow = planner([])
    async with open_cache(embedder=HashingEmbedder()) as cache:
        await flow.run(request="known: generate the changelog", cache=cache)
        agrees = await flow.run(
            request="known: Generate the changelog!", cache=cache, speculate=Never()
        )
        # A near match the real router disagrees with: "Known" is not "known" to it.
        disagrees = await flow.run(
            request="Known: generate the changelog!", cache=cache, speculate=Never()
        )
    decision = agrees.decisions[0]
    assert decision.cache == "semantic (verified)"
    assert decision.similarity is not None
    assert decision.similarity >= 0.95
    assert decision.plan == {"known": None}  # the predicted branch started at once
    assert decision.right
    assert agrees.outputs == {"answer": "saved"}
    denied = disagrees.decisions[0]
    assert denied.cache == "semantic (verified)"
    assert denied.right is False
    # The result is what the real router says, never the near match's answer.
    assert disagrees.outputs == {"answer": "answer to Known: generate the changelog!"}
    assert disagrees.route == "new"


async def test_trusted_semantic_hit_is_served(autojump_clock: MockClock) -> None:
    @step(cache=CacheOptions(semantic="request", on_semantic_hit="trust"))
    async def decide(request: str) -> Route:
        await trio.sleep(0.5)
        return Route("only")

    flow = Flow([router(decide, {"only": Flow([])})])
    async with open_cache(embedder=HashingEmbedder()) as cache:
        await flow.run(request="generate the changelog", cache=cache)
        warm = await flow.run(request="Generate the changelog!", cache=cache)
    hit = warm.trace[0]
    assert hit.status is StepStatus.CACHED
    assert hit.similarity is not None
    assert warm.decisions[0].cache == "semantic"


async def test_tenants_do_not_share_entries(autojump_clock: MockClock) -> None:
    calls: list[str] = []
    flow = planner(calls)
    async with open_cache() as cache:
        await flow.run(request="known", cache=cache, namespace="acme")
        other = await flow.run(request="known", cache=cache, namespace="globex")
    assert other.cache_hits == 0
    assert calls.count("decide") == 2


def test_cache_option_naming_an_unknown_input_is_refused() -> None:
    with pytest.raises(StepDefinitionError, match=r"names input 'text'"):

        @step(cache=CacheOptions(semantic="text"))
        async def embed_me(request: str) -> str:
            return request


def test_input_that_can_never_be_a_key_is_refused() -> None:
    with pytest.raises(StepDefinitionError, match=r"input 'lock'.*cache key"):

        @step(cache=CacheOptions())
        async def locked(request: str, lock: socket.socket) -> str:
            return request


def test_unannotated_inputs_may_be_cached() -> None:
    @step(cache=CacheOptions())
    async def plain(request):  # type: ignore[no-untyped-def]
        return request

    assert plain.options.cache is not None


def summarizer(answer: str, *, cache_name: str | None = None) -> Step:
    """A cached step named `summarize` whose function is new on every call."""

    @step(name="summarize", cache=CacheOptions(name=cache_name))
    async def summarize(text: str) -> str:
        await trio.sleep(1)
        return answer

    return summarize


@step(name="summarize", cache=CacheOptions())
async def short_summary(text: str) -> str:
    return "SHORT"


@step(name="summarize", cache=CacheOptions())
async def long_summary(text: str) -> str:
    return "LONG"


async def test_two_functions_named_alike_never_share_entries(autojump_clock: MockClock) -> None:
    async with open_cache() as cache:
        first = await Flow([short_summary]).run(text="a report", cache=cache)
        second = await Flow([long_summary]).run(text="a report", cache=cache)
    assert first.outputs == {"summarize": "SHORT"}
    assert second.outputs == {"summarize": "LONG"}
    assert second.cache_hits == 0


async def test_factory_made_steps_are_told_apart_by_name(autojump_clock: MockClock) -> None:
    def summarizer_named(name: str) -> Step:
        @step(name=name, output="summary", cache=CacheOptions())
        async def summarize(text: str) -> str:
            return name

        return summarize

    async with open_cache() as cache:
        await Flow([summarizer_named("brief")]).run(text="a report", cache=cache)
        second = await Flow([summarizer_named("detailed")]).run(text="a report", cache=cache)
    assert second.outputs == {"summary": "detailed"}
    assert second.cache_hits == 0


async def test_an_explicit_cache_name_shares_entries(autojump_clock: MockClock) -> None:
    short, long = (
        summarizer("SHORT", cache_name="summary"),
        summarizer("LONG", cache_name="summary"),
    )
    async with open_cache() as cache:
        await Flow([short]).run(text="a report", cache=cache)
        second = await Flow([long]).run(text="a report", cache=cache)
    assert second.outputs == {"summarize": "SHORT"}
    assert second.cache_hits == 1


async def test_what_an_answer_depends_on_is_in_the_key(autojump_clock: MockClock) -> None:
    def answerer(model: str) -> Step:
        async def answer(question: str) -> str:
            return f"{model} says 42"

        return step(cache=CacheOptions(depends_on={"model": model}))(answer)

    async with open_cache() as cache:
        small = await Flow([answerer("small")]).run(question="why", cache=cache)
        large = await Flow([answerer("large")]).run(question="why", cache=cache)
        again = await Flow([answerer("large")]).run(question="why", cache=cache)
    assert (small.cache_hits, large.cache_hits, again.cache_hits) == (0, 0, 1)
    assert large.outputs == again.outputs == {"answer": "large says 42"}


@pytest.mark.parametrize("namespace", [None, 0, "", ("acme",), ["acme"], b"acme"])
async def test_a_namespace_must_be_a_non_empty_str(namespace: object) -> None:
    calls: list[str] = []
    flow = planner(calls)
    async with open_cache() as cache:
        with pytest.raises(SpecrouteError, match=r"`namespace` must be a non-empty str") as info:
            await flow.run(request="hi", cache=cache, namespace=namespace)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert repr(namespace) in str(info.value)
    assert calls == []


async def test_a_namespace_is_checked_without_a_cache() -> None:
    flow = planner([])
    with pytest.raises(SpecrouteError, match=r"`namespace`"):
        await flow.run(request="hi", namespace="", mode="sequential")
