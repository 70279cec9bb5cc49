"""The error tree, the import surface, redis-py error translation, and import hygiene."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from redis import exceptions as rexc

import recostate
import recostate.sync
from recostate import (
    ConfigurationError,
    IntegrityError,
    InvalidInputError,
    PayloadTooLargeError,
    RecostateError,
    SerializationError,
    StoreClosedError,
    StoreRefusedError,
    StoreUnavailableError,
    VersionConflictError,
    VersionNotFoundError,
)
from recostate._redis.errors import is_retryable, translate

PACKAGE = Path(recostate.__file__).parent

SPEC_NAMES = [
    "RedisStatePersistence",
    "CompressionType",
    "StateMetadata",
    "RecostateError",
    "ConfigurationError",
    "InvalidInputError",
    "SerializationError",
    "PayloadTooLargeError",
    "VersionConflictError",
    "VersionNotFoundError",
    "IntegrityError",
    "StoreUnavailableError",
    "StoreClosedError",
]


# -- the tree --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "bases"),
    [
        (ConfigurationError, (RecostateError, ValueError)),
        (InvalidInputError, (RecostateError, ValueError)),
        (SerializationError, (RecostateError, TypeError)),
        (PayloadTooLargeError, (RecostateError, ValueError)),
        (VersionConflictError, (RecostateError,)),
        (VersionNotFoundError, (RecostateError, LookupError)),
        (IntegrityError, (RecostateError,)),
        (StoreUnavailableError, (RecostateError, ConnectionError)),
        (StoreRefusedError, (StoreUnavailableError, RecostateError, ConnectionError)),
        (StoreClosedError, (RecostateError, RuntimeError)),
    ],
)
def test_error_tree(error: type[Exception], bases: tuple[type[Exception], ...]) -> None:
    for base in bases:
        assert issubclass(error, base), (error, base)


def test_errors_are_not_related_beyond_the_tree() -> None:
    leaves = [
        ConfigurationError, InvalidInputError, SerializationError, PayloadTooLargeError,
        VersionConflictError, VersionNotFoundError, IntegrityError, StoreUnavailableError,
        StoreClosedError,
    ]
    for first in leaves:
        for second in leaves:
            if first is not second:
                assert not issubclass(first, second), (first, second)
    assert not issubclass(VersionConflictError, ValueError)
    assert not issubclass(IntegrityError, ValueError)
    assert not issubclass(StoreClosedError, ConnectionError)


def test_error_attributes() -> None:
    conflict = VersionConflictError("s", 3, 5)
    assert (conflict.state_id, conflict.expected, conflict.actual) == ("s", 3, 5)
    missing = VersionNotFoundError("s", 4)
    assert (missing.state_id, missing.version) == ("s", 4)
    integrity = IntegrityError("s", None, "checksum mismatch")
    assert (integrity.state_id, integrity.version, integrity.reason) == ("s", None, "checksum mismatch")
    too_large = PayloadTooLargeError(10, 5)
    assert (too_large.size, too_large.limit) == (10, 5)
    assert "10" in str(too_large) and "5" in str(too_large)


# -- the import surface ------------------------------------------------------------------------


def test_spec_import_surface() -> None:
    module = importlib.import_module("recostate")
    for name in SPEC_NAMES:
        assert hasattr(module, name), name
        assert name in recostate.__all__, name


def test_all_lists_only_importable_names_once() -> None:
    assert len(recostate.__all__) == len(set(recostate.__all__))
    for name in recostate.__all__:
        assert hasattr(recostate, name), name
    namespace: dict[str, object] = {}
    exec("from recostate import *", namespace)
    assert set(SPEC_NAMES) <= set(namespace)


def test_every_exported_error_is_in_all() -> None:
    exported_errors = {
        name for name in dir(recostate)
        if isinstance(getattr(recostate, name), type) and issubclass(getattr(recostate, name), Exception)
    }
    assert exported_errors <= set(recostate.__all__)


def test_sync_facade_exists() -> None:
    sync_cls = recostate.sync.RedisStatePersistence
    assert sync_cls.__module__ == "recostate.sync"
    assert not issubclass(sync_cls, recostate.RedisStatePersistence)
    for method in ("save", "save_with_metadata", "load", "load_with_metadata", "get_metadata",
                   "list_versions", "delete_version", "rollback", "delete", "exists", "touch",
                   "prune", "list_states", "iter_states", "get_stats", "close", "__enter__",
                   "__exit__"):
        assert callable(getattr(sync_cls, method)), method


# -- translation of redis-py errors -------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        rexc.ConnectionError("Connection refused"),
        rexc.TimeoutError("Timeout reading from socket"),
        rexc.BusyLoadingError("LOADING Redis is loading the dataset in memory"),
        rexc.ReadOnlyError("READONLY You can't write against a read only replica."),
        ConnectionResetError(104, "Connection reset by peer"),
        OSError(113, "No route to host"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_outages_become_store_unavailable_and_are_retryable(exc: BaseException) -> None:
    translated = translate(exc)
    assert isinstance(translated, StoreUnavailableError)
    assert not isinstance(translated, StoreRefusedError)
    assert is_retryable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        rexc.AuthenticationError("invalid username-password pair"),
        rexc.AuthenticationWrongNumberOfArgsError("wrong number of arguments for 'auth'"),
        rexc.NoPermissionError("NOPERM this user has no permissions to run the 'evalsha' command"),
        rexc.OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'."),
        rexc.ResponseError(
            "Error running script (call to f_abc): @user_script:1: "
            "OOM command not allowed when used memory > 'maxmemory'."
        ),
        rexc.ResponseError("Error running script: NOPERM this user has no permissions"),
    ],
    ids=lambda exc: f"{type(exc).__name__}-{str(exc)[:20]}",
)
def test_refusals_become_store_refused(exc: BaseException) -> None:
    translated = translate(exc)
    assert isinstance(translated, StoreRefusedError)
    assert isinstance(translated, StoreUnavailableError)


@pytest.mark.parametrize(
    "exc",
    [
        rexc.AuthenticationError("invalid username-password pair"),
        rexc.NoPermissionError("NOPERM no permissions"),
        rexc.OutOfMemoryError("OOM command not allowed"),
        rexc.ResponseError("ERR unknown command"),
        rexc.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        rexc.DataError("Invalid input"),
        ValueError("not a redis error"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_refusals_and_reply_errors_are_not_retryable(exc: BaseException) -> None:
    assert not is_retryable(exc)


def test_pool_exhausted_is_unavailable_but_not_retryable() -> None:
    exc = rexc.ConnectionError("No connection available.")
    translated = translate(exc)
    assert isinstance(translated, StoreUnavailableError)
    assert not isinstance(translated, StoreRefusedError)
    assert "pool" in str(translated)
    assert not is_retryable(exc)
    # Any other ConnectionError stays retryable.
    assert is_retryable(rexc.ConnectionError("Connection closed by server."))


@pytest.mark.parametrize(
    "exc",
    [
        rexc.ResponseError("ERR unknown command 'FOO'"),
        rexc.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        rexc.ResponseError("ERR Error running script: attempt to compare nil with number"),
    ],
    ids=lambda exc: str(exc)[:12],
)
def test_other_reply_errors_are_recostate_errors_not_outages(exc: BaseException) -> None:
    translated = translate(exc)
    assert isinstance(translated, RecostateError)
    assert not isinstance(translated, StoreUnavailableError)
    assert type(translated) is RecostateError
    assert not is_retryable(exc)


def test_translate_keeps_recostate_errors() -> None:
    error = IntegrityError("s", 1, "bad")
    assert translate(error) is error


def test_translate_names_the_redis_error_kind() -> None:
    assert "TimeoutError" in str(translate(rexc.TimeoutError("slow")))
    assert "AuthenticationError" in str(translate(rexc.AuthenticationError("no")))


# -- import hygiene --------------------------------------------------------------------------------


def _imports(path: Path) -> set[str]:
    """Top-level names of the modules ``path`` imports, anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _sources() -> dict[str, set[str]]:
    sources = {
        path.relative_to(PACKAGE).as_posix(): _imports(path) for path in sorted(PACKAGE.rglob("*.py"))
    }
    assert "_codec/compression.py" in sources and "_redis/errors.py" in sources
    return sources


def test_imports_scan_sees_imports() -> None:
    sources = _sources()
    assert "redis" in sources["_redis/connection.py"]
    assert {"lz4", "zlib"} <= sources["_codec/compression.py"]


def test_only_the_redis_subpackage_imports_redis() -> None:
    offenders = [name for name, mods in _sources().items()
                 if "redis" in mods and not name.startswith("_redis/")]
    assert offenders == []


def test_only_the_codec_imports_compression_modules() -> None:
    offenders = [name for name, mods in _sources().items()
                 if mods & {"lz4", "zlib"} and not name.startswith("_codec/")]
    assert offenders == []


def test_nothing_imports_pickle() -> None:
    forbidden = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "marshal", "shelve"}
    offenders = {name: mods & forbidden for name, mods in _sources().items() if mods & forbidden}
    assert offenders == {}
