"""recostate: versioned, compressed, checksummed state persistence on Redis, for asyncio.

Example::

    from recostate import RedisStatePersistence

    async with RedisStatePersistence("redis://localhost:6379/0") as store:
        await store.save("agent-7", {"step": 1}, tags=["agents"])
        state = await store.load("agent-7")

``recostate.sync.RedisStatePersistence`` offers the same operations without
``await``.
"""

import logging

from recostate._errors import (
    ConfigurationError,
    IntegrityError,
    InvalidInputError,
    PayloadTooLargeError,
    RecostateError,
    ReplicationError,
    SerializationError,
    StoreClosedError,
    StoreRefusedError,
    StoreUnavailableError,
    VersionConflictError,
    VersionNotFoundError,
)
from recostate._persistence import RedisStatePersistence
from recostate._types import DEFAULT, CompressionType, StateMetadata

__version__ = "0.2.0"

# A library never configures logging; the application decides where records go.
logging.getLogger("recostate").addHandler(logging.NullHandler())

__all__ = [
    "DEFAULT",
    "CompressionType",
    "ConfigurationError",
    "IntegrityError",
    "InvalidInputError",
    "PayloadTooLargeError",
    "RecostateError",
    "RedisStatePersistence",
    "ReplicationError",
    "SerializationError",
    "StateMetadata",
    "StoreClosedError",
    "StoreRefusedError",
    "StoreUnavailableError",
    "VersionConflictError",
    "VersionNotFoundError",
    "__version__",
]
