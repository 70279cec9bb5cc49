"""examples/langgraph_agent.py runs: approval, resume, time travel, fork, and a resume after kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "langgraph.graph", reason="needs the langgraph extra (pip install 'recostate[langgraph]')"
)

from tests.conftest import ServerHandle

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "langgraph_agent.py"
sys.path.insert(0, str(EXAMPLE.parent))

import langgraph_agent  # noqa: E402

pytestmark = pytest.mark.integration


async def test_demo_tells_the_whole_story(
    redis_server: ServerHandle, key_prefix: str, raw_redis: object
) -> None:
    report = await langgraph_agent.demo(redis_server.url, key_prefix, **redis_server.options)
    assert report["interrupt"]["call"] == {
        "name": "send_email",
        "args": {"to": "ops@example.com", "body": "42"},
    }
    assert report["paused_at"] == ("approval",)
    assert report["answer"] == "The answer is 42. Email: sent to ops@example.com: 42."
    assert report["checkpoints"] >= 6
    assert report["replay_paused"] is True
    assert report["replay_answer"] == "The answer is 42. Email: refused by a human: not today."
    assert report["fork_answer"] == "The answer is 5."
    assert report["fork_parent"] is not None


def _run(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    return done.stdout


def test_a_run_killed_mid_step_resumes_in_a_new_process(
    redis_server: ServerHandle, key_prefix: str, raw_redis: object
) -> None:
    if redis_server.cluster is not None:
        pytest.skip("the example's command line talks to one server")
    common = ["--url", redis_server.url, "--key-prefix", key_prefix, "--thread", "crash"]
    env = {**os.environ, langgraph_agent.STALL: "1"}
    child = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "start", *common],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "stalled in tools"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    # A new process picks the thread up where the last checkpoint left it: the
    # tools step runs again, the agent's first step does not.
    paused = _run("resume", *common)
    assert "'name': 'send_email'" in paused.splitlines()[-1]
    finished = _run("resume", *common, "--decision", "approve").splitlines()
    assert finished[-1] == (
        "{'role': 'assistant', 'content': 'The answer is 42. Email: sent to ops@example.com: 42.'}"
    )
    roles = [line.split("'role': '")[1].split("'")[0] for line in finished]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
