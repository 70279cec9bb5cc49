"""What this client remembers of the pieces each state holds on the server.

A save of a chunked state sends only the pieces the server does not hold,
and a load reads only the pieces the client does not hold. The client learns
both from its own saves and loads (the pieces of the version it last wrote
or read, their contents, and the state's dictionary) and keeps that for the
states it touched most recently, within a bound on the pieces and bytes
remembered. A memory that is wrong is never a risk: the save script checks
every reference, and a save whose pieces the server lacks is answered
"missing" and sent again whole; a load checks the state it assembles against
its CRC-32.
"""

from __future__ import annotations

from collections import OrderedDict

from recostate._codec.versions import KnownPieces

__all__ = ["PieceMemory"]


class PieceMemory:
    """A bounded, least-recently-used map of state id to :class:`KnownPieces`."""

    #: The most piece ids remembered over all states (about 100 bytes each).
    MAX_PIECES = 200_000
    #: The most bytes of piece contents held over all states.
    MAX_BYTES = 64 * 1024 * 1024

    def __init__(self, max_pieces: int = MAX_PIECES, max_bytes: int = MAX_BYTES) -> None:
        self._states: OrderedDict[str, tuple[KnownPieces, int]] = OrderedDict()
        self._pieces = 0
        self._bytes = 0
        self._max = max_pieces
        self._max_bytes = max_bytes

    def get(self, state_id: str) -> KnownPieces | None:
        """Return what is known of ``state_id``'s pieces, or ``None``."""
        entry = self._states.get(state_id)
        if entry is None:
            return None
        self._states.move_to_end(state_id)
        return entry[0]

    def remember(self, state_id: str, known: KnownPieces) -> None:
        """Record ``known`` as what the server holds for ``state_id``."""
        entry = self._states.get(state_id)
        if entry is not None and entry[0] is known:
            self._states.move_to_end(state_id)  # a load that found nothing new
            return
        self.forget(state_id)
        held = known.held_bytes
        if held > self._max_bytes:
            # Too large to hold: remember what the server has, not the contents.
            known = KnownPieces(known.sizes, known.dictionary_id, known.dictionary)
            held = 0
        if len(known.sizes) > self._max:
            return
        self._states[state_id] = (known, held)
        self._pieces += len(known.sizes)
        self._bytes += held
        while self._pieces > self._max or self._bytes > self._max_bytes:
            _, (oldest, oldest_bytes) = self._states.popitem(last=False)
            self._pieces -= len(oldest.sizes)
            self._bytes -= oldest_bytes

    def forget(self, state_id: str) -> None:
        """Drop what is known of ``state_id`` (it was deleted, or the memory proved wrong)."""
        entry = self._states.pop(state_id, None)
        if entry is not None:
            self._pieces -= len(entry[0].sizes)
            self._bytes -= entry[1]
