"""States to msgpack bytes and back, with msgspec.

msgspec encodes what the contract accepts (dicts, lists, scalars, bytes,
datetimes, UUIDs, ``msgspec.Struct``, dataclasses) and decodes into builtins
or into a requested type. Nothing here pickles, and decoding never runs code.
"""

from __future__ import annotations

from typing import Any

import msgspec

from recostate._errors import PayloadTooLargeError, SerializationError

__all__ = ["StateCodec", "UndecodableState"]


class UndecodableState(ValueError):
    """Stored bytes that are not msgpack (an integrity failure, not a type mismatch)."""


class StateCodec:
    """Encodes states to msgpack and decodes them, one decoder per requested type."""

    def __init__(self, max_payload_bytes: int) -> None:
        self.max_payload_bytes = max_payload_bytes
        self._encoder = msgspec.msgpack.Encoder()
        self._decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {
            None: msgspec.msgpack.Decoder()
        }

    def encode(self, state: object) -> bytes:
        """Return the msgpack bytes of ``state``; ``SerializationError`` or ``PayloadTooLargeError``."""
        try:
            raw = self._encoder.encode(state)
        except (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError) as exc:
            # The message names the type, never the value.
            raise SerializationError(
                f"cannot encode a state of type {type(state).__name__}: {type(exc).__name__}"
            ) from exc
        if len(raw) > self.max_payload_bytes:
            raise PayloadTooLargeError(len(raw), self.max_payload_bytes)
        return raw

    def _decoder(self, type_: Any) -> msgspec.msgpack.Decoder[Any]:
        decoder = self._decoders.get(type_)
        if decoder is None:
            decoder = self._decoders[type_] = msgspec.msgpack.Decoder(type_)
        return decoder

    def decode(self, raw: bytes | memoryview, type_: Any = None) -> Any:
        """Return the state in ``raw``, as builtins or as a ``type_``.

        Raises:
            UndecodableState: ``raw`` is not msgpack.
            SerializationError: ``raw`` is sound but is not a ``type_``.
        """
        try:
            return self._decoder(type_).decode(raw)
        except msgspec.ValidationError as exc:
            # The bytes are sound (their checksum held); they just are not a `type_`.
            raise SerializationError(
                f"stored state does not match the requested type: {exc}"
            ) from exc
        except (msgspec.DecodeError, RecursionError) as exc:
            raise UndecodableState("payload does not decode") from exc
