"""Turning metadata, states and figures into terminal text and JSON."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import click
import msgspec

from recostate._types import CompressionType, StateMetadata

__all__ = [
    "aligned",
    "human_bytes",
    "metadata_dict",
    "metadata_lines",
    "progress",
    "ratio",
    "state_json",
    "table",
    "timestamp",
    "to_json",
]

T = TypeVar("T")


def human_bytes(size: int) -> str:
    """Return ``size`` as ``"812 B"``, ``"1.5 KiB"``, ``"3.0 MiB"``..."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def timestamp(moment: datetime) -> str:
    """Return a UTC time as ``2026-11-26 12:15:16.123Z``."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def ratio(meta: StateMetadata) -> str:
    """Return the encoded size per stored byte, ``"4.2x"``."""
    return f"{meta.size_bytes / meta.stored_bytes:.1f}x" if meta.stored_bytes else "-"


def metadata_dict(meta: StateMetadata) -> dict[str, Any]:
    """Return the metadata as JSON-ready builtins (times in ISO 8601)."""
    out: dict[str, Any] = msgspec.to_builtins(meta)
    return out


def metadata_lines(meta: StateMetadata, expires_in_ms: int | None = None) -> list[str]:
    """Return the metadata as aligned ``name: value`` lines."""
    codec = meta.compression_type
    rows = [
        ("state_id", meta.state_id),
        ("version", str(meta.version)),
        ("updated_at", timestamp(meta.updated_at)),
        ("created_at", timestamp(meta.created_at)),
        ("size", f"{meta.size_bytes} bytes encoded, {meta.stored_bytes} stored"),
        (
            "compression",
            codec.value
            if codec is CompressionType.NONE
            else f"{codec.value} ({ratio(meta)})",
        ),
        ("checksum", meta.checksum),
        ("tags", ", ".join(meta.tags) or "-"),
        ("ttl", "-" if meta.ttl is None else f"{meta.ttl} s when saved"),
        ("expires_in", "never" if expires_in_ms is None else f"{expires_in_ms / 1000:.1f} s"),
    ]
    if meta.rolled_back_from is not None:
        rows.append(("rolled_back_from", str(meta.rolled_back_from)))
    return aligned(rows)


def aligned(rows: Sequence[tuple[str, str]]) -> list[str]:
    """Return ``(name, value)`` pairs as ``name: value`` lines, the values in one column."""
    width = max(len(name) for name, _ in rows)
    return [f"{name + ':':<{width + 1}} {value}" for name, value in rows]


def to_json(value: Any, *, indent: int = 2) -> str:
    """Return ``value`` as JSON text; bytes become base64, times ISO 8601."""
    raw = msgspec.json.encode(value)
    return (msgspec.json.format(raw, indent=indent) if indent else raw).decode()


def state_json(state: Any) -> str:
    """Return a decoded state pretty-printed as JSON, or its ``repr`` if JSON cannot hold it."""
    try:
        return to_json(state)
    except (TypeError, ValueError, msgspec.EncodeError):
        return repr(state)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Return rows of cells as an aligned plain-text table with a header line."""
    body = [list(row) for row in rows]
    widths = [len(head) for head in headers]
    for row in body:
        for column, cell in enumerate(row):
            widths[column] = max(widths[column], len(cell))
    lines = ["  ".join(head.ljust(widths[i]) for i, head in enumerate(headers)).rstrip()]
    for row in body:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return "\n".join(lines)


@contextmanager
def progress(items: Sequence[T], label: str, *, show: bool | None) -> Iterator[Iterable[T]]:
    """Yield ``items``, drawing a progress bar on standard error while they are consumed.

    ``show=None`` draws it only when standard error is a terminal, so piped and
    logged runs stay clean.
    """
    wanted = sys.stderr.isatty() if show is None else show
    if not wanted:
        yield items
        return
    with click.progressbar(
        items, label=label, file=sys.stderr, show_pos=True, show_eta=True, width=30
    ) as bar:
        yield bar
