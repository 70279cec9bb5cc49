"""Commands that check, copy and upgrade every stored version.

``verify``, ``export``, ``import`` and ``migrate``.
The export format and the frame copying behind ``export`` and ``import``
are :mod:`recostate.cli.transfer`.
"""

from __future__ import annotations

import os
import sys
from typing import IO

import click

from recostate._errors import IntegrityError
from recostate.cli import raw
from recostate.cli.render import progress as progress_bar
from recostate.cli.session import Session, progress_option, store_command
from recostate.cli.transfer import export_states, import_states

__all__ = ["COMMANDS"]


@click.command()
@click.option("--tag", default=None, help="Only states whose head carries this tag.")
@progress_option
@store_command
async def verify(session: Session, tag: str | None, progress: bool | None) -> int:
    """Read every stored version and every chunk, and check them; exit 1 if any fails.

    Each version is loaded and checked (its checksum or signature, every
    chunk, the whole state); each state's chunks are checked one by one, with
    their reference counts (none orphaned, none missing). Each problem is
    printed on its own line; a summary follows.
    """
    store = session.store
    ids = sorted(await store.list_states(tag=tag))
    checked, failures = 0, []
    with progress_bar(ids, "verifying", show=progress) as items:
        for state_id in items:
            for number in await raw.version_numbers(store, state_id):
                try:
                    found = await store.load_with_metadata(state_id, number)
                except IntegrityError as exc:
                    failures.append(f"FAILED {state_id!r} version {number}: {exc.reason}")
                    checked += 1
                    continue
                checked += found is not None
            for problem in await raw.check_pieces(store, state_id):
                failures.append(f"FAILED {state_id!r} chunks: {problem}")
    for line in failures:
        click.echo(line)
    click.echo(
        f"checked {checked} version(s) of {len(ids)} state(s): "
        + (f"{len(failures)} failed" if failures else "all sound")
    )
    return 1 if failures else 0


@click.command("export")
@click.argument("state_ids", nargs=-1)
@click.option("--tag", default=None, help="Only states whose head carries this tag.")
@click.option("-o", "--output", type=click.File("w", encoding="utf-8", lazy=True), default="-",
              help="File to write (default: standard output).")
@click.option("--with-state", is_flag=True, help="Add each version's state as readable JSON.")
@progress_option
@store_command
async def export_command(
    session: Session,
    state_ids: tuple[str, ...],
    tag: str | None,
    output: IO[str],
    with_state: bool,
    progress: bool | None,
) -> int:
    """Write states (all, STATE_IDS, or --tag) as JSON Lines: every version, exactly as stored.

    Exit status 1 if a version failed its checksum (it is left out, and named).
    """
    store = session.store
    ids = list(state_ids) or sorted(await store.list_states(tag=tag))
    with progress_bar(ids, "exporting", show=progress) as items:
        report = await export_states(store, list(items), output, with_state=with_state)
    output.flush()
    for line in report.corrupted:
        click.echo(f"left out, corrupted: {line}", err=True)
    click.echo(f"exported {report.versions} version(s) of {report.states} state(s)", err=True)
    return 1 if report.corrupted else 0


def _size(source: IO[str]) -> int:
    """Return the bytes ``source`` holds if it is a file that knows, else 0."""
    try:
        return os.fstat(source.fileno()).st_size if source.seekable() else 0
    except (OSError, ValueError):
        return 0


@click.command("import")
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
@click.option("--existing", type=click.Choice(["fail", "skip", "replace"]), default="fail",
              show_default=True, help="What to do with a state the target already has.")
@progress_option
@store_command
async def import_command(
    session: Session, source: IO[str], existing: str, progress: bool | None
) -> None:
    """Write the states of an export (a file, or - for standard input) into the store.

    Each version keeps its number, time, tags and bytes; a state that had a
    time to live gets the time it had left when exported.
    """
    show = sys.stderr.isatty() if progress is None else progress
    size = _size(source) if show else 0
    if size:
        with click.progressbar(length=size, label="importing", file=sys.stderr) as bar:
            report = await import_states(
                session.store, source, existing=existing, tick=bar.update
            )
    else:
        report = await import_states(session.store, source, existing=existing)
    notes = []
    if report.skipped:
        notes.append(f"{len(report.skipped)} existing state(s) skipped")
    if report.replaced:
        notes.append(f"{len(report.replaced)} replaced")
    click.echo(
        f"imported {report.versions} version(s) of {report.states} state(s)"
        + (f" ({', '.join(notes)})" if notes else "")
    )




@click.command()
@progress_option
@store_command
async def migrate(session: Session, progress: bool | None) -> None:
    """Move every state written by recostate 0.1 into the current storage layout.

    Each state moves in one atomic step, so the command can be stopped and
    run again: states already moved are left as they are. Stores upgrade a
    0.1 state the first time they touch it anyway; this does all at once.
    """
    store = session.store
    ids = sorted(await store.list_states())
    states = versions = 0
    with progress_bar(ids, "migrating", show=progress) as items:
        for state_id in items:
            moved = await raw.upgrade(store, state_id)
            states += moved > 0
            versions += moved
    click.echo(
        f"migrated {states} state(s) ({versions} version(s)); "
        f"{len(ids) - states} already in the current layout"
    )


#: The commands of this module, for the group.
COMMANDS = (verify, export_command, import_command, migrate)
