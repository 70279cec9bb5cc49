"""States to msgpack bytes and back, with msgspec.

msgspec encodes what the contract accepts (dicts, lists, scalars, bytes,
datetimes, UUIDs, ``msgspec.Struct``, dataclasses, and pydantic models through
the hooks of ``recostate._models``) and decodes into builtins or into a
requested type. Nothing here pickles, and decoding never runs code.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Generator
from itertools import accumulate
from typing import Any

import msgspec

from recostate import _models as models
from recostate._errors import PayloadTooLargeError, SerializationError

__all__ = ["DECODE_STEP", "StateCodec", "UndecodableState"]

#: About how many bytes of a large state :meth:`StateCodec.decode_steps` decodes per step.
DECODE_STEP = 256 * 1024

# A container's elements as undecoded views: msgspec finds where each ends
# without building anything.
_raw_map = msgspec.msgpack.Decoder(dict[Any, msgspec.Raw])
_raw_list = msgspec.msgpack.Decoder(list[msgspec.Raw])


class UndecodableState(ValueError):
    """Stored bytes that are not msgpack (an integrity failure, not a type mismatch)."""


class StateCodec:
    """Encodes states to msgpack and decodes them, one decoder per requested type."""

    def __init__(self, max_payload_bytes: int) -> None:
        self.max_payload_bytes = max_payload_bytes
        self._encoder = msgspec.msgpack.Encoder(enc_hook=models.enc_hook)
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
            decoder = self._decoders[type_] = msgspec.msgpack.Decoder(
                type_, dec_hook=models.dec_hook
            )
        return decoder

    def decode_steps(self, raw: bytes | memoryview) -> Generator[None, None, Any]:
        """Decode ``raw`` into builtins in steps, yielding between them; the result is returned.

        msgspec holds the GIL while it decodes, in a worker thread too, so a
        large state decoded in one call stalls the event loop for as long.
        Here a large map or array is split into its elements (``msgspec.Raw``
        views, found without building anything) and they are decoded one
        after another, recursively for large ones; a step ends after about
        :data:`DECODE_STEP` bytes. The result equals :meth:`decode`'s.

        Raises:
            UndecodableState: ``raw`` is not msgpack.
        """
        budget = [DECODE_STEP]
        try:
            return (yield from self._steps(raw, budget))
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError, RecursionError) as exc:
            raise UndecodableState("payload does not decode") from exc

    def _steps(self, raw: bytes | memoryview, budget: list[int]) -> Generator[None, None, Any]:
        size = len(raw)
        kind = raw[0] if size >= DECODE_STEP else None
        if kind is not None and (0x80 <= kind <= 0x8F or kind in (0xDE, 0xDF)):
            out_map: dict[Any, Any] = {}
            for key, value in _raw_map.decode(raw).items():
                out_map[key] = yield from self._steps(memoryview(value), budget)
            return out_map
        if kind is not None and (0x90 <= kind <= 0x9F or kind in (0xDC, 0xDD)):
            return (yield from self._list_steps(raw, kind, budget))
        value = self._decoders[None].decode(raw)
        yield from self._spent(size, budget)
        return value

    def _list_steps(
        self, raw: bytes | memoryview, kind: int, budget: list[int]
    ) -> Generator[None, None, list[Any]]:
        # Runs of small elements are decoded together, as an array of their
        # own (a 5-byte header before their bytes): one call per step. The
        # elements' sizes come from msgspec at C speed; Python loops over
        # runs and large elements only.
        view = memoryview(raw)
        items = _raw_list.decode(raw)
        ends = list(accumulate(map(len, items), initial=1 if kind <= 0x9F else 3 if kind == 0xDC else 5))
        out: list[Any] = []
        first = 0  # the first element of the current run
        while first < len(items):
            room = max(1, budget[0])
            # The elements from ``first`` that fit in what is left of the step.
            last = min(len(items), bisect_right(ends, ends[first] + room, first + 1) - 1)
            if last > first:
                out += self._run(view, ends[first], ends[last], last - first)
                yield from self._spent(ends[last] - ends[first], budget)
                first = last
                continue
            # One element alone: large (opened in turn) or larger than what is left of the step.
            out.append((yield from self._steps(view[ends[first] : ends[first + 1]], budget)))
            first += 1
        return out

    def _run(self, view: memoryview, start: int, end: int, count: int) -> list[Any]:
        if not count:
            return []
        decoded: list[Any] = self._decoders[None].decode(
            b"".join((b"\xdd", count.to_bytes(4, "big"), view[start:end]))
        )
        return decoded

    @staticmethod
    def _spent(size: int, budget: list[int]) -> Generator[None, None, None]:
        budget[0] -= size
        if budget[0] <= 0:
            budget[0] = DECODE_STEP
            yield

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
