"""The states the benchmarks save and load: agent-like documents of a given size."""

from __future__ import annotations

import random
from typing import Any

import msgspec

KiB = 1024
MiB = 1024 * KiB

_WORDS = (
    "agent",
    "tool",
    "call",
    "result",
    "observation",
    "plan",
    "step",
    "memory",
    "context",
    "user",
    "assistant",
    "search",
    "retrieve",
    "summarise",
    "document",
    "answer",
    "error",
    "retry",
    "token",
    "budget",
    "state",
    "vector",
    "embedding",
    "chunk",
    "score",
    "rank",
    "filter",
    "session",
    "goal",
    "task",
    "subtask",
    "done",
    ".split",
)


def make_state(target_bytes: int, seed: int = 7) -> dict[str, Any]:
    """Return a dict whose msgpack encoding is about ``target_bytes``.

    The content mixes repeated vocabulary with numbers and ids, so it
    compresses roughly as real agent state does (2-4x with LZ4), not like
    zeros or random bytes.
    """
    rnd = random.Random(seed)
    messages: list[dict[str, Any]] = []
    state: dict[str, Any] = {
        "session": f"s-{rnd.getrandbits(64):016x}",
        "step": 0,
        "scores": [],
        "messages": messages,
    }
    encoder = msgspec.msgpack.Encoder()
    size = len(encoder.encode(state))
    step = 0
    while size < target_bytes:
        words = " ".join(rnd.choice(_WORDS) for _ in range(rnd.randint(8, 40)))
        message = {
            "role": rnd.choice(("user", "assistant", "tool")),
            "step": step,
            "id": f"{rnd.getrandbits(48):012x}",
            "content": words,
            "score": round(rnd.random(), 4),
        }
        messages.append(message)
        size += len(encoder.encode(message))
        step += 1
    state["step"] = step
    return state


def agent_message(rnd: random.Random, step: int, target_bytes: int = 1200) -> dict[str, Any]:
    """Return one agent-like message whose msgpack encoding is about ``target_bytes``.

    A role, content of varied words, ids and a timestamp: what a chat or
    tool-calling agent appends to its state at each step.
    """
    role = ("user", "assistant", "tool")[step % 3]
    message: dict[str, Any] = {
        "id": f"msg-{rnd.getrandbits(64):016x}",
        "role": role,
        "created_at": f"2026-11-{1 + step // 1440 % 28:02d}T{step // 60 % 24:02d}:"
        f"{step % 60:02d}:{rnd.randrange(60):02d}.{rnd.randrange(1000):03d}Z",
        "content": "",
    }
    if role == "tool":
        message["tool_call_id"] = f"call-{rnd.getrandbits(48):012x}"
    words: list[str] = []
    room = target_bytes - len(msgspec.msgpack.encode(message))
    while room > 0:
        word = rnd.choice(_WORDS)
        if rnd.random() < 0.15:
            word = f"{word}-{rnd.randrange(10_000)}"
        words.append(word)
        room -= len(word) + 1
    message["content"] = " ".join(words)
    return message


def growing_thread(seed: int, steps: int, *, message_bytes: int = 1200) -> list[dict[str, Any]]:
    """Return the states of one agent thread after each of ``steps`` steps.

    Step ``k`` holds the first ``k`` messages (the lists share their message
    dicts, so ``steps`` states cost one thread's memory in this process).
    """
    rnd = random.Random(seed)
    thread_id = f"thread-{rnd.getrandbits(64):016x}"
    messages = [agent_message(rnd, step, message_bytes) for step in range(steps)]
    return [
        {"thread_id": thread_id, "step": k, "messages": messages[:k]} for k in range(1, steps + 1)
    ]


def grown_state(seed: int, target_bytes: int, *, message_bytes: int = 1200) -> dict[str, Any]:
    """Return one agent thread whose encoding is about ``target_bytes`` (~1 MiB: ~850 steps)."""
    steps = max(1, target_bytes // (message_bytes + 3))
    return growing_thread(seed, steps, message_bytes=message_bytes)[-1]


def encoded_size(state: Any) -> int:
    """Return the size of ``state`` encoded with msgpack."""
    return len(msgspec.msgpack.encode(state))
