"""OpenTelemetry spans and metrics, read back through the SDK's in-memory exporters."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from recostate import IntegrityError, RedisStatePersistence, VersionConflictError, _telemetry
from recostate._server import EmbeddedRedis
from tests.layout import aget_version, aset_version


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as embedded:
        yield embedded


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        meter_provider = MeterProvider(metric_readers=[self.reader])
        _telemetry.configure(tracer_provider, meter_provider)

    def finished(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans.get_finished_spans() if span.name == name]

    def metrics(self) -> dict[str, list[Any]]:
        data = self.reader.get_metrics_data()
        out: dict[str, list[Any]] = {}
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                assert scope.scope.name == "recostate"
                for metric in scope.metrics:
                    out.setdefault(metric.name, []).extend(metric.data.data_points)
        return out


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    assert _telemetry.ENABLED
    recorded = Telemetry()
    yield recorded
    _telemetry.configure()


@pytest.fixture
async def store(server: EmbeddedRedis) -> AsyncIterator[RedisStatePersistence]:
    async with RedisStatePersistence(server.url, key_prefix="oteltest") as persistence:
        yield persistence
        for state_id in await persistence.list_states():
            await persistence.delete(state_id)


async def test_operations_produce_spans_with_sizes_and_versions(
    store: RedisStatePersistence, telemetry: Telemetry
) -> None:
    meta = await store.save("agent-7", {"log": ["same line"] * 500}, tags=["agents"])
    await store.load("agent-7")
    await store.rollback("agent-7", 1)
    await store.list_versions("agent-7")

    (save,) = telemetry.finished("recostate.save")
    assert save.kind is SpanKind.CLIENT
    attributes = dict(save.attributes or {})
    assert attributes["recostate.state_id"] == "agent-7"
    assert attributes["db.system"] == "redis"
    assert attributes["recostate.version"] == 1
    assert attributes["recostate.size_bytes"] == meta.size_bytes
    assert attributes["recostate.stored_bytes"] == meta.stored_bytes
    assert attributes["recostate.compression"] == "lz4"
    assert save.status.status_code is StatusCode.UNSET
    (load,) = telemetry.finished("recostate.load")
    assert dict(load.attributes or {})["recostate.version"] == 1
    (rollback,) = telemetry.finished("recostate.rollback")
    assert dict(rollback.attributes or {})["recostate.version"] == 2
    assert len(telemetry.finished("recostate.list_versions")) == 1


async def test_metrics_record_latency_sizes_and_compression_ratio(
    store: RedisStatePersistence, telemetry: Telemetry
) -> None:
    big = await store.save("a", {"text": "abc" * 5000})
    await store.save("b", {"n": 1})
    await store.load("a")
    metrics = telemetry.metrics()

    durations = {
        point.attributes["recostate.operation"]: point.count
        for point in metrics["recostate.operation.duration"]
    }
    assert durations == {"save": 2, "load": 1}
    assert all(point.sum > 0 for point in metrics["recostate.operation.duration"])
    (sizes,) = metrics["recostate.state.size"]
    assert sizes.count == 2 and sizes.max == big.size_bytes
    ratios = {p.attributes["recostate.compression"]: p for p in metrics["recostate.compression.ratio"]}
    assert ratios["lz4"].max == pytest.approx(big.size_bytes / big.stored_bytes)
    assert ratios["none"].count == 1
    stored = {p.attributes["recostate.operation"]: p.count for p in metrics["recostate.state.stored_size"]}
    assert stored == {"save": 2, "load": 1}


async def test_conflicts_and_integrity_failures_are_counted_and_marked(
    store: RedisStatePersistence, telemetry: Telemetry, server: EmbeddedRedis
) -> None:
    await store.save("s", {"v": 1})
    with pytest.raises(VersionConflictError):
        await store.save("s", {"v": 2}, expected_version=0)
    client = aioredis.Redis.from_url(server.url)
    try:
        frame = await aget_version(client, "oteltest", "s", 1)
        # Flip a checksum byte (writing a fixed value could leave it unchanged).
        await aset_version(client, "oteltest", "s", 1, frame[:12] + bytes([frame[12] ^ 0xFF]) + frame[13:])
    finally:
        await client.aclose()
    with pytest.raises(IntegrityError):
        await store.load("s")

    metrics = telemetry.metrics()
    assert [point.value for point in metrics["recostate.conflicts"]] == [1]
    assert [point.value for point in metrics["recostate.integrity_failures"]] == [1]
    failed = {
        (point.attributes["recostate.operation"], point.attributes.get("error.type"))
        for point in metrics["recostate.operation.duration"]
    }
    assert ("save", "VersionConflictError") in failed and ("load", "IntegrityError") in failed
    conflicted = telemetry.finished("recostate.save")[1]
    assert conflicted.status.status_code is StatusCode.ERROR
    assert conflicted.events[0].name == "exception"
    (corrupted,) = telemetry.finished("recostate.load")
    assert corrupted.status.status_code is StatusCode.ERROR


def test_without_opentelemetry_nothing_is_wrapped(server: EmbeddedRedis) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        sys.modules["opentelemetry"] = None  # as if it were not installed
        from recostate import RedisStatePersistence, _telemetry

        assert not _telemetry.ENABLED
        assert not hasattr(RedisStatePersistence.save_with_metadata, "__wrapped__")

        async def main():
            async with RedisStatePersistence({server.url!r}, key_prefix="otel-absent") as store:
                await store.save("s", 1)
                assert await store.load("s") == 1
                await store.delete("s")

        asyncio.run(main())
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_telemetry_can_be_switched_off_by_environment() -> None:
    script = (
        "from recostate import RedisStatePersistence, _telemetry\n"
        "assert not _telemetry.ENABLED\n"
        "assert not hasattr(RedisStatePersistence.load_with_metadata, '__wrapped__')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RECOSTATE_TELEMETRY": "off"},
    )
    assert result.returncode == 0, result.stderr


async def test_without_a_provider_calls_skip_telemetry_entirely(
    store: RedisStatePersistence, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No SDK provider is set globally in the test process: the API's proxies
    # would record nothing, so the store must not even build spans for them.
    _telemetry.configure()
    assert not _telemetry._active()

    def no_instruments() -> Any:
        raise AssertionError("telemetry was used without a provider")

    monkeypatch.setattr(_telemetry, "_get", no_instruments)
    meta = await store.save("quiet", {"a": 1})
    assert await store.load("quiet") == {"a": 1}
    assert meta.version == 1


def test_a_configured_provider_turns_telemetry_on(telemetry: Telemetry) -> None:
    assert _telemetry._active()
