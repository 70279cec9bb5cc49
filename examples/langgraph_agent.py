"""A LangGraph agent whose checkpoints live in Redis through recostate.

A tool-calling loop with a scripted "model" (no LLM needed): it adds numbers
with a tool, asks a human before it sends an email (``interrupt()``), and
finishes when the tools are done. The demo then travels back in time to an
earlier checkpoint and replays from there, and forks the thread with a
different question. ``start``/``resume`` show that a run killed mid-step
resumes from its last checkpoint in a new process.

    python examples/langgraph_agent.py demo --url redis://localhost:6379/0
    python examples/langgraph_agent.py start --thread t-1   # killed mid-run? then:
    python examples/langgraph_agent.py resume --thread t-1

Needs ``pip install 'recostate[langgraph]'``.
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, interrupt

from recostate.contrib.langgraph import AsyncRecostateSaver, RecostateSaver

Message = dict[str, Any]


class AgentState(TypedDict):
    messages: Annotated[list[Message], operator.add]


def _sum(a: int, b: int) -> int:
    return a + b


def _send_email(to: str, body: str) -> str:
    return f"sent to {to}: {body}"


TOOLS: dict[str, Callable[..., Any]] = {"add": _sum, "send_email": _send_email}
#: Tools a human approves first.
SENSITIVE = {"send_email"}
#: With this variable set, the tools node stops (for ``start``, to be killed there).
STALL = "RECOSTATE_EXAMPLE_STALL"


def agent(state: AgentState) -> dict[str, list[Message]]:
    """The scripted model: plan the next tool call from the conversation, or answer."""
    messages = state["messages"]
    asked = max(i for i, m in enumerate(messages) if m["role"] == "user")
    question = messages[asked]["content"]
    done = {m["name"]: m["content"] for m in messages[asked:] if m["role"] == "tool"}
    numbers = [int(n) for n in re.findall(r"-?\d+", question.split("email")[0])]
    email = re.search(r"[\w.]+@[\w.]+\w", question)
    if "add" not in done:
        call = {"name": "add", "args": {"a": numbers[0], "b": numbers[1]}}
        return {"messages": [{"role": "assistant", "content": "", "tool_calls": [call]}]}
    if email and "send_email" not in done:
        call = {"name": "send_email", "args": {"to": email.group(0), "body": str(done["add"])}}
        return {"messages": [{"role": "assistant", "content": "", "tool_calls": [call]}]}
    answer = f"The answer is {done['add']}."
    if "send_email" in done:
        answer += f" Email: {done['send_email']}."
    return {"messages": [{"role": "assistant", "content": answer}]}


def route(state: AgentState) -> Literal["tools", "approval", "__end__"]:
    """Go to the tools, to a human first for a sensitive one, or stop."""
    calls = state["messages"][-1].get("tool_calls") or []
    if not calls:
        return "__end__"
    return "approval" if any(c["name"] in SENSITIVE for c in calls) else "tools"


def approval(state: AgentState) -> Command[Literal["tools", "agent"]]:
    """Pause the graph until a human approves or rejects the sensitive call."""
    call = state["messages"][-1]["tool_calls"][0]
    decision = interrupt({"question": f"run {call['name']}?", "call": call})
    if decision == "approve":
        return Command(goto="tools")
    refused = {"role": "tool", "name": call["name"], "content": f"refused by a human: {decision}"}
    return Command(goto="agent", update={"messages": [refused]})


def tools(state: AgentState) -> dict[str, list[Message]]:
    """Run the tool calls of the last assistant message."""
    if os.environ.get(STALL):
        print("stalled in tools", flush=True)
        time.sleep(3600)  # the caller kills the process here
    results = []
    for call in state["messages"][-1]["tool_calls"]:
        output = TOOLS[call["name"]](**call["args"])
        results.append({"role": "tool", "name": call["name"], "content": output})
    return {"messages": results}


def build() -> StateGraph[AgentState]:
    """The agent graph: agent -> (approval ->) tools -> agent ... -> end."""
    builder = StateGraph(AgentState)
    builder.add_node("agent", agent)
    builder.add_node("approval", approval)
    builder.add_node("tools", tools)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route)
    builder.add_edge("tools", "agent")
    return builder


QUESTION = "What is 20 + 22? Then email the result to ops@example.com."


def _thread(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


async def demo(
    url: str, key_prefix: str = "recostate-example", thread_id: str = "demo", **options: Any
) -> dict[str, Any]:
    """Run the whole story on one thread; return what happened, for a reader or a test.

    ``options`` go to the store (``cluster=True``, ``default_ttl``...).
    """
    report: dict[str, Any] = {}
    async with AsyncRecostateSaver.from_conn_string(url, key_prefix=key_prefix, **options) as saver:
        graph: CompiledStateGraph[AgentState] = build().compile(checkpointer=saver)
        config = _thread(thread_id)
        await saver.adelete_thread(thread_id)  # start afresh on every run of the demo

        # 1. Run until the agent wants to send an email: the graph pauses.
        result = await graph.ainvoke({"messages": [{"role": "user", "content": QUESTION}]}, config)
        report["interrupt"] = result["__interrupt__"][0].value
        state = await graph.aget_state(config)
        report["paused_at"] = state.next

        # 2. A human approves; the run resumes from the saved checkpoint.
        result = await graph.ainvoke(Command(resume="approve"), config)
        report["answer"] = result["messages"][-1]["content"]

        # 3. Time travel: back to the checkpoint before the add tool ran, and replay.
        history = [s async for s in graph.aget_state_history(config)]
        report["checkpoints"] = len(history)
        before_tools = next(s for s in reversed(history) if s.next == ("tools",))
        replayed = await graph.ainvoke(None, before_tools.config)
        report["replay_paused"] = "__interrupt__" in replayed
        replayed = await graph.ainvoke(Command(resume="not today"), config)
        report["replay_answer"] = replayed["messages"][-1]["content"]

        # 4. Fork: from the first step, ask another question on a branch of its own.
        first = next(s for s in reversed(history) if s.next == ("agent",))
        fork = await graph.aupdate_state(
            first.config, {"messages": [{"role": "user", "content": "What is 2 + 3?"}]}
        )
        forked = await graph.ainvoke(None, fork)
        report["fork_answer"] = forked["messages"][-1]["content"]
        report["fork_parent"] = (await graph.aget_state(fork)).parent_config
    return report


def start(url: str, key_prefix: str, thread_id: str) -> None:
    """Begin a run with the blocking saver; each step is saved before the next starts."""
    with RecostateSaver.from_conn_string(url, key_prefix=key_prefix) as saver:
        graph = build().compile(checkpointer=saver)
        graph.invoke(
            {"messages": [{"role": "user", "content": QUESTION}]},
            _thread(thread_id),
            durability="sync",
        )


def resume(url: str, key_prefix: str, thread_id: str, decision: str | None) -> list[Message]:
    """Continue a thread from its last checkpoint (after a crash, or with a human's decision)."""
    with RecostateSaver.from_conn_string(url, key_prefix=key_prefix) as saver:
        graph = build().compile(checkpointer=saver)
        command: Command[Any] | None = None if decision is None else Command(resume=decision)
        graph.invoke(command, _thread(thread_id), durability="sync")
        messages: list[Message] = graph.get_state(_thread(thread_id)).values["messages"]
        return messages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["demo", "start", "resume"])
    parser.add_argument("--url", default="redis://localhost:6379/0")
    parser.add_argument("--key-prefix", default="recostate-example")
    parser.add_argument("--thread", default="demo")
    parser.add_argument("--decision", help="resume: a human's answer to the pending question")
    args = parser.parse_args(argv)
    if args.mode == "demo":
        for name, value in asyncio.run(demo(args.url, args.key_prefix, args.thread)).items():
            print(f"{name}: {value}")
    elif args.mode == "start":
        start(args.url, args.key_prefix, args.thread)
    else:
        for message in resume(args.url, args.key_prefix, args.thread, args.decision):
            print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
