"""Signing keys: HMAC-SHA256 over stored frames, with key ids so keys can rotate.

A store given ``signing_key=`` stores every frame with an HMAC-SHA256 in place
of its CRC-32 (checksum algorithm 2 in the frame prefix, see
``recostate._codec``). The checksum field of a signed frame is::

    1 byte   length K of the key id
    K bytes  the key id (ASCII)
    32 bytes HMAC-SHA256 over every other byte of the frame

The key id says which key signed, so a store can hold several keys: the first
one signs every new frame, all of them verify. To rotate, put the new key first
and keep the old ones after it until no frame signed with them is left.

``signing_key`` accepts:

* ``b"secret..."``: one key; its id is derived from the key (a fingerprint of
  12 hex digits), so the same bytes always get the same id;
* a sequence of keys, newest first: ``[new_key, old_key]``, each item either
  bytes (derived id) or a ``(key_id, key)`` pair;
* a mapping ``{key_id: key}`` in insertion order, newest first.

Keys are bytes of at least 16 bytes (32 random bytes are a good choice). A key
id is 1 to 32 characters among ASCII letters, digits, ``-``, ``_`` and ``.``.
Keys never appear in ``repr`` or in messages; ids do.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Final

from recostate._errors import ConfigurationError

__all__ = ["MAC_SIZE", "MAX_KEY_ID_LENGTH", "MIN_KEY_BYTES", "SigningKeys"]

MAC_SIZE: Final = 32
MIN_KEY_BYTES: Final = 16
MAX_KEY_ID_LENGTH: Final = 32
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,32}")


def derived_key_id(key: bytes) -> str:
    """Return the id of a key given without one: a fingerprint of the key."""
    return hashlib.sha256(b"recostate signing key id\x00" + key).hexdigest()[:12]


def _key(value: object, where: str) -> bytes:
    if isinstance(value, str):
        raise ConfigurationError(
            f"{where}: a signing key must be bytes, not str (use .encode() or bytes.fromhex())"
        )
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ConfigurationError(
            f"{where}: a signing key must be bytes, not {type(value).__name__}"
        )
    key = bytes(value)
    if len(key) < MIN_KEY_BYTES:
        raise ConfigurationError(
            f"{where}: a signing key must be at least {MIN_KEY_BYTES} bytes, got {len(key)}"
        )
    return key


def _key_id(value: object, where: str) -> str:
    if not isinstance(value, str) or not _KEY_ID.fullmatch(value):
        raise ConfigurationError(
            f"{where}: a key id must be 1 to {MAX_KEY_ID_LENGTH} characters among "
            "ASCII letters, digits, '-', '_' and '.'"
        )
    return value


class SigningKeys:
    """The keys of one store: the first signs, every one verifies.

    Build it with :meth:`build` from the ``signing_key`` option.
    """

    __slots__ = ("_by_id", "_signer")

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ConfigurationError("signing_key holds no key")
        by_id: dict[str, bytes] = {}
        for key_id, key in keys:
            if key_id in by_id:
                raise ConfigurationError(f"signing_key: key id {key_id!r} appears twice")
            by_id[key_id] = key
        self._by_id = by_id
        self._signer = keys[0]

    @classmethod
    def build(cls, value: object) -> SigningKeys | None:
        """Return the keys the ``signing_key`` option names (``None``: no signing).

        Raises:
            ConfigurationError: the option is not one of the accepted forms.
        """
        if value is None:
            return None
        if isinstance(value, SigningKeys):
            return value
        if isinstance(value, (bytes, bytearray, memoryview, str)):
            key = _key(value, "signing_key")
            return cls([(derived_key_id(key), key)])
        if isinstance(value, Mapping):
            return cls(
                [
                    (_key_id(k, "signing_key"), _key(v, f"signing_key[{k!r}]"))
                    for k, v in value.items()
                ]
            )
        if isinstance(value, (list, tuple)):
            keys: list[tuple[str, bytes]] = []
            for index, item in enumerate(value):
                where = f"signing_key[{index}]"
                if isinstance(item, tuple):
                    if len(item) != 2:
                        raise ConfigurationError(f"{where}: expected a (key_id, key) pair")
                    keys.append((_key_id(item[0], where), _key(item[1], where)))
                else:
                    key = _key(item, where)
                    keys.append((derived_key_id(key), key))
            return cls(keys)
        raise ConfigurationError(
            "signing_key must be bytes, a list of keys (newest first) or a mapping "
            f"{{key_id: key}}, not {type(value).__name__}"
        )

    @property
    def signing_id(self) -> str:
        """The id of the key that signs new frames."""
        return self._signer[0]

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of every key, the signing one first."""
        return tuple(self._by_id)

    def field(self, key_id: str) -> bytes:
        """Return the start of a checksum field for ``key_id``: its length and its bytes."""
        raw = key_id.encode("ascii")
        return bytes((len(raw),)) + raw

    def signer(self) -> hmac.HMAC:
        """Return a fresh HMAC-SHA256 under the signing key."""
        return hmac.new(self._signer[1], digestmod=hashlib.sha256)

    def verifier(self, key_id: str) -> hmac.HMAC | None:
        """Return a fresh HMAC-SHA256 under the key ``key_id``, or ``None`` if not held."""
        key = self._by_id.get(key_id)
        return None if key is None else hmac.new(key, digestmod=hashlib.sha256)

    def __repr__(self) -> str:
        return f"SigningKeys(key_ids={self.key_ids!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SigningKeys):
            return NotImplemented
        return self._signer == other._signer and self._by_id == other._by_id

    def __hash__(self) -> int:
        return hash(self.key_ids)
