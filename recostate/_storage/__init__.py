"""The storage layer: how states live in Redis.

* ``keys``: every key name (the layout).
* ``scripts`` and ``lua/``: the server-side scripts, with constants generated
  from the Python that owns them.
* ``replies``: what the scripts answer, as types.
* ``tags``: the tag index, on one server and on a cluster.
* ``memory``: what this client knows of the pieces each state holds.
* ``states``: :class:`StateStorage`, the operations the rest of recostate calls.

Nothing outside this package builds a key or reads a script's reply.
"""

from recostate._storage.keys import KeySpace, StateKeys
from recostate._storage.memory import PieceMemory
from recostate._storage.replies import (
    Conflict,
    DictionaryMismatch,
    Header,
    Inventory,
    Loaded,
    PiecesMissing,
    Saved,
    StateInfo,
    StoredPiece,
    VersionFrame,
)
from recostate._storage.states import KEEP_TTL, StateStorage, Written

__all__ = [
    "KEEP_TTL",
    "Conflict",
    "DictionaryMismatch",
    "Header",
    "Inventory",
    "KeySpace",
    "Loaded",
    "PieceMemory",
    "PiecesMissing",
    "Saved",
    "StateInfo",
    "StateKeys",
    "StateStorage",
    "StoredPiece",
    "VersionFrame",
    "Written",
]
