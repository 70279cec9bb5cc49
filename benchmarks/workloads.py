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


def encoded_size(state: Any) -> int:
    """Return the size of ``state`` encoded with msgpack."""
    return len(msgspec.msgpack.encode(state))
