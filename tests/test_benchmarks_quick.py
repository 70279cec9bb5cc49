"""``python -m benchmarks --quick`` runs end to end and reports (no timing asserts)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recostate.testing import find_server

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.integration


def test_quick_benchmark_runs_and_reports(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)]
    if os.environ.get("REDIS_URL"):
        command += ["--redis-url", os.environ["REDIS_URL"]]
    elif find_server() is None:
        pytest.skip("no redis-server binary and no REDIS_URL")
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=110, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for heading in ("throughput ops/s", "longest event-loop stall", "bytes per stored version", "targets"):
        assert heading in out
    results = json.loads((tmp_path / "quick.json").read_text())
    contenders = {cell["contender"] for cell in results["cells"]}
    assert {"recostate", "redis-py by hand"} <= contenders
    measured = [cell for cell in results["cells"] if not cell["note"]]
    assert measured and all(cell["ops"] > 0 and cell["errors"] == 0 for cell in measured)
    assert {t["target"].split(",")[0] for t in results["targets"]} >= {
        "save throughput",
        "load throughput",
    }
    assert results["soak"]["operations"] > 0 and results["soak"]["errors"] == 0
    assert results["memory"]["lz4"]["versions"] > 0
    # Peers and tools that are not installed are skipped with a note, never a failure.
    for name in ("aiocache", "cashews"):
        if importlib.util.find_spec(name) is None:
            assert any(name in note for note in results["notes"])
        else:
            assert any(cell["contender"] == name for cell in results["cells"])
    if importlib.util.find_spec("matplotlib") is None:
        assert any("matplotlib" in note for note in results["notes"])
    else:
        assert (tmp_path / "quick.png").stat().st_size > 0
