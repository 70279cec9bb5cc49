"""The codec: states to stored frames and back.

* ``frame``: the frame layout (checksummed, self-describing), nothing else.
* ``headers``: what each kind of frame carries in its header.
* ``compression``: LZ4 and zlib, with dictionaries, bounded.
* ``states``: msgspec encoding and decoding of states.
* ``chunking`` and ``manifest``: large states as content-defined chunks and a
  manifest tree.
* ``versions``: what the codec and the storage layer hand each other.
* ``reading`` (:class:`VersionReader`) and ``policy`` (:class:`Codec`, a
  reader that also writes): one store's settings applied to all of it.
* ``pieces``: the hot loop of reading many chunks; ``audit``: a check of
  everything a state stores.
"""

from recostate._codec.headers import VersionHeader
from recostate._codec.policy import Codec
from recostate._codec.versions import (
    EncodedVersion,
    KnownPieces,
    StoredVersion,
    VersionInfo,
    now_ms,
)

__all__ = [
    "Codec",
    "EncodedVersion",
    "KnownPieces",
    "StoredVersion",
    "VersionHeader",
    "VersionInfo",
    "now_ms",
]
