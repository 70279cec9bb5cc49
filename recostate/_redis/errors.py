"""The one place where redis-py errors become recostate errors.

redis-py raises a wide tree of exceptions; callers of recostate see only:

* :class:`~recostate.StoreUnavailableError` for a server that is down,
  unreachable, loading, failing over, or that did not answer in time. These
  are *retryable*: the executor retries them with backoff before giving up.
* :class:`~recostate.StoreRefusedError` for a server that answered "no":
  out of memory, no permission, wrong password. Retrying would not help and the
  command was not applied.
* :class:`~recostate.RecostateError` for any other reply error, which means a
  key was changed by something other than recostate (``WRONGTYPE``) or a bug.

Every translation chains the redis-py error as ``__cause__``.
"""

from __future__ import annotations

from redis import exceptions as rexc

from recostate._errors import RecostateError, StoreRefusedError, StoreUnavailableError
from recostate._redis._compat import is_pool_exhausted

__all__ = ["is_retryable", "translate"]

# Errors after which the same command may succeed on a later attempt: the
# connection broke, the server is loading, a cluster is re-arranging itself, or
# a former primary is now a replica (READONLY) until clients re-route.
_RETRYABLE: tuple[type[BaseException], ...] = (
    rexc.BusyLoadingError,
    rexc.TimeoutError,
    rexc.ClusterDownError,
    rexc.TryAgainError,
    rexc.ReadOnlyError,
    rexc.ClusterError,
)

# ConnectionError subclasses that are answers, not outages.
_REFUSALS: tuple[type[BaseException], ...] = (
    rexc.AuthenticationError,
    rexc.AuthorizationError,
    rexc.AuthenticationWrongNumberOfArgsError,
    rexc.NoPermissionError,
    rexc.OutOfMemoryError,
)

_REFUSAL_MARKERS = ("OOM command not allowed", "NOPERM", "NOAUTH", "WRONGPASS")

# A script on a cluster node whose slot is being migrated touched a key that
# has already left (or a new one, which belongs to the target now). Redis
# stops the script at that command; recostate's scripts do every read before
# their first write, so the call is resent once the slot has moved.
_SLOT_MOVING = "Script attempted to access a non local key in a cluster node"


def is_retryable(exc: BaseException) -> bool:
    """Tell whether the command that raised ``exc`` may succeed if sent again."""
    # A blocking pool that already waited its full timeout: retrying would
    # only multiply the wait the user bounded.
    if isinstance(exc, _REFUSALS) or is_pool_exhausted(exc):
        return False
    if isinstance(exc, (rexc.ConnectionError, *_RETRYABLE)):
        return True
    if isinstance(exc, rexc.ResponseError) and _SLOT_MOVING in str(exc):
        return True
    # A socket error that redis-py let through unwrapped.
    return isinstance(exc, OSError)


def translate(exc: BaseException) -> RecostateError:
    """Return the recostate error for a redis-py (or socket) error; raise it ``from exc``."""
    if isinstance(exc, RecostateError):
        return exc
    kind = type(exc).__name__
    if isinstance(exc, _REFUSALS):
        return StoreRefusedError(f"the Redis server refused the command ({kind}): {exc}")
    if is_pool_exhausted(exc):
        return StoreUnavailableError(
            "no Redis connection became free before the pool timeout "
            "(raise redis_options['max_connections'] or the pool timeout)"
        )
    if is_retryable(exc):
        return StoreUnavailableError(f"the Redis server is unavailable ({kind}): {exc}")
    if isinstance(exc, rexc.ResponseError) and any(m in str(exc) for m in _REFUSAL_MARKERS):
        # Inside a script, Redis 6.2 wraps the refusal in a generic ERR reply.
        return StoreRefusedError(f"the Redis server refused the command ({kind}): {exc}")
    return RecostateError(f"unexpected reply from Redis ({kind}): {exc}")
