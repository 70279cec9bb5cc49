"""A multi-step asyncio agent that checkpoints every step in recostate.

* Each step's result is saved with compare-and-set (``expected_version`` = the
  version the step started from), so two copies of the same agent can never
  both commit a step: the loser reloads the winner's state and goes on from it.
* Killed at any point (``kill -9``), the agent resumes from its last saved
  step when started again: a step is committed exactly once, and at worst the
  step that was running when it died is computed again.
* A step that a check finds bad after it was saved is undone with
  ``rollback``: the head becomes the last good state again, the history keeps
  both, and the step is retried.

Run it (uses ``REDIS_URL`` when set, else a throwaway redis-server)::

    python examples/agent_loop.py --agent-id demo-agent --bad-step 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable

import msgspec

from recostate import RedisStatePersistence, VersionConflictError
from recostate.testing import EmbeddedRedis

STEPS = ("plan", "search", "read", "draft", "review", "answer")


class AgentState(msgspec.Struct, frozen=True):
    """What the agent knows after each step; the whole of it is checkpointed."""

    task: str
    step: int = 0  # steps completed
    notes: tuple[str, ...] = ()
    done: bool = False


Think = Callable[[AgentState], Awaitable[AgentState]]


async def think(state: AgentState) -> AgentState:
    """One step of work: a stand-in for a model call or a tool."""
    name = STEPS[state.step]
    await asyncio.sleep(0)
    note = f"{state.step + 1}:{name}"
    return AgentState(
        task=state.task,
        step=state.step + 1,
        notes=(*state.notes, note),
        done=state.step + 1 == len(STEPS),
    )


def looks_wrong(state: AgentState) -> bool:
    """The check run on each saved step: here, a note a faulty tool marked as an error."""
    return any(note.endswith("!error") for note in state.notes)


def flaky(bad_step: int) -> Think:
    """Return a ``think`` whose step ``bad_step`` goes wrong the first time it runs."""
    failed: set[int] = set()

    async def step(state: AgentState) -> AgentState:
        result = await think(state)
        if result.step == bad_step and bad_step not in failed:
            failed.add(bad_step)
            return msgspec.structs.replace(result, notes=(*state.notes, f"{bad_step}:!error"))
        return result

    return step


async def run_agent(
    store: RedisStatePersistence,
    agent_id: str,
    task: str,
    *,
    step: Think = think,
    pause: float = 0.0,
    say: Callable[[str], None] = lambda line: None,
) -> AgentState:
    """Run (or resume) the agent ``agent_id`` until it is done; return its final state."""
    found = await store.load_with_metadata(agent_id, type=AgentState)
    if found is None:
        state = AgentState(task=task)
        try:
            meta = await store.save(agent_id, state, expected_version=0, tags=["agents"])
        except VersionConflictError:
            # Another copy created it first: start from its state instead.
            return await run_agent(store, agent_id, task, step=step, pause=pause, say=say)
        say(f"{agent_id}: started, version {meta.version}")
    else:
        state, meta = found
        say(f"{agent_id}: resumed at step {state.step}/{len(STEPS)}, version {meta.version}")

    while not state.done:
        result = await step(state)
        try:
            saved = await store.save(agent_id, result, expected_version=meta.version, tags=["agents"])
        except VersionConflictError:
            # Another copy of this agent committed first: continue from its state.
            reloaded = await store.load_with_metadata(agent_id, type=AgentState)
            assert reloaded is not None
            state, meta = reloaded
            say(f"{agent_id}: another worker got there first; now at step {state.step}")
            continue
        if looks_wrong(result):
            # Undo the bad step: the head becomes the state it started from.
            meta = await store.rollback(agent_id, meta.version)
            say(
                f"{agent_id}: step {result.step} looked wrong (version {saved.version}); "
                f"rolled back to version {meta.rolled_back_from} as version {meta.version}"
            )
            continue
        state, meta = result, saved
        say(f"{agent_id}: step {state.step} {STEPS[state.step - 1]} saved as version {meta.version}")
        if pause:
            await asyncio.sleep(pause)
    return state


async def main(url: str, agent_id: str, bad_step: int, pause: float) -> None:
    """Run one agent to the end, printing each step."""
    async with RedisStatePersistence(url, key_prefix="agents-example", max_versions=50) as store:
        step = flaky(bad_step) if bad_step else think
        final = await run_agent(
            store, agent_id, "write a summary", step=step, pause=pause, say=print
        )
        print(f"{agent_id}: done after {final.step} steps: {', '.join(final.notes)}")


def cli() -> None:
    """Parse the command line and run the agent."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agent-id", default="agent-1")
    parser.add_argument("--bad-step", type=int, default=0, help="make this step go wrong once")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between steps")
    args = parser.parse_args()
    url = os.environ.get("REDIS_URL")
    if url:
        asyncio.run(main(url, args.agent_id, args.bad_step, args.pause))
        return
    with EmbeddedRedis() as server:
        asyncio.run(main(server.url, args.agent_id, args.bad_step, args.pause))


if __name__ == "__main__":
    cli()
