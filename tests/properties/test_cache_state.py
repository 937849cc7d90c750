"""The exact cache against a plain dict model: puts, gets, TTL expiry, LRU, namespaces."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from specroute.cache import CacheKey, ExactCache, ExactCacheConfig, make_key

MAXSIZE = 4
TTL = 10.0
NAMESPACES = st.sampled_from(["acme", "globex"])
NUMBERS = st.integers(0, 6)


class FakeTimer:
    """A clock the machine moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def key_of(namespace: str, n: int) -> CacheKey:
    return make_key("step", "1", namespace, {"n": n})


class ExactCacheMachine(RuleBasedStateMachine):
    """Every step, the cache holds exactly the live entries of the model, in LRU order."""

    def __init__(self) -> None:
        super().__init__()
        self.timer = FakeTimer()
        self.cache = ExactCache(ExactCacheConfig(maxsize=MAXSIZE, ttl=TTL), timer=self.timer)
        # key -> (value, expires); insertion order is recency order, oldest first.
        self.model: dict[tuple[str, int], tuple[Any, float]] = {}

    def expire(self) -> None:
        now = self.timer.now
        self.model = {k: entry for k, entry in self.model.items() if now < entry[1]}

    @rule(namespace=NAMESPACES, n=NUMBERS, payload=st.integers())
    def put(self, namespace: str, n: int, payload: int) -> None:
        value = {"namespace": namespace, "n": n, "payload": payload}
        self.cache.put(key_of(namespace, n), value)
        self.expire()
        self.model.pop((namespace, n), None)
        self.model[(namespace, n)] = (value, self.timer.now + TTL)
        while len(self.model) > MAXSIZE:
            del self.model[next(iter(self.model))]

    @rule(namespace=NAMESPACES, n=NUMBERS)
    def get(self, namespace: str, n: int) -> None:
        self.expire()
        got = self.cache.get(key_of(namespace, n))
        entry = self.model.pop((namespace, n), None)
        if entry is None:
            assert got is None
        else:
            assert got == entry[0]
            self.model[(namespace, n)] = entry

    @rule(namespace=NAMESPACES, n=NUMBERS)
    def mutate_what_get_returned(self, namespace: str, n: int) -> None:
        got = self.cache.get(key_of(namespace, n))
        self.expire()
        entry = self.model.pop((namespace, n), None)
        if entry is not None:
            self.model[(namespace, n)] = entry
            got["payload"] = "changed by a reader"

    @rule(seconds=st.sampled_from([0.5, 1.0, 3.0, 9.5, 10.0, 20.0]))
    def advance(self, seconds: float) -> None:
        self.timer.now += seconds

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def discard(self, data: st.DataObject) -> None:
        self.expire()
        if not self.model:
            return
        namespace, n = data.draw(st.sampled_from(sorted(self.model)))
        assert self.cache.discard(key_of(namespace, n))
        del self.model[(namespace, n)]

    @invariant()
    def holds_exactly_the_live_model_entries(self) -> None:
        self.expire()
        assert self.cache.statistics().entries == len(self.model)
        for namespace in ("acme", "globex"):
            for n in range(7):
                assert (key_of(namespace, n) in self.cache) == ((namespace, n) in self.model)

    @invariant()
    def never_exceeds_the_bound(self) -> None:
        assert len(self.cache) <= MAXSIZE


TestExactCacheMachine = ExactCacheMachine.TestCase
