"""``export`` and ``import``: states as JSON Lines, for backup and for moving between servers.

The first line is a header::

    {"format": "recostate-export", "format_version": 2, "key_prefix": "...", "exported_at": "..."}

then one line per stored version, oldest first within each state::

    {"state_id": "agent-7", "version": 3, "created_at_ms": 1764159316123,
     "expires_in_ms": null, "metadata": {...}, "frame": "<base64>",
     "pieces": {"<hex id>": "<base64>", ...}, "dictionary": "<base64>"}

``frame`` is the version exactly as stored (codec, checksum, write time, tags
and rollback origin included), so an import restores each version bit for bit
under its own number. A chunked version's frame is its manifest: ``pieces``
holds the chunks and manifest nodes it uses that earlier lines of the same
state did not carry (each piece is written once per state), and
``dictionary`` the state's compression dictionary, on the first line that
needs it. ``metadata`` is there for people and tools reading the file;
``state`` (with ``--with-state``) adds the decoded state as JSON.
``expires_in_ms`` is the time the state had left when it was exported; the
import gives it that long again, in the same atomic write as each version.

Exports of format version 1 (recostate 0.1: whole versions only) import as they are.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any

import msgspec

from recostate._cli import raw
from recostate._cli.render import metadata_dict
from recostate._codec import StoredVersion
from recostate._codec.manifest import refs_of_frame
from recostate._errors import IntegrityError
from recostate._persistence import RedisStatePersistence

__all__ = ["FORMAT", "ExportReport", "ImportReport", "export_states", "import_states"]

FORMAT = "recostate-export"
FORMAT_VERSION = 2
#: The export formats this recostate imports.
READABLE_VERSIONS = (1, 2)


class ImportFormatError(ValueError):
    """The input is not a recostate export, or a line of it is malformed."""


@dataclass
class ExportReport:
    """What an export wrote and what it had to leave out."""

    states: int = 0
    versions: int = 0
    corrupted: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    """What an import wrote, skipped and replaced."""

    states: int = 0
    versions: int = 0
    skipped: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, what: str, number: int) -> bytes:
    if not isinstance(text, str):
        raise ImportFormatError(f"line {number}: {what} must be base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ImportFormatError(f"line {number}: {what} is not valid base64") from None


def _line(record: dict[str, Any]) -> str:
    return msgspec.json.encode(record).decode() + "\n"


async def export_states(
    store: RedisStatePersistence,
    ids: Sequence[str],
    out: IO[str],
    *,
    with_state: bool,
    tick: Callable[[], None] = lambda: None,
) -> ExportReport:
    """Write the header and every stored version of ``ids`` to ``out``; ``tick`` after each state.

    A version that fails its checksum is left out and named in the report.
    """
    report = ExportReport()
    out.write(
        _line(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "key_prefix": store.config.key_prefix,
                "exported_at": datetime.now(timezone.utc).isoformat(),
            }
        )
    )
    for state_id in ids:
        numbers, expires = await raw.state_info(store, state_id)
        wrote = False
        written: set[bytes] = set()  # pieces already carried by a line of this state
        dictionary_written = False
        for number in numbers:
            found = await raw.read_version(store, state_id, number)
            if found is None:
                continue  # trimmed or expired since the index was read
            stored, created_ms = found
            try:
                loaded = await store.load_with_metadata(state_id, number)
            except IntegrityError as exc:
                report.corrupted.append(f"{state_id!r} version {number}: {exc.reason}")
                continue
            if loaded is None:
                continue
            state, meta = loaded
            record: dict[str, Any] = {
                "state_id": state_id,
                "version": number,
                "created_at_ms": created_ms,
                "expires_in_ms": expires,
                "metadata": metadata_dict(meta),
                "frame": _b64(stored.frame),
            }
            new_pieces = {
                ident.hex(): _b64(data)
                for ident, data in stored.pieces.items()
                if ident not in written
            }
            if new_pieces:
                record["pieces"] = new_pieces
                written.update(stored.pieces)
            if stored.pieces and stored.dictionary is not None and not dictionary_written:
                record["dictionary"] = _b64(stored.dictionary)
                dictionary_written = True
            if with_state:
                record["state"] = msgspec.to_builtins(state)
            out.write(_line(record))
            report.versions += 1
            wrote = True
        report.states += wrote
        tick()
    return report


def _parse(line: str, number: int) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ImportFormatError(f"line {number}: not JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise ImportFormatError(f"line {number}: not a JSON object")
    return record


def _version_record(
    record: dict[str, Any], number: int
) -> tuple[str, int, bytes, int | None, dict[bytes, bytes], bytes | None]:
    state_id, version = record.get("state_id"), record.get("version")
    frame, expires = record.get("frame"), record.get("expires_in_ms")
    if not isinstance(state_id, str) or not isinstance(version, int) or isinstance(version, bool):
        raise ImportFormatError(f"line {number}: needs a string state_id and an integer version")
    if not isinstance(frame, str):
        raise ImportFormatError(f"line {number}: needs the stored frame (base64)")
    if expires is not None and (not isinstance(expires, int) or expires <= 0):
        raise ImportFormatError(f"line {number}: expires_in_ms must be a positive integer or null")
    pieces_field = record.get("pieces", {})
    if not isinstance(pieces_field, dict):
        raise ImportFormatError(f"line {number}: pieces must be an object of hex id -> base64")
    pieces: dict[bytes, bytes] = {}
    for ident, data in pieces_field.items():
        try:
            key = bytes.fromhex(ident)
        except ValueError:
            raise ImportFormatError(f"line {number}: piece id {ident!r} is not hex") from None
        pieces[key] = _unb64(data, "a piece", number)
    dictionary = record.get("dictionary")
    return (
        state_id,
        version,
        _unb64(frame, "frame", number),
        expires,
        pieces,
        None if dictionary is None else _unb64(dictionary, "dictionary", number),
    )


async def import_states(
    store: RedisStatePersistence,
    source: IO[str],
    *,
    existing: str,
    tick: Callable[[int], None] = lambda size: None,
) -> ImportReport:
    """Write every version in ``source`` (an export) to ``store``; ``tick(len(line))`` per line.

    ``existing`` says what to do with a state the target already has:
    ``"fail"`` (raise :class:`FileExistsError` before writing any of it),
    ``"skip"`` (keep the target's) or ``"replace"`` (delete it, then import).
    """
    report = ImportReport()
    decided: dict[str, bool] = {}  # state id -> import its versions
    pieces: dict[str, dict[bytes, bytes]] = {}  # every piece read so far, per state
    dictionaries: dict[str, bytes] = {}
    header_seen = False
    for number, line in enumerate(source, start=1):
        tick(len(line))
        if not line.strip():
            continue
        record = _parse(line, number)
        if not header_seen:
            if record.get("format") != FORMAT:
                raise ImportFormatError(
                    "not a recostate export: its first line has no "
                    f'"format": "{FORMAT}" header (make one with `recostate export`)'
                )
            if record.get("format_version") not in READABLE_VERSIONS:
                raise ImportFormatError(
                    f"export format version {record.get('format_version')!r} is not supported "
                    f"(this recostate reads versions {', '.join(map(str, READABLE_VERSIONS))})"
                )
            header_seen = True
            continue
        state_id, version, frame, expires, new_pieces, dictionary = _version_record(record, number)
        if state_id not in decided:
            present = await store.exists(state_id)
            if present and existing == "fail":
                raise FileExistsError(
                    f"state {state_id!r} already exists on the target (use --existing skip "
                    f"or --existing replace); stopped there, after importing {report.versions} "
                    f"version(s) of {report.states} state(s)"
                )
            if present and existing == "replace":
                await store.delete(state_id)
                report.replaced.append(state_id)
            if present and existing == "skip":
                report.skipped.append(state_id)
            decided[state_id] = not present or existing == "replace"
            report.states += decided[state_id]
        if not decided[state_id]:
            continue
        held = pieces.setdefault(state_id, {})
        held.update(new_pieces)
        if dictionary is not None:
            dictionaries[state_id] = dictionary
        needed = _needed(frame, held)
        stored = StoredVersion(frame, needed, dictionaries.get(state_id) if needed else None)
        await raw.write_version(store, state_id, version, stored, expires)
        report.versions += 1
    if not header_seen:
        raise ImportFormatError("the input is empty: no recostate export header")
    return report


def _needed(frame: bytes, held: dict[bytes, bytes]) -> dict[bytes, bytes]:
    """Return the pieces a version frame refers to, directly or through nodes, from ``held``."""
    out: dict[bytes, bytes] = {}
    pending = refs_of_frame(frame)
    while pending:
        ident = pending.pop()
        if ident in out or ident not in held:
            continue  # a missing piece fails the version's own check on import
        out[ident] = held[ident]
        pending.extend(refs_of_frame(held[ident]))
    return out
