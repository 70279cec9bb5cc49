"""What this client remembers of the pieces each state holds on the server.

A save of a chunked state sends only the pieces the server does not hold. The
client learns what it holds from its own saves and loads (the pieces of the
version it last wrote or read, and the state's dictionary) and keeps that for
the states it touched most recently, within a bound on the number of pieces
remembered. A memory that is wrong is never a risk: the save script checks
every reference, and a save whose pieces the server lacks is answered
"missing" and sent again whole.
"""

from __future__ import annotations

from collections import OrderedDict

from recostate._codec.policy import KnownPieces

__all__ = ["PieceMemory"]


class PieceMemory:
    """A bounded, least-recently-used map of state id to :class:`KnownPieces`."""

    #: The most piece ids remembered over all states (about 100 bytes each).
    MAX_PIECES = 200_000

    def __init__(self, max_pieces: int = MAX_PIECES) -> None:
        self._states: OrderedDict[str, KnownPieces] = OrderedDict()
        self._pieces = 0
        self._max = max_pieces

    def get(self, state_id: str) -> KnownPieces | None:
        """Return what is known of ``state_id``'s pieces, or ``None``."""
        known = self._states.get(state_id)
        if known is not None:
            self._states.move_to_end(state_id)
        return known

    def remember(self, state_id: str, known: KnownPieces) -> None:
        """Record ``known`` as what the server holds for ``state_id``."""
        self.forget(state_id)
        if len(known.sizes) > self._max:
            return
        self._states[state_id] = known
        self._pieces += len(known.sizes)
        while self._pieces > self._max:
            _, oldest = self._states.popitem(last=False)
            self._pieces -= len(oldest.sizes)

    def forget(self, state_id: str) -> None:
        """Drop what is known of ``state_id`` (it was deleted, or the memory proved wrong)."""
        known = self._states.pop(state_id, None)
        if known is not None:
            self._pieces -= len(known.sizes)
