"""What every command shares: where it works, its store, and how it reports a failure.

A command that reads or writes states is an ``async`` function decorated with
:func:`store_command`; the decorator adds ``--url`` and ``--prefix`` after
the command name, works out the :class:`Target`, builds the command's store,
runs the function on a fresh event loop with a :class:`Session` and turns any
failure into one line (``Error: ...``, exit status 1). A function that
returns an int exits with it.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click

from recostate._errors import (
    ConfigurationError,
    IntegrityError,
    InvalidInputError,
    RecostateError,
    StoreRefusedError,
    StoreUnavailableError,
    VersionConflictError,
    VersionNotFoundError,
)
from recostate._persistence import RedisStatePersistence
from recostate.cli.transfer import ImportFormatError

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_URL",
    "SIGNING_KEYS_ENV",
    "CommandError",
    "NoServerError",
    "Session",
    "Target",
    "connection_options",
    "fail",
    "guarded",
    "mask_password",
    "progress_option",
    "signing_keys_from_env",
    "store_command",
    "target_of",
]

T = TypeVar("T")

DEFAULT_URL = "redis://localhost:6379/0"
DEFAULT_PREFIX = "recostate"
SIGNING_KEYS_ENV = "RECOSTATE_SIGNING_KEYS"
#: The command's store never trims: retention belongs to the application.
_KEEP_EVERYTHING = 2**31 - 1


@dataclass
class Target:
    """Where the command works: the server, the key prefix, and how it reports failures."""

    url: str | None
    prefix: str
    debug: bool
    cluster: bool = False

    @property
    def effective_url(self) -> str:
        """The URL used by commands that do not start a server of their own."""
        return self.url or DEFAULT_URL

    @property
    def shown_url(self) -> str:
        """:attr:`effective_url` with its password masked, for messages."""
        return mask_password(self.effective_url)


def mask_password(url: str) -> str:
    """Return ``url`` with the password (if any) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class CommandError(click.ClickException):
    """A failure reported as one line, exit status 1."""


class NoServerError(RuntimeError):
    """No redis-server binary to start a throwaway server with."""


def fail(message: str) -> NoReturn:
    """Stop the command with ``Error: message`` and exit status 1."""
    raise CommandError(message)


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__
    text = str(cause) if cause is not None and str(cause) else str(exc)
    return text.rstrip(".").splitlines()[0] if text else type(exc).__name__


def explain(exc: BaseException, target: Target) -> str:
    """One line saying what went wrong, for every error the commands expect."""
    if isinstance(exc, StoreRefusedError):
        cause = exc.__cause__
        if cause is not None and "Authentication" in type(cause).__name__:
            if urlsplit(target.effective_url).password is None:
                return (
                    f"Redis at {target.shown_url} wants a password: give it in the URL, "
                    "as redis://:PASSWORD@host:port/0 or redis://USER:PASSWORD@host:port/0"
                )
            return f"Redis at {target.shown_url} refused the login: {_reason(exc)}"
        return f"Redis at {target.shown_url} refused the command: {_reason(exc)}"
    if isinstance(exc, StoreUnavailableError):
        return f"cannot reach Redis at {target.shown_url}: {_reason(exc)}"
    if isinstance(exc, ConfigurationError):
        return f"invalid setting: {exc}"
    if isinstance(exc, IntegrityError):
        return f"integrity check failed: {exc} (recostate verify lists every such version)"
    if isinstance(exc, (InvalidInputError, VersionConflictError, VersionNotFoundError)):
        return str(exc)
    if isinstance(exc, RecostateError):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (ImportFormatError, FileExistsError, NoServerError)):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)"


def guarded(target: Target, work: Callable[[], T]) -> T:
    """Return ``work()``, turning any failure into one line (or the traceback with --debug)."""
    try:
        return work()
    except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:
        if target.debug:
            raise
        raise CommandError(explain(exc, target)) from None


def signing_keys_from_env() -> list[bytes | tuple[str, bytes]] | None:
    """Read ``RECOSTATE_SIGNING_KEYS``: keys newest first, comma-separated, ``[key_id:]hex``.

    Keys are read from the environment rather than the command line, where
    other users of the machine could see them.
    """
    text = os.environ.get(SIGNING_KEYS_ENV, "").strip()
    if not text:
        return None
    keys: list[bytes | tuple[str, bytes]] = []
    for entry in text.split(","):
        key_id, _, digits = entry.strip().rpartition(":")
        try:
            key = bytes.fromhex(digits)
        except ValueError:
            raise ConfigurationError(
                f"{SIGNING_KEYS_ENV}: each key must be hex digits, as [key_id:]hex"
            ) from None
        keys.append((key_id, key) if key_id else key)
    return keys


def open_store(target: Target) -> RedisStatePersistence:
    """Build the command's store: every version kept, fast failure on a wrong address."""
    signing = signing_keys_from_env()
    return RedisStatePersistence(
        target.effective_url,
        key_prefix=target.prefix,
        cluster=target.cluster,
        max_versions=_KEEP_EVERYTHING,
        # Fail fast on a wrong address: one retry, short connect timeout.
        retries=1,
        redis_options={"socket_connect_timeout": 3.0, "socket_timeout": 10.0},
        signing_key=signing,
    )


@dataclass
class Session:
    """A store command's store and target, with the answers shared by several commands."""

    store: RedisStatePersistence
    target: Target

    async def missing(self, state_id: str) -> NoReturn:
        """Fail: no such state, saying whether the prefix holds any state at all."""
        states = await self.store.list_states()
        hint = (
            f"; {len(states)} state(s) exist under it (recostate ls)"
            if states
            else "; none exist under it: is --prefix right?"
        )
        fail(f"no state {state_id!r} under key prefix {self.target.prefix!r}{hint}")

    async def no_version(self, state_id: str, version: int) -> NoReturn:
        """Fail: the state exists but not at ``version`` (or not at all); name what is kept."""
        kept = [meta.version for meta in await self.store.list_versions(state_id)]
        if not kept:
            await self.missing(state_id)
        fail(
            f"state {state_id!r} has no stored version {version} "
            f"(stored: {', '.join(map(str, kept))})"
        )


# -- options shared by every command ----------------------------------------------------


def connection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Accept ``--url`` and ``--prefix`` after the command name as well as before it."""
    command = click.option(
        "--prefix",
        "prefix_here",
        default=None,
        metavar="PREFIX",
        help="Key prefix of the store (same as before the command).",
    )(command)
    command = click.option(
        "--url",
        "url_here",
        default=None,
        metavar="URL",
        help="Redis URL (same as before the command).",
    )(command)
    return command


def target_of(ctx: click.Context, url_here: str | None, prefix_here: str | None) -> Target:
    """Return the group's target, with ``--url`` / ``--prefix`` given after the command on top."""
    base = ctx.obj if isinstance(ctx.obj, Target) else Target(None, DEFAULT_PREFIX, False)
    return Target(url_here or base.url, prefix_here or base.prefix, base.debug, base.cluster)


progress_option = click.option(
    "--progress/--no-progress",
    default=None,
    help="Draw a progress bar on standard error (default: when it is a terminal).",
)


def store_command(
    body: Callable[..., Awaitable[int | None]],
) -> Callable[..., None]:
    """Make ``async def body(session, **options)`` the callback of a command that uses a store.

    Put it under ``@click.command()`` and the command's own options. The
    store connects at its first call, so a body may refuse its options (a
    ``click.UsageError``) before any I/O.
    """

    def command(
        ctx: click.Context, url_here: str | None, prefix_here: str | None, **options: Any
    ) -> None:
        target = target_of(ctx, url_here, prefix_here)

        async def work() -> int | None:
            store = open_store(target)
            try:
                return await body(Session(store, target), **options)
            finally:
                await store.aclose()

        status = guarded(target, lambda: asyncio.run(work()))
        if status is not None:
            ctx.exit(status)

    # The command's name and help come from the body.
    functools.update_wrapper(command, body)
    return connection_options(click.pass_context(command))
