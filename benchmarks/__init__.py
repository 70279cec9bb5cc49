"""Benchmarks: recostate against the code users would otherwise write.

Run ``python -m benchmarks`` (``--quick`` for a pass of about a minute,
``--servers`` to pick server lines, ``--redis-url`` for a server of your own).
See ``docs/performance.md``.
"""

from __future__ import annotations

import importlib.metadata


def package_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or ``None``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
