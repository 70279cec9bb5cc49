"""FastAPI integration: a lifespan that opens the store, a dependency, HTTP errors, ``If-Match``.

Needs FastAPI (``pip install recostate[fastapi]``)::

    from fastapi import FastAPI, Response
    from recostate.contrib.fastapi import (
        ExpectedVersion, Store, add_exception_handlers, recostate_lifespan, set_etag,
    )

    app = FastAPI(lifespan=recostate_lifespan("redis://localhost:6379/0"))
    add_exception_handlers(app)

    @app.put("/carts/{cart_id}")
    async def put_cart(cart_id: str, cart: dict, store: Store, expected: ExpectedVersion,
                       response: Response) -> dict:
        meta = await store.save(cart_id, cart, expected_version=expected)
        set_etag(response, meta)
        return {"version": meta.version}

* :func:`recostate_lifespan` connects (and pings) the store at start-up and
  closes it at shutdown; the store is in ``request.state.recostate_store`` and
  ``app.state.recostate_store``.
* :data:`Store` (``Annotated[RedisStatePersistence, Depends(get_store)]``)
  hands it to a handler.
* :data:`ExpectedVersion` reads ``If-Match: "3"`` as ``expected_version=3``
  and ``If-None-Match: *`` as ``expected_version=0`` ("create only");
  without either it is ``None``. :data:`RequiredExpectedVersion` answers
  428 when neither header is sent. The ETag of a version is its number in
  quotes: :func:`etag`, :func:`set_etag`.
* :data:`IdempotencyKey` reads the ``Idempotency-Key`` request header (a
  token, or a quoted string as the IETF draft writes it) for the save's
  ``idempotency_key=``: a client that sends the same request again with the
  same key gets the first save's result, not a second version.
  :data:`RequiredIdempotencyKey` answers 400 when it is missing; a key that is
  empty or longer than 256 characters is a 400 either way.
* :func:`add_exception_handlers` maps recostate errors to HTTP answers:
  :class:`~recostate.VersionConflictError` to **409** with the current version
  in the body and the ``ETag`` header, ``VersionNotFoundError`` to 404,
  ``InvalidInputError`` to 400, ``PayloadTooLargeError`` to 413,
  ``IntegrityError`` to 500,
  ``ReplicationError`` (the write *was* applied) to 500 naming the version
  written, ``StoreRefusedError`` (nothing applied, and a retry will not help)
  to 500, and any other ``StoreUnavailableError`` to 503 with ``Retry-After``.
  Only that last answer invites a retry. A failed ``If-Match`` is a conflict
  on the resource's version, so it is a 409 here rather than HTTP's generic 412.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from recostate._errors import (
    IntegrityError,
    InvalidInputError,
    PayloadTooLargeError,
    ReplicationError,
    StoreRefusedError,
    StoreUnavailableError,
    VersionConflictError,
    VersionNotFoundError,
)
from recostate._persistence import RedisStatePersistence
from recostate._types import StateMetadata
from recostate._validation import MAX_IDEMPOTENCY_KEY_LENGTH

__all__ = [
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "STATE_KEY",
    "ExpectedVersion",
    "IdempotencyKey",
    "RequiredExpectedVersion",
    "RequiredIdempotencyKey",
    "Store",
    "add_exception_handlers",
    "etag",
    "expected_version",
    "get_store",
    "idempotency_key",
    "parse_etag",
    "recostate_lifespan",
    "required_expected_version",
    "required_idempotency_key",
    "set_etag",
]

#: Name of the store in the lifespan state and in ``app.state``.
STATE_KEY = "recostate_store"

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]


def recostate_lifespan(
    redis_url: str = "redis://localhost:6379/0",
    *,
    store: RedisStatePersistence | None = None,
    then: Lifespan | None = None,
    **options: Any,
) -> Lifespan:
    """Return a FastAPI lifespan that opens a store at start-up and closes it at shutdown.

    Args:
        redis_url: the server, as for :class:`~recostate.RedisStatePersistence`.
        store: a store built by the caller instead (the lifespan opens and closes it).
        then: the application's own lifespan, run inside this one (the store
            is open for all of it). A mapping it yields joins the lifespan state.
        **options: keyword arguments for :class:`~recostate.RedisStatePersistence`.

    The store is checked at start-up (a PING), so a wrong URL stops the
    application from starting rather than failing its first request.
    """
    if store is not None and options:
        raise TypeError("pass store= or store options, not both")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        opened = store if store is not None else RedisStatePersistence(redis_url, **options)
        async with opened:
            setattr(app.state, STATE_KEY, opened)
            try:
                if then is None:
                    yield {STATE_KEY: opened}
                else:
                    async with then(app) as inner:
                        yield {**(inner or {}), STATE_KEY: opened}
            finally:
                delattr(app.state, STATE_KEY)

    return lifespan


def get_store(request: Request) -> RedisStatePersistence:
    """Return the store the lifespan opened (a FastAPI dependency).

    Raises:
        RuntimeError: the application was not started with :func:`recostate_lifespan`.
    """
    found = getattr(request.state, STATE_KEY, None) or getattr(request.app.state, STATE_KEY, None)
    if not isinstance(found, RedisStatePersistence):
        raise RuntimeError(
            "no recostate store: create the app with FastAPI(lifespan=recostate_lifespan(...))"
        )
    return found


#: A handler parameter receiving the store.
Store = Annotated[RedisStatePersistence, Depends(get_store)]


def etag(version: int | StateMetadata) -> str:
    """Return the ETag of a version: its number in double quotes (``"3"``)."""
    number = version.version if isinstance(version, StateMetadata) else version
    return f'"{number}"'


def set_etag(response: Response, version: int | StateMetadata) -> None:
    """Set the ``ETag`` header of ``response`` to the version's tag."""
    response.headers["ETag"] = etag(version)


def parse_etag(value: str) -> int:
    """Return the version number an ETag names (``"3"``, ``W/"3"`` or ``3``).

    Raises:
        ValueError: the value names no single non-negative version.
    """
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if not text.isdigit():
        raise ValueError(f"not a version tag: {value!r}")
    return int(text)


def expected_version(
    if_match: Annotated[str | None, Header()] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> int | None:
    """Read ``If-Match`` / ``If-None-Match: *`` as an ``expected_version`` (a FastAPI dependency).

    ``If-Match: "3"`` gives 3; ``If-None-Match: *`` gives 0 (the state must not
    exist yet); neither gives ``None`` (no compare-and-set). ``If-Match: *``
    and lists of tags are answered with 400.
    """
    if if_match is not None and if_none_match is not None:
        raise HTTPException(400, "send If-Match or If-None-Match, not both")
    if if_none_match is not None:
        if if_none_match.strip() != "*":
            raise HTTPException(400, 'If-None-Match is only understood as "*" (create only)')
        return 0
    if if_match is None:
        return None
    try:
        return parse_etag(if_match)
    except ValueError:
        raise HTTPException(
            400, 'If-Match must name one version, as in If-Match: "3"'
        ) from None


#: A handler parameter receiving the compare-and-set version from the request headers.
ExpectedVersion = Annotated[int | None, Depends(expected_version)]


def required_expected_version(expected: ExpectedVersion) -> int:
    """As :func:`expected_version`, but answer 428 when the request sends neither header."""
    if expected is None:
        raise HTTPException(
            428,
            'this write needs If-Match: "<version>" (or If-None-Match: * to create)',
        )
    return expected


#: As :data:`ExpectedVersion`, but the header is required (428 without it).
RequiredExpectedVersion = Annotated[int, Depends(required_expected_version)]


# A Structured Fields string, as the IETF draft writes the key: "...", with \" and \\.
_QUOTED = re.compile(r'"((?:[^"\\]|\\["\\])*)"')


def idempotency_key(
    idempotency_key: Annotated[str | None, Header()] = None,
) -> str | None:
    """Read the ``Idempotency-Key`` header as the save's ``idempotency_key`` (a FastAPI dependency).

    The value is a token (``Idempotency-Key: 8e03978e-40d5``) or, as the IETF
    draft writes it, a quoted string (``Idempotency-Key: "8e03978e-40d5"``).
    Without the header it is ``None`` (recostate makes its own write id). A
    key that is empty, longer than :data:`MAX_IDEMPOTENCY_KEY_LENGTH`
    characters, or a malformed quoted string is answered with 400.
    """
    if idempotency_key is None:
        return None
    text = idempotency_key.strip()
    if text.startswith('"'):
        quoted = _QUOTED.fullmatch(text)
        if quoted is None:
            raise HTTPException(400, "Idempotency-Key is a malformed quoted string")
        text = re.sub(r'\\(["\\])', r"\1", quoted[1])
    if not text:
        raise HTTPException(400, "Idempotency-Key must not be empty")
    if len(text) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise HTTPException(
            400,
            f"Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters, "
            f"not {len(text)}",
        )
    return text


#: A handler parameter receiving the request's ``Idempotency-Key`` (``None`` without one).
IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]


def required_idempotency_key(key: IdempotencyKey) -> str:
    """As :func:`idempotency_key`, but answer 400 when the request sends no key."""
    if key is None:
        raise HTTPException(400, "this write needs an Idempotency-Key header")
    return key


#: As :data:`IdempotencyKey`, but the header is required (400 without it).
RequiredIdempotencyKey = Annotated[str, Depends(required_idempotency_key)]


def _answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)


async def _conflict(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, VersionConflictError)
    headers = {"ETag": etag(exc.actual)} if exc.actual else None
    body = {
        "detail": str(exc),
        "state_id": exc.state_id,
        "expected_version": exc.expected,
        "current_version": exc.actual,
    }
    return _answer(409, body, headers)


async def _not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, VersionNotFoundError)
    return _answer(404, {"detail": str(exc), "state_id": exc.state_id, "version": exc.version})


async def _invalid(request: Request, exc: Exception) -> Response:
    return _answer(400, {"detail": str(exc)})


async def _too_large(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PayloadTooLargeError)
    return _answer(413, {"detail": str(exc), "size": exc.size, "limit": exc.limit})


async def _corrupted(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IntegrityError)
    body = {"detail": "the stored state is damaged", "state_id": exc.state_id, "version": exc.version}
    return _answer(500, body)


async def _not_replicated(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ReplicationError)
    # Applied: a retry without the same Idempotency-Key would write again,
    # so no Retry-After, and the body says what was written.
    body = {
        "detail": "the write was applied, but fewer replicas than required confirmed it",
        "applied": True,
        "state_id": exc.state_id,
        "version": exc.version,
        "replicas_required": exc.required,
        "replicas_acknowledged": exc.acknowledged,
    }
    return _answer(500, body)


async def _refused(request: Request, exc: Exception) -> Response:
    # Out of memory, no permission: nothing was applied, and sending the
    # request again will not help until the store is fixed.
    return _answer(500, {"detail": "the state store refused the request", "applied": False})


async def _unavailable(request: Request, exc: Exception) -> Response:
    # May or may not have been applied: a retry is safe with the same
    # Idempotency-Key or If-Match, and the store is likely back soon.
    return _answer(503, {"detail": "the state store is unavailable"}, {"Retry-After": "1"})


def add_exception_handlers(app: FastAPI) -> None:
    """Answer recostate errors raised by handlers with their HTTP status (see the module doc)."""
    app.add_exception_handler(VersionConflictError, _conflict)
    app.add_exception_handler(VersionNotFoundError, _not_found)
    app.add_exception_handler(InvalidInputError, _invalid)
    app.add_exception_handler(PayloadTooLargeError, _too_large)
    app.add_exception_handler(IntegrityError, _corrupted)
    # Starlette picks the handler of the nearest class in the error's MRO.
    app.add_exception_handler(ReplicationError, _not_replicated)
    app.add_exception_handler(StoreRefusedError, _refused)
    app.add_exception_handler(StoreUnavailableError, _unavailable)
