"""A server-side Lua script as the plumbing sends it: by SHA-1, with its source at hand."""

from __future__ import annotations

import hashlib

__all__ = ["Script"]


class Script:
    """A Lua script with its SHA-1, as EVALSHA needs it (loaded again on NOSCRIPT)."""

    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()

    def __repr__(self) -> str:
        return f"Script({self.name!r}, sha={self.sha[:12]})"
