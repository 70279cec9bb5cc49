"""Checks of call arguments, run before any I/O.

Each check raises :class:`~recostate.InvalidInputError` and returns the value in
its normal form. Values are never echoed whole into messages: a state id may be
long, and tags may carry user data.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from recostate._errors import InvalidInputError
from recostate._types import DEFAULT, Default

__all__ = [
    "MAX_STATE_ID_LENGTH",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "MAX_TTL_SECONDS",
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "MAX_VERSION",
    "check_idempotency_key",
    "check_keep_last",
    "check_state_id",
    "check_tag",
    "check_tags",
    "check_ttl",
    "check_version",
    "resolve_ttl",
]

MAX_STATE_ID_LENGTH = 1024
MAX_TAG_LENGTH = 1024
MAX_TAGS = 256
MAX_IDEMPOTENCY_KEY_LENGTH = 256
# About 100 years: far beyond any real expiry, far below the millisecond overflow
# of Redis's PEXPIRE.
MAX_TTL_SECONDS = 100 * 365 * 24 * 3600
# Lua numbers are doubles: larger version numbers would lose precision on the server.
MAX_VERSION = 2**53 - 1


def _kind(value: object) -> str:
    return type(value).__name__


def _text(value: object, name: str, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a str, not {_kind(value)}")
    if not value:
        raise InvalidInputError(f"{name} must not be empty")
    if len(value) > limit:
        raise InvalidInputError(f"{name} is {len(value)} characters long; the limit is {limit}")
    return value


def check_state_id(state_id: object) -> str:
    """Return ``state_id`` if it is a non-empty ``str`` of at most 1024 characters."""
    return _text(state_id, "state_id", MAX_STATE_ID_LENGTH)


def check_idempotency_key(key: object) -> str:
    """Return ``key`` if it is a non-empty ``str`` of at most 256 characters."""
    return _text(key, "idempotency_key", MAX_IDEMPOTENCY_KEY_LENGTH)


def _non_negative_int(value: object, name: str) -> int:
    # bool is a subclass of int, but True as a version is always a caller's mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be an int, not {_kind(value)}")
    if value < 0:
        raise InvalidInputError(f"{name} must be >= 0, got {value}")
    return int(value)


def _version_number(value: object, name: str) -> int:
    number = _non_negative_int(value, name)
    if number > MAX_VERSION:
        raise InvalidInputError(f"{name} must be at most {MAX_VERSION}")
    return number


def check_version(value: object, name: str = "version") -> int:
    """Return ``value`` if it is a non-negative ``int`` up to 2**53 - 1 (bools refused)."""
    return _version_number(value, name)


def check_keep_last(value: object) -> int:
    """Return ``keep_last`` of ``prune`` if it is a non-negative ``int``."""
    return _non_negative_int(value, "keep_last")


def check_tag(tag: object) -> str:
    """Return ``tag`` if it is a non-empty ``str`` of at most 1024 characters, valid UTF-8.

    Unlike state ids, tags are stored as text (in the frame header and as JSON),
    so a lone surrogate, which UTF-8 cannot carry, is refused.
    """
    text = _text(tag, "a tag", MAX_TAG_LENGTH)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError("a tag must be valid Unicode text (no lone surrogates)") from exc
    return text


def check_tags(tags: object) -> tuple[str, ...]:
    """Return the tags as a tuple, in the order given, duplicates dropped.

    ``None`` means no tags. A lone ``str`` is refused rather than split into characters.
    """
    if tags is None:
        return ()
    if isinstance(tags, (str, bytes, bytearray)) or not isinstance(tags, Iterable):
        raise InvalidInputError(f"tags must be an iterable of str, not {_kind(tags)}")
    seen: dict[str, None] = {}
    for tag in tags:
        seen[check_tag(tag)] = None
        if len(seen) > MAX_TAGS:
            raise InvalidInputError(f"at most {MAX_TAGS} tags per version")
    return tuple(seen)


def check_ttl(ttl: object) -> int | None:
    """Return ``ttl`` if it is ``None`` or a positive ``int`` of seconds (bools refused)."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        raise InvalidInputError(f"ttl must be None or an int of seconds, not {_kind(ttl)}")
    if ttl <= 0:
        raise InvalidInputError(f"ttl must be a positive number of seconds, got {ttl}")
    if ttl > MAX_TTL_SECONDS:
        raise InvalidInputError(f"ttl must be at most {MAX_TTL_SECONDS} seconds, got {ttl}")
    return int(ttl)


def resolve_ttl(ttl: int | Default | Any | None, default_ttl: int | None) -> int | None:
    """Return the TTL a call applies: ``default_ttl`` when ``ttl`` was left out."""
    if ttl is DEFAULT:
        return default_ttl
    return check_ttl(ttl)
