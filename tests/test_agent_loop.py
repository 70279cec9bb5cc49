"""examples/agent_loop.py: checkpoints with compare-and-set, resume after kill -9, rollback."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from recostate import RedisStatePersistence
from recostate.testing import EmbeddedRedis

EXAMPLE = Path(__file__).parent.parent / "examples" / "agent_loop.py"


def _load_example() -> Any:
    spec = importlib.util.spec_from_file_location("agent_loop_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # msgspec resolves the Struct's annotations through it
    spec.loader.exec_module(module)
    return module


agent = _load_example()
ALL_NOTES = tuple(f"{n}:{name}" for n, name in enumerate(agent.STEPS, start=1))


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as embedded:
        yield embedded


@pytest.fixture
async def store(server: EmbeddedRedis) -> AsyncIterator[RedisStatePersistence]:
    async with RedisStatePersistence(
        server.url, key_prefix="agents-example", max_versions=50
    ) as persistence:
        yield persistence
        for state_id in await persistence.list_states():
            await persistence.delete(state_id)


async def history(store: RedisStatePersistence, agent_id: str) -> list[Any]:
    return [
        await store.load(agent_id, meta.version, type=agent.AgentState)
        for meta in await store.list_versions(agent_id)
    ]


async def test_each_step_is_one_version(store: RedisStatePersistence) -> None:
    final = await agent.run_agent(store, "a", "task")
    assert final.done and final.notes == ALL_NOTES
    steps = [state.step for state in await history(store, "a")]
    assert steps == list(range(len(agent.STEPS) + 1))
    assert await store.list_states(tag="agents") == ["a"]


async def test_a_bad_step_is_rolled_back_and_retried(store: RedisStatePersistence) -> None:
    lines: list[str] = []
    final = await agent.run_agent(store, "a", "task", step=agent.flaky(3), say=lines.append)
    assert final.notes == ALL_NOTES
    versions = await store.list_versions("a")
    states = await history(store, "a")
    # v1 start, v2 step 1, v3 step 2, v4 the bad step 3, v5 = v3 again, v6 step 3...
    assert states[3].notes[-1] == "3:!error"
    assert versions[4].rolled_back_from == 3 and states[4] == states[2]
    assert states[5].notes[-1] == "3:read"
    assert any("step 3 looked wrong (version 4)" in line for line in lines)


async def test_two_workers_never_commit_the_same_step(store: RedisStatePersistence) -> None:
    lines: list[str] = []
    first, second = await asyncio.gather(
        agent.run_agent(store, "shared", "task", say=lines.append),
        agent.run_agent(store, "shared", "task", say=lines.append),
    )
    assert first.notes == second.notes == ALL_NOTES
    steps = [state.step for state in await history(store, "shared")]
    assert steps == list(range(len(agent.STEPS) + 1))  # no step committed twice
    assert any("another worker got there first" in line for line in lines)


async def test_a_killed_agent_resumes_from_its_last_saved_step(
    store: RedisStatePersistence, server: EmbeddedRedis
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        "--agent-id",
        "k",
        "--pause",
        "0.3",
        env={**os.environ, "REDIS_URL": server.url},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            head = await store.load("k", type=agent.AgentState)
            if head is not None and head.step >= 2:
                break
            await asyncio.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        await asyncio.wait_for(process.wait(), timeout=30)
    assert process.returncode == -signal.SIGKILL
    saved = await store.load("k", type=agent.AgentState)
    assert saved is not None and 2 <= saved.step < len(agent.STEPS)

    lines: list[str] = []
    final = await agent.run_agent(store, "k", "task", say=lines.append)
    assert lines[0].startswith(f"k: resumed at step {saved.step}/")
    assert final.notes == ALL_NOTES
    steps = [state.step for state in await history(store, "k")]
    assert steps == list(range(len(agent.STEPS) + 1))


def test_the_example_runs_as_a_script(server: EmbeddedRedis) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--agent-id", "script", "--bad-step", "2"],
        env={**os.environ, "REDIS_URL": server.url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "step 2 looked wrong" in result.stdout
    assert "script: done after 6 steps" in result.stdout

    async def clean() -> None:
        async with RedisStatePersistence(server.url, key_prefix="agents-example") as store:
            await store.delete("script")

    asyncio.run(clean())
