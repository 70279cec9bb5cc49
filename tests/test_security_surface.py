"""No pickle, no eval of stored data, and no state contents in logs or error messages."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from recostate import (
    IntegrityError,
    SerializationError,
    VersionConflictError,
)
from tests.conftest import MakeStore
from tests.layout import aget_version, aset_version

PACKAGE = Path(__file__).resolve().parent.parent / "recostate"
SECRET = "s3cr3t-marker-0f-a-state"
FORBIDDEN_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "jsonpickle"}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}


def _python_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_pickle_or_calls_eval(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names = {(node.module or "").split(".")[0]}
        else:
            names = set()
        line = getattr(node, "lineno", 0)
        assert not names & FORBIDDEN_MODULES, f"{path.name}:{line} imports {names}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in FORBIDDEN_CALLS, f"{path.name}:{node.lineno}"


async def test_state_contents_never_reach_logs_or_error_messages(
    make_store: MakeStore,
    raw_redis: aioredis.Redis,
    key_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    store = make_store(retries=0)
    state = {"password": SECRET, "notes": [SECRET] * 3}
    messages: list[str] = []

    await store.save("s", state, tags=["t"])
    assert await store.load("s") == state
    with pytest.raises(VersionConflictError) as conflict:
        await store.save("s", state, expected_version=7)
    messages.append(str(conflict.value))

    with pytest.raises(SerializationError) as unencodable:
        await store.save("s", {"password": SECRET, "bad": object()})
    messages.append(str(unencodable.value))

    frame = await aget_version(raw_redis, key_prefix, "s", 1)
    damaged = bytearray(frame)
    damaged[-1] ^= 0xFF
    await aset_version(raw_redis, key_prefix, "s", 1, bytes(damaged))
    with pytest.raises(IntegrityError) as integrity:
        await store.load("s")
    messages.append(str(integrity.value))

    # A state that decodes but not into the asked type: the message names the type only.
    await store.save("typed", {"password": SECRET})
    with pytest.raises(SerializationError) as typed:
        await store.load("typed", type=list[int])
    messages.append(str(typed.value))

    logged = [record.getMessage() for record in caplog.records]
    assert any("recostate" in record.name for record in caplog.records)
    for text in messages + logged:
        assert SECRET not in text, text
