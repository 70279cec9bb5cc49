"""The codec: states to stored frames and back.

* ``frame``: the frame layout (checksummed, self-describing), nothing else.
* ``headers``: what each kind of frame carries in its header.
* ``compression``: LZ4 and zlib, with dictionaries, bounded.
* ``states``: msgspec encoding and decoding of states.
* ``chunking`` and ``manifest``: large states as content-defined chunks and a
  manifest tree.
* ``policy``: :class:`Codec`, which applies one store's settings to all of it.
"""

from recostate._codec.headers import VersionHeader
from recostate._codec.policy import (
    Codec,
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
