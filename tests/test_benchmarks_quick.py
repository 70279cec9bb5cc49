"""``python -m benchmarks --quick`` runs end to end and reports (no timing asserts)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from recostate.testing import find_server

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.integration


def _measured(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [cell for cell in cells if not cell["note"]]


def test_quick_benchmark_runs_and_reports(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)]
    if os.environ.get("REDIS_URL"):
        command += ["--redis-url", os.environ["REDIS_URL"]]
    elif find_server() is None:
        pytest.skip("no redis-server binary and no REDIS_URL")
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=150, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for heading in ("summary", "ops/s (p50/p99 ms) client+server CPU", "targets", "run targets"):
        assert heading in out
    results = json.loads((tmp_path / "quick.json").read_text())
    assert (tmp_path / "quick.md").read_text().startswith("Run of")
    assert results["lines"], results["notes"]
    # Every server line the machine lacks is named in a note, never a failure.
    found = {line["line"] for line in results["lines"]}
    if not os.environ.get("REDIS_URL"):
        for name in ("redis-6.2", "redis-7.0", "valkey-8.1"):
            assert name in found or any(name in note for note in results["notes"])
    for line in results["lines"]:
        assert not line.get("failed"), line["failed"]
        cells = line["cells"]
        contenders = {cell["contender"] for cell in cells}
        assert {"recostate", "redis-py by hand"} <= contenders
        assert {cell["config"] for cell in cells} >= {"seed", "no-ttl"}
        measured = _measured(cells)
        assert measured and all(cell["ops"] > 0 and cell["errors"] == 0 for cell in measured)
        # Where the time went: both halves measured for every cell.
        assert all(cell["client_cpu_us"] > 0 and cell["server_cpu_us"] > 0 for cell in measured)
        assert {t["target"].split(",")[0] for t in line["targets"]} >= {
            "save throughput",
            "load throughput",
        }
        assert line["memory"]["lz4"]["versions"] > 0
        storage = line["storage"]
        for run in storage["history"]:
            default = run["variants"]["default"]
            assert default["all_versions"]["memory_usage_bytes"] > default["final_once"][
                "memory_usage_bytes"
            ] > 0
        append = storage["append"]["variants"]["default"]
        assert append["append_bytes_median"] > 0
        assert storage["save_cost"]["ttl_over_no_ttl"] is not None
    row = results["summary"][0]
    assert row["save_64"] is not None and row["load_64"] is not None
    assert results["soak"]["operations"] > 0 and results["soak"]["errors"] == 0
    # Peers and tools that are not installed are skipped with a note, never a failure.
    for name in ("aiocache", "cashews"):
        if importlib.util.find_spec(name) is None:
            assert any(name in note for note in results["notes"])
    graph = results["agent_graph"]
    if importlib.util.find_spec("langgraph") is None or os.environ.get("REDIS_URL"):
        assert graph["skipped"] in results["notes"]
    else:
        names = {row["name"] for row in graph["results"]}
        assert {"InMemorySaver", "InMemory + 1 RTT"} <= names
        for entry in graph["results"]:
            assert entry["steps"] > 0 and entry["errors"] == 0, entry
            assert not entry["note"], entry
    if importlib.util.find_spec("matplotlib") is None:
        assert any("matplotlib" in note for note in results["notes"])
    else:
        assert (tmp_path / "quick.png").stat().st_size > 0
