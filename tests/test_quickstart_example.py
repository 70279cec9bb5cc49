"""examples/quickstart.py runs as a user would run it, against the test server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from recostate import ConfigurationError, RedisStatePersistence
from tests.conftest import ServerHandle

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_example_runs(redis_server: ServerHandle) -> None:
    if redis_server.cluster is not None:
        pytest.skip("the example reads a one-server REDIS_URL")
    env = {**os.environ, "REDIS_URL": redis_server.url}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "conflict: expected 1, head is 2" in result.stdout
    assert "after rollback: {'step': 1}" in result.stdout


def test_tls_options_on_plain_url_are_refused_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="redis://"):
        RedisStatePersistence("redis://127.0.0.1:1/0", redis_options={"ssl_ca_certs": "/x.pem"})
    # The same options fit a rediss:// URL (nothing connects yet).
    RedisStatePersistence("rediss://127.0.0.1:1/0", redis_options={"ssl_ca_certs": "/x.pem"})
