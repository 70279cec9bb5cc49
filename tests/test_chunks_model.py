"""A model of one state's history, checked against a real server after every step.

Hypothesis drives saves that grow, shrink and rewrite a state (whole and
chunked versions mixed), loads of every kept version, ``delete_version``,
``prune``, ``rollback``, ``delete``, TTLs and ``touch``. After each step:
every kept version loads exactly; the version list is the model's; every
stored piece is referred to by a kept version and every referred piece is
stored, with exact reference counts (``recostate verify``'s audit); and the
prefix holds no key but the state's own and its tag sets. Runs on every
server line and on the cluster.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from recostate import RedisStatePersistence
from recostate.cli import raw
from tests.conftest import ServerHandle
from tests.layout import state_keys

pytestmark = pytest.mark.integration

KEEP = 6
STATE = "model"


def paragraph(seed: int, size: int) -> str:
    rng = random.Random(seed)
    return " ".join(f"w{rng.randrange(400)}" for _ in range(size // 5))


def run_model(server: ServerHandle, prefix: str) -> None:
    client: redis.Redis | redis.RedisCluster = (
        redis.RedisCluster.from_url(server.url) if server.cluster else redis.Redis.from_url(server.url)
    )

    class HistoryOfOneState(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.store = RedisStatePersistence(
                server.url, key_prefix=prefix, max_versions=KEEP, **server.options
            )
            self.versions: dict[int, Any] = {}  # the model: kept version -> state
            self.last = 0  # highest number given in the state's life
            self.items: list[str] = []
            self.ttl: int | None = None

        def run(self, work: Any) -> Any:
            return self.loop.run_until_complete(work)

        def _saved(self, state: Any, version: int) -> None:
            self.versions[version] = state
            self.last = version
            for old in sorted(self.versions)[:-KEEP]:
                del self.versions[old]

        def _save(self, items: list[str]) -> None:
            self.items = items
            state = {"n": len(items), "items": list(items)}
            meta = self.run(self.store.save(STATE, state, ttl=self.ttl))
            assert meta.version == self.last + 1
            self._saved(state, meta.version)

        @rule(count=st.integers(1, 12), size=st.sampled_from([40, 400, 1500]), seed=st.integers(0, 99))
        def grow(self, count: int, size: int, seed: int) -> None:
            self._save(self.items + [paragraph(seed + i, size) for i in range(count)])

        @rule(keep=st.integers(0, 30))
        def shrink(self, keep: int) -> None:
            self._save(self.items[:keep])

        @rule(at=st.integers(0, 40), seed=st.integers(0, 99))
        def edit(self, at: int, seed: int) -> None:
            items = list(self.items)
            if items:
                items[at % len(items)] = paragraph(seed, 700)
            self._save(items)

        @rule(seed=st.integers(0, 99))
        def rewrite(self, seed: int) -> None:
            self._save([paragraph(seed * 100 + i, 900) for i in range(random.Random(seed).randrange(1, 25))])

        @precondition(lambda self: bool(self.versions))
        @rule(data=st.data())
        def load_one(self, data: st.DataObject) -> None:
            version = data.draw(st.sampled_from(sorted(self.versions)))
            assert self.run(self.store.load(STATE, version)) == self.versions[version]

        @precondition(lambda self: bool(self.versions))
        @rule(data=st.data())
        def delete_version(self, data: st.DataObject) -> None:
            version = data.draw(st.sampled_from(sorted(self.versions)))
            assert self.run(self.store.delete_version(STATE, version))
            del self.versions[version]
            if not self.versions:
                self.last, self.items = 0, []

        @precondition(lambda self: bool(self.versions))
        @rule(keep=st.integers(0, KEEP))
        def prune(self, keep: int) -> None:
            removed = self.run(self.store.prune(STATE, keep))
            assert removed == max(0, len(self.versions) - keep)
            for old in sorted(self.versions)[: max(0, len(self.versions) - keep)]:
                del self.versions[old]
            if not self.versions:
                self.last, self.items = 0, []

        @precondition(lambda self: bool(self.versions))
        @rule(data=st.data())
        def rollback(self, data: st.DataObject) -> None:
            version = data.draw(st.sampled_from(sorted(self.versions)))
            meta = self.run(self.store.rollback(STATE, version, ttl=self.ttl))
            assert meta.rolled_back_from == version and meta.version == self.last + 1
            state = self.versions[version]
            self.items = list(state["items"])
            self._saved(state, meta.version)

        @rule()
        def delete(self) -> None:
            assert self.run(self.store.delete(STATE)) is bool(self.versions)
            self.versions, self.last, self.items = {}, 0, []

        @rule(ttl=st.sampled_from([None, 3600, 7200]))
        def touch(self, ttl: int | None) -> None:
            self.ttl = ttl
            assert self.run(self.store.touch(STATE, ttl)) is bool(self.versions)

        @invariant()
        def stored_as_modelled(self) -> None:
            listed = self.run(self.store.list_versions(STATE))
            assert [m.version for m in listed] == sorted(self.versions)
            assert self.run(raw.check_pieces(self.store, STATE)) == []
            own = set(state_keys(prefix, STATE).all)
            present = set(client.scan_iter(match=f"{prefix}*", count=1000))
            assert present <= own, present - own
            if not self.versions:
                assert present == set()
            elif self.ttl is not None:
                ttls = {client.pttl(key) for key in present}
                assert all(0 < ttl <= self.ttl * 1000 for ttl in ttls), ttls
            else:
                assert {client.pttl(key) for key in present} == {-1}

        def teardown(self) -> None:
            self.run(self.store.delete(STATE))
            self.run(self.store.aclose())
            self.loop.close()

    try:
        run_state_machine_as_test(  # type: ignore[no-untyped-call,unused-ignore]
            HistoryOfOneState,
            settings=settings(
                max_examples=12,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        client.close()


def test_a_states_history_matches_its_model(redis_server: ServerHandle, key_prefix: str) -> None:
    run_model(redis_server, key_prefix)
