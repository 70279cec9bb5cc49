"""The exceptions recostate raises.

Every error derives from :class:`RecostateError`, so one ``except`` clause
catches them all. Errors of redis-py never reach the caller: they are
translated in one place (``recostate._redis.errors``) and chained as
``__cause__``.

The tree::

    RecostateError
    ├── ConfigurationError        (also ValueError)  bad constructor options
    ├── InvalidInputError         (also ValueError)  bad call arguments, before any I/O
    ├── SerializationError        (also TypeError)   state msgspec cannot encode,
    │                                                or stored state not matching ``type=``
    ├── PayloadTooLargeError      (also ValueError)  encoded state over the maximum
    ├── VersionConflictError                         compare-and-set or explicit version lost
    ├── VersionNotFoundError      (also LookupError) rollback to a version not stored
    ├── IntegrityError                               stored bytes fail their checksum or decode
    ├── StoreUnavailableError     (also ConnectionError) server down, unreachable, lost
    │   ├── StoreRefusedError                        server refused the command (OOM, NOPERM,
    │   │                                            bad credentials): nothing was applied
    │   └── ReplicationError                         applied on the primary, but fewer replicas
    │                                                than ``wait_for_replicas`` acknowledged it
    └── StoreClosedError          (also RuntimeError) call after ``aclose()``
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "IntegrityError",
    "InvalidInputError",
    "PayloadTooLargeError",
    "RecostateError",
    "ReplicationError",
    "SerializationError",
    "StoreClosedError",
    "StoreRefusedError",
    "StoreUnavailableError",
    "VersionConflictError",
    "VersionNotFoundError",
]


class RecostateError(Exception):
    """Base class of every error recostate raises."""


class ConfigurationError(RecostateError, ValueError):
    """A constructor option is invalid; raised at construction, before any I/O."""


class InvalidInputError(RecostateError, ValueError):
    """An argument of a call is invalid; raised before any I/O, nothing is written."""


class SerializationError(RecostateError, TypeError):
    """A state cannot be encoded, or a stored state does not match the requested ``type=``.

    When raised by a save, nothing was written.
    """


class PayloadTooLargeError(RecostateError, ValueError):
    """The encoded state is larger than the store's ``max_payload_bytes``; nothing is written.

    Attributes:
        size: the encoded size in bytes.
        limit: the configured maximum in bytes.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"encoded state is {size} bytes, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class VersionConflictError(RecostateError):
    """A compare-and-set (``expected_version``) or an explicit ``version`` did not hold.

    Nothing was written.

    Attributes:
        state_id: the state concerned.
        expected: the version the caller expected as head (``expected_version``),
            or the explicit version it asked for.
        actual: the head version found on the server (``0`` when the state does not exist).
    """

    def __init__(self, state_id: str, expected: int, actual: int, message: str = "") -> None:
        super().__init__(
            message
            or f"version conflict on state {state_id!r}: expected {expected}, found {actual}"
        )
        self.state_id = state_id
        self.expected = expected
        self.actual = actual


class VersionNotFoundError(RecostateError, LookupError):
    """The requested version of a state is not stored.

    Attributes:
        state_id: the state concerned.
        version: the version asked for.
    """

    def __init__(self, state_id: str, version: int) -> None:
        super().__init__(f"state {state_id!r} has no stored version {version}")
        self.state_id = state_id
        self.version = version


class IntegrityError(RecostateError):
    """Stored bytes failed their checksum, their framing or their decoding.

    recostate never returns garbage and never turns corruption into ``None``.

    Attributes:
        state_id: the state concerned.
        version: the version read (``None`` when the version itself is unknown).
    """

    def __init__(self, state_id: str, version: int | None, reason: str) -> None:
        super().__init__(f"state {state_id!r} version {version}: {reason}")
        self.state_id = state_id
        self.version = version
        self.reason = reason


class StoreUnavailableError(RecostateError, ConnectionError):
    """The Redis server could not be reached or did not answer in time, after retries.

    The redis-py error is chained as ``__cause__``. A save that raises this error
    after its retries are spent may or may not have been applied: load the state
    (or save again: a retry of the same call is idempotent only inside the call).
    """


class StoreRefusedError(StoreUnavailableError):
    """The server refused the command (out of memory, no permission, bad credentials).

    Unlike its parent, this error means the command was not applied.
    """


class ReplicationError(StoreUnavailableError):
    """A write was applied on the primary, but too few replicas acknowledged it in time.

    Raised by stores built with ``wait_for_replicas=N`` when Redis ``WAIT`` counts
    fewer than ``N`` replicas within ``wait_timeout``. Unlike its parent, the
    write is known to have been applied (and may still reach the replicas
    later); if the primary fails before they get it, it may be lost.

    Attributes:
        state_id: the state written.
        required: the replicas asked for (``wait_for_replicas``).
        acknowledged: the replicas that acknowledged the write in time.
        version: the version a save or rollback wrote (``None`` for other writes).
    """

    def __init__(
        self, state_id: str, required: int, acknowledged: int, *, version: int | None = None
    ) -> None:
        written = f"version {version} of " if version is not None else "a write to "
        super().__init__(
            f"{written}state {state_id!r} was applied on the primary, but only "
            f"{acknowledged} of {required} replicas acknowledged it in time"
        )
        self.state_id = state_id
        self.required = required
        self.acknowledged = acknowledged
        self.version = version


class StoreClosedError(RecostateError, RuntimeError):
    """The store was closed with ``aclose()`` / ``close()``; it cannot be used again."""
