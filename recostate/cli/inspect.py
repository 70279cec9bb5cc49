"""Commands that read: ``ls``, ``show``, ``versions``, ``stats``."""

from __future__ import annotations

import click

from recostate._errors import IntegrityError
from recostate._types import StateMetadata
from recostate.cli import raw
from recostate.cli.render import (
    aligned,
    human_bytes,
    metadata_dict,
    metadata_lines,
    ratio,
    state_json,
    table,
    timestamp,
    to_json,
)
from recostate.cli.render import progress as progress_bar
from recostate.cli.session import Session, progress_option, store_command

__all__ = ["COMMANDS"]


@click.command("ls")
@click.option("--tag", default=None, help="Only states whose head carries this tag.")
@click.option("--json", "as_json", is_flag=True, help="Print the heads' metadata as JSON.")
@click.option("-l", "--long", "long_", is_flag=True, help="A table: head version, time, sizes.")
@store_command
async def ls_command(session: Session, tag: str | None, as_json: bool, long_: bool) -> None:
    """List the ids of stored states, one a line, sorted."""
    store = session.store
    ids = sorted(await store.list_states(tag=tag))
    if not ids and not as_json:
        # On standard error: the listing itself stays empty for scripts.
        which = f" tagged {tag!r}" if tag else ""
        click.echo(f"no states{which} under key prefix {session.target.prefix!r}", err=True)
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
                    metadata_dict(m) if isinstance(m, StateMetadata) else {"state_id": i, "error": m}
                    for i, m in heads
                ]
            )
        )
        return
    rows = [
        [i, str(m.version), timestamp(m.updated_at), human_bytes(m.stored_bytes), ",".join(m.tags)]
        if isinstance(m, StateMetadata)
        else [i, "?", m, "", ""]
        for i, m in heads
    ]
    click.echo(table(["ID", "HEAD", "UPDATED (UTC)", "STORED", "TAGS"], rows))


@click.command()
@click.argument("state_id")
@click.option("--version", "version", type=click.IntRange(min=1), default=None,
              help="A stored version (default: the head).")
@click.option("--json", "as_json", is_flag=True,
              help='One JSON object: {"metadata": ..., "state": ...}.')
@click.option("-s", "--state-only", is_flag=True, help="Print only the state, as JSON.")
@store_command
async def show(
    session: Session, state_id: str, version: int | None, as_json: bool, state_only: bool
) -> None:
    """Print a state as JSON with its metadata (bytes as base64, times in ISO 8601)."""
    found = await session.store.load_with_metadata(state_id, version)
    if found is None:
        if version is not None:
            await session.no_version(state_id, version)
        await session.missing(state_id)
    state, meta = found
    if state_only:
        click.echo(state_json(state))
        return
    if as_json:
        click.echo(to_json({"metadata": metadata_dict(meta), "state": state}))
        return
    expires = await raw.remaining_ttl_ms(session.store, state_id)
    click.echo("\n".join(metadata_lines(meta, expires)))
    click.echo("state:")
    click.echo(state_json(state))


@click.command()
@click.argument("state_id")
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as JSON.")
@store_command
async def versions(session: Session, state_id: str, as_json: bool) -> None:
    """Print a table of the state's stored versions, oldest first."""
    kept = await session.store.list_versions(state_id)
    if not kept:
        await session.missing(state_id)
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
    headers = ["VERSION", "UPDATED (UTC)", "SIZE", "STORED", "CODEC", "RATIO", "TAGS", "TTL",
               "ROLLED BACK FROM"]
    click.echo(table(headers, rows))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@progress_option
@store_command
async def stats(session: Session, as_json: bool, progress: bool | None) -> None:
    """Print the server's figures and the states, versions and bytes under the prefix."""
    store, target = session.store, session.target
    info = (await store.get_stats())["redis_info"]
    ids = await store.list_states()
    count = raw_bytes = stored = corrupted = 0
    with progress_bar(ids, "reading", show=progress) as items:
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
    click.echo("\n".join(aligned(lines)))


#: The commands of this module, for the group.
COMMANDS = (ls_command, show, versions, stats)
