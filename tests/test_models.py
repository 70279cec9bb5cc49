"""pydantic v2 models as states: stored as plain data, loaded back as validated models."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, computed_field

import recostate.sync
from recostate import RedisStatePersistence, SerializationError
from tests.conftest import ServerHandle


class Step(BaseModel):
    tool: str
    ok: bool = True


class Agent(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    run_id: uuid.UUID
    started: datetime
    blob: bytes
    home: HttpUrl
    workdir: Path
    window: tuple[int, int]
    steps: list[Step] = []
    max_steps: int = Field(default=10, alias="maxSteps")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def step_count(self) -> int:
        return len(self.steps)


class Run(msgspec.Struct):
    label: str
    agent: Agent


@dataclasses.dataclass
class Pair:
    left: Step
    right: Step | None


def make_agent(**changes: Any) -> Agent:
    fields: dict[str, Any] = {
        "name": "ada",
        "run_id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "started": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2))),
        "blob": b"\x00\xff\x80 not utf-8",
        "home": HttpUrl("https://example.org/agents/ada"),
        "workdir": Path("/srv/agents/ada"),
        "window": (3, 9),
        "steps": [Step(tool="search"), Step(tool="write", ok=False)],
        "max_steps": 20,
    }
    fields.update(changes)
    return Agent(**fields)


async def test_a_model_is_stored_as_its_data_and_loads_back_validated(
    store: RedisStatePersistence,
) -> None:
    agent = make_agent()
    meta = await store.save("agent", agent, tags=["models"])
    assert meta.version == 1
    loaded = await store.load("agent", type=Agent)
    assert isinstance(loaded, Agent)
    assert loaded == agent
    assert isinstance(loaded.steps[0], Step) and loaded.window == (3, 9)
    # The same instant, in UTC: stored as a msgpack timestamp.
    assert loaded.started == agent.started and loaded.started.utcoffset() == timedelta(0)
    # Untyped, it is plain data: the model's fields by alias, no computed field.
    data = await store.load("agent")
    assert data == {
        "name": "ada",
        "run_id": "12345678-1234-5678-1234-567812345678",
        "started": agent.started,
        "blob": b"\x00\xff\x80 not utf-8",
        "home": "https://example.org/agents/ada",
        "workdir": "/srv/agents/ada",
        "window": [3, 9],
        "steps": [{"tool": "search", "ok": True}, {"tool": "write", "ok": False}],
        "maxSteps": 20,
    }


async def test_types_holding_models_load_their_models(store: RedisStatePersistence) -> None:
    agent = make_agent()
    await store.save("list", [agent, make_agent(name="bob")])
    agents = await store.load("list", type=list[Agent])
    assert agents is not None and [a.name for a in agents] == ["ada", "bob"]
    assert agents[0] == agent
    await store.save("map", {"a": Step(tool="x")})
    assert await store.load("map", type=dict[str, Step]) == {"a": Step(tool="x")}
    await store.save("run", Run("first", agent))
    run = await store.load("run", type=Run)
    assert run is not None and run.label == "first" and run.agent == agent
    await store.save("pair", Pair(Step(tool="a"), None))
    assert await store.load("pair", type=Pair) == Pair(Step(tool="a"), None)
    await store.save("maybe", None)
    await store.save("maybe", Step(tool="y"))
    optional: Any = Step | None  # the overloads of load() name classes, not unions
    first = await store.load_with_metadata("maybe", 1, type=optional)
    assert first is not None and first[0] is None
    assert await store.load("maybe", 2, type=optional) == Step(tool="y")


async def test_data_that_does_not_validate_raises_serialization_error(
    store: RedisStatePersistence,
) -> None:
    await store.save("bad", {"tool": ["not", "a", "secret-string"], "ok": "perhaps"})
    with pytest.raises(SerializationError) as caught:
        await store.load("bad", type=Step)
    message = str(caught.value)
    assert "2 validation errors for Step" in message
    assert "tool: Input should be a valid string" in message
    assert "ok: Input should be a valid boolean" in message
    assert "secret-string" not in message and "perhaps" not in message  # no state contents
    await store.save("nested", [{"tool": "ok"}, {"ok": True}])
    with pytest.raises(SerializationError, match=r"tool: Field required - at `\$\[1\]`"):
        await store.load("nested", type=list[Step])
    # The data is sound: read untyped, it is still there.
    assert await store.load("nested") == [{"tool": "ok"}, {"ok": True}]


async def test_a_class_that_is_not_a_model_is_still_refused_as_a_type(
    store: RedisStatePersistence,
) -> None:
    class Plain:
        pass

    await store.save("plain", {"a": 1})
    with pytest.raises(SerializationError, match="Expected `Plain`, got `dict`"):
        await store.load("plain", type=Plain)


async def test_older_versions_load_as_models(store: RedisStatePersistence) -> None:
    await store.save("s", {"tool": "draft"})  # written before the application had models
    await store.save("s", Step(tool="search", ok=False))
    await store.save("s", {"tool": 7})  # written by something else
    first = await store.load_with_metadata("s", 1, type=Step)
    assert first is not None and first[0] == Step(tool="draft") and first[1].version == 1
    assert await store.load("s", 2, type=Step) == Step(tool="search", ok=False)
    with pytest.raises(SerializationError, match="tool: Input should be a valid string"):
        await store.load("s", 3, type=Step)
    # Rollback copies the stored data; it loads as a model again.
    await store.rollback("s", 2)
    assert await store.load("s", type=Step) == Step(tool="search", ok=False)


async def test_a_model_that_cannot_be_encoded_writes_nothing(store: RedisStatePersistence) -> None:
    class Holder(BaseModel):
        thing: Any

    with pytest.raises(SerializationError, match="Holder"):
        await store.save("h", Holder(thing=object()))
    assert not await store.exists("h")
    # A plain state holding what only a model's dump may turn into text stays refused.
    with pytest.raises(SerializationError):
        await store.save("h", {"path": Path("/tmp")})
    assert not await store.exists("h")


def test_the_sync_facade_saves_and_loads_models(redis_server: ServerHandle, key_prefix: str) -> None:
    with recostate.sync.RedisStatePersistence(
        redis_server.url, key_prefix=key_prefix, **redis_server.options
    ) as store:
        agent = make_agent()
        store.save("agent", agent)
        store.save("agent", agent.model_copy(update={"name": "eve"}))
        assert store.load("agent", type=Agent) == agent.model_copy(update={"name": "eve"})
        found = store.load_with_metadata("agent", 1, type=Agent)
        assert found is not None and found[0] == agent
        store.delete("agent")


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_recostate_never_imports_pydantic_for_states_that_are_not_models() -> None:
    out = _python(
        """
        import sys, msgspec
        import recostate, recostate.sync, recostate.cli
        from recostate._codec.states import StateCodec

        class Point(msgspec.Struct):
            x: int

        codec = StateCodec(max_payload_bytes=1 << 20)
        print(codec.decode(codec.encode(Point(1)), Point) == Point(1))
        try:
            codec.encode(object())
        except recostate.SerializationError:
            print("refused")
        print("pydantic" in sys.modules)
        """
    )
    assert out.split() == ["True", "refused", "False"]


def test_a_stored_model_reads_back_where_pydantic_cannot_be_imported(
    redis_server: ServerHandle, key_prefix: str
) -> None:
    with recostate.sync.RedisStatePersistence(
        redis_server.url, key_prefix=key_prefix, **redis_server.options
    ) as store:
        store.save("agent", make_agent(steps=[]))
        try:
            out = _python(
                f"""
                import sys, json
                sys.modules["pydantic"] = None  # any import of it fails
                from recostate.sync import RedisStatePersistence
                with RedisStatePersistence({redis_server.url!r}, key_prefix={key_prefix!r},
                                           cluster={redis_server.cluster is not None}) as store:
                    state = store.load("agent")
                print(json.dumps({{"name": state["name"], "blob": state["blob"].hex(),
                                  "started": state["started"].isoformat()}}))
                """
            )
        finally:
            store.delete("agent")
    assert json.loads(out) == {
        "name": "ada",
        "blob": b"\x00\xff\x80 not utf-8".hex(),
        "started": "2026-01-02T01:04:05.678901+00:00",
    }
