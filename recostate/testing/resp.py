"""The one RESP helper of the throwaway servers: one command, one reply, a plain socket.

Starting, watching and re-arranging throwaway servers takes only a few
administration commands (``PING``, ``CLUSTER ...``, ``SENTINEL ...``,
``INFO``), sent here over a blocking socket: only ``recostate._redis`` imports
redis-py, and a server that is still starting is easier to probe without a
client's retries and pools.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

__all__ = ["RespError", "admin_command", "answers_ping", "text"]


class RespError(Exception):
    """An error reply of a server to an administration command."""


def _encode(args: Sequence[Any]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = b""

    def _fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self._buf += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self._buf:
            self._fill()
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line

    def _exact(self, size: int) -> bytes:
        while len(self._buf) < size + 2:
            self._fill()
        data, self._buf = self._buf[:size], self._buf[size + 2 :]
        return data

    def reply(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self._exact(size)
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self.reply() for _ in range(count)]
        raise ConnectionError(f"unexpected RESP reply {line[:40]!r}")


def admin_command(port: int, *args: Any, host: str = "127.0.0.1", timeout: float = 10.0) -> Any:
    """Send one command to ``host:port`` and return its reply; ``RespError`` on an error reply.

    Example::

        admin_command(server.port, "CONFIG", "SET", "maxmemory", "10mb")
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(_encode(args))
        reply = _Reader(sock).reply()
    if isinstance(reply, RespError):
        raise reply
    return reply


def text(reply: Any) -> str:
    """Return a reply as ``str`` (bulk replies come as bytes, status replies as str)."""
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def answers_ping(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Tell whether a server listens on ``host:port`` and is up (or up but wants a password)."""
    try:
        admin_command(port, "PING", host=host, timeout=timeout)
    except RespError as exc:
        # Up, but it wants a password, or it is still loading its data.
        return str(exc).startswith(("NOAUTH", "LOADING"))
    except OSError:
        return False
    return True
