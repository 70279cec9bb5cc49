"""Commands that change states: ``rollback``, ``rm``, ``prune``, ``touch``."""

from __future__ import annotations

import click

from recostate._errors import VersionNotFoundError
from recostate.cli import raw
from recostate.cli.session import Session, store_command

__all__ = ["COMMANDS"]


@click.command()
@click.argument("state_id")
@click.argument("version", type=click.IntRange(min=1))
@store_command
async def rollback(session: Session, state_id: str, version: int) -> None:
    """Write a new head equal to VERSION (history is kept)."""
    store = session.store
    if not await store.exists(state_id):
        await session.missing(state_id)
    # The new head keeps the state's own remaining expiry (in the same
    # atomic write), not the store's default TTL.
    expires = await raw.remaining_ttl_s(store, state_id)
    try:
        meta = await store.rollback(state_id, version, ttl=expires)
    except VersionNotFoundError:
        await session.no_version(state_id, version)
    click.echo(f"{state_id}: version {meta.version} restores version {meta.rolled_back_from}")


@click.command("rm")
@click.argument("state_id")
@click.option("--version", "version", type=click.IntRange(min=1), default=None,
              help="Delete only this version (deleting the head makes the newest left the head).")
@store_command
async def rm_command(session: Session, state_id: str, version: int | None) -> None:
    """Delete a state (every version, its tags) or one version of it."""
    store = session.store
    if version is None:
        if not await store.delete(state_id):
            await session.missing(state_id)
        click.echo(f"deleted {state_id}")
        return
    if not await store.delete_version(state_id, version):
        await session.no_version(state_id, version)
    click.echo(f"deleted {state_id} version {version}")


@click.command()
@click.argument("state_id")
@click.option("--keep", type=click.IntRange(min=0), required=True,
              help="How many of the newest versions to keep (0 deletes the state).")
@store_command
async def prune(session: Session, state_id: str, keep: int) -> None:
    """Delete all but the newest --keep versions of a state."""
    if not await session.store.exists(state_id):
        await session.missing(state_id)
    removed = await session.store.prune(state_id, keep)
    click.echo(f"{state_id}: removed {removed} version(s)")


@click.command()
@click.argument("state_id")
@click.option("--ttl", type=click.IntRange(min=1), default=None,
              help="Seconds until every key of the state expires.")
@click.option("--persist", is_flag=True, help="Remove the expiry instead.")
@store_command
async def touch(session: Session, state_id: str, ttl: int | None, persist: bool) -> None:
    """Set (--ttl S) or remove (--persist) the expiry of every key of a state."""
    if (ttl is None) == (not persist):
        # Before the store's first call: a usage mistake needs no server.
        raise click.UsageError("give exactly one of --ttl SECONDS or --persist")
    if not await session.store.touch(state_id, ttl=None if persist else ttl):
        await session.missing(state_id)
    click.echo(f"{state_id}: " + ("never expires" if persist else f"expires in {ttl}s"))


#: The commands of this module, for the group.
COMMANDS = (rollback, rm_command, prune, touch)
