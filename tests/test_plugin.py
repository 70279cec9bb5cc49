"""The pytest plugin (``recostate.testing``), as a user's test suite sees it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from recostate import RedisStatePersistence
from recostate.testing import EmbeddedRedis

pytest_plugins = ["pytester"]

USER_TESTS = '''
import pytest

from recostate import RedisStatePersistence
from recostate.sync import RedisStatePersistence as SyncStore

PREFIXES = []


@pytest.mark.asyncio
async def test_async_store(recostate_store, recostate_key_prefix):
    assert isinstance(recostate_store, RedisStatePersistence)
    assert recostate_store.config.key_prefix == recostate_key_prefix
    await recostate_store.save("agent-7", {"step": 1}, tags=["agents"])
    assert await recostate_store.load("agent-7") == {"step": 1}
    PREFIXES.append(recostate_key_prefix)


def test_sync_store(recostate_sync_store, recostate_key_prefix):
    assert isinstance(recostate_sync_store, SyncStore)
    recostate_sync_store.save("agent-7", [1, 2])
    assert recostate_sync_store.load("agent-7") == [1, 2]
    PREFIXES.append(recostate_key_prefix)


def test_each_test_has_its_own_prefix(recostate_key_prefix):
    assert recostate_key_prefix not in PREFIXES


def test_url_names_a_loopback_server(recostate_url):
    assert recostate_url.startswith("redis://127.0.0.1:")


class TestOptions:
    @pytest.fixture
    def recostate_store_options(self):
        return {"max_versions": 2}

    def test_options_reach_the_store(self, recostate_sync_store):
        for step in range(5):
            recostate_sync_store.save("s", step)
        assert [m.version for m in recostate_sync_store.list_versions("s")] == [4, 5]
'''


def run_user_suite(pytester: pytest.Pytester) -> pytest.RunResult:
    # A user project states its loop scope; newer pytest-asyncio warns otherwise,
    # and the suite runs with warnings as errors.
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")


@pytest.fixture(scope="module")
def user_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


def test_fixtures_work_in_a_user_suite_with_a_server_of_their_own(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    monkeypatch.delenv("REDIS_URL", raising=False)  # the plugin starts a throwaway server
    result = run_user_suite(pytester)
    result.assert_outcomes(passed=5)


def test_fixtures_use_redis_url_and_leave_no_state_behind(
    pytester: pytest.Pytester, user_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        test_user=USER_TESTS.replace('"redis://127.0.0.1:"', f'"{user_server.url}"')
    )
    monkeypatch.setenv("REDIS_URL", user_server.url)
    result = run_user_suite(pytester)
    result.assert_outcomes(passed=5)

    async def leftover_keys() -> int:
        async with RedisStatePersistence(user_server.url) as store:
            return len([key async for key in store._executor.scan(b"recostate-test-*")])

    assert asyncio.run(leftover_keys()) == 0


def test_the_testing_guide_examples_pass_as_user_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_docs_blocks import ROOT, code_blocks

    blocks = [block for block in code_blocks(ROOT / "docs" / "guides" / "testing.md") if block.runs]
    assert len(blocks) >= 3
    pytester.makepyfile(**{f"test_guide_{n}": block.source for n, block in enumerate(blocks)})
    monkeypatch.delenv("REDIS_URL", raising=False)
    result = run_user_suite(pytester)
    result.assert_outcomes(passed=3)
