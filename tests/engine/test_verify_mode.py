"""Trust against verify on labelled near duplicates: verify never serves a wrong answer.

Each pair stores its first request's route, then asks the second. In trust mode a near
match *is* the answer, so a near miss ("enable X" stored, "disable X" asked) is served the
wrong route. In verify mode the near match only predicts the route: the real router always
decides, and the predicted branch has a head start when it was right.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import pytest
import trio
from specroute.cache import CacheOptions, HashingEmbedder, open_cache
from specroute.engine import Flow, router, step
from specroute.routes import Never, Route

from tests.near_duplicates import pairs, understand

if TYPE_CHECKING:
    from trio.testing import MockClock


INTENTS = sorted({understand(text) for pair in pairs() for text in pair[:2]})


def make_flow(mode: Literal["trust", "verify"], threshold: float) -> Flow:
    options = CacheOptions(semantic="request", on_semantic_hit=mode, threshold=threshold)

    @step(cache=options)
    async def discover(request: str) -> Route:
        await trio.sleep(0.5)
        return Route(understand(request))  # one branch per intent: the label is the answer

    def act(intent: str) -> Flow:
        # One function per branch, so one name per branch: a name is one step's identity.
        @step(name=f"do_{INTENTS.index(intent)}", output="answer")
        async def do() -> str:
            await trio.sleep(1)
            return f"did {intent}"

        return Flow([do], name=intent)

    return Flow([router(discover, {intent: act(intent) for intent in INTENTS})])


async def measure(mode: Literal["trust", "verify"], threshold: float) -> dict[str, float]:
    flow = make_flow(mode, threshold)
    hits = wrong = 0
    saved = wasted = 0.0
    for stored, asked, _same in pairs():
        async with open_cache(embedder=HashingEmbedder()) as cache:
            await flow.run(request=stored, cache=cache, speculate=Never())
            result = await flow.run(request=asked, cache=cache, speculate=Never())
        hits += result.decisions[0].cache is not None
        wrong += result.outputs["answer"] != f"did {understand(asked)}"
        saved += 1.5 - result.wall_time  # cold: the router's 0.5 s, then the branch's 1 s
        wasted += result.wasted_time
    return {"hits": hits, "wrong": wrong, "saved_s": saved, "wasted_s": wasted}


@pytest.mark.parametrize("threshold", [0.95, 0.85])
async def test_verify_never_serves_a_wrong_answer(
    autojump_clock: MockClock, record_property: pytest.RecordProperty, threshold: float
) -> None:
    trust = await measure("trust", threshold)
    verify = await measure("verify", threshold)
    for name, figures in (("trust", trust), ("verify", verify)):
        for key, value in figures.items():
            record_property(f"{name}_{key}@{threshold}", value)
    assert len(pairs()) >= 180
    # Verify mode finds the same near matches and never returns a wrong answer ...
    assert verify["hits"] == trust["hits"] > 0
    assert verify["wrong"] == 0
    # ... and still hides the router's half second on every near match it confirms.
    assert verify["saved_s"] > 0
    if threshold < 0.9:
        # At a looser threshold trust mode serves near misses as if they were the same.
        assert trust["wrong"] > 0
        assert verify["wasted_s"] > 0  # what catching them cost: cancelled head starts
