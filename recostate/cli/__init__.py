"""The ``recostate`` command: inspect, repair, verify, back up and move states from a terminal.

Run ``recostate --help`` (or ``python -m recostate --help``) for the commands;
``docs/guides/cli.md`` describes each. The server is ``--url``, else
``REDIS_URL``, else ``redis://localhost:6379/0``; ``demo`` starts a
throwaway redis-server when neither is given. Errors print one line
(``Error: ...``) on standard error and exit with status 1; usage mistakes
exit with 2. ``--debug`` shows the traceback instead.

The command never trims history: its store keeps every version (retention
is the application's, applied by its next save), and ``rollback`` keeps the
state's remaining time to live.

The package: this module is the group and :func:`main`; :mod:`.session`
what every command shares (target, store, errors); :mod:`.inspect`,
:mod:`.edit`, :mod:`.backup` and :mod:`.demo` the commands, by family;
:mod:`.render` the terminal and JSON output; :mod:`.transfer` and
:mod:`.raw` the export format and the stored frames it copies.
"""

from __future__ import annotations

import logging
import sys

import click

from recostate import __version__
from recostate.cli import backup, demo, edit, inspect
from recostate.cli.session import DEFAULT_PREFIX, DEFAULT_URL, Target

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--url",
    envvar="REDIS_URL",
    default=None,
    metavar="URL",
    help="Redis URL: redis://, rediss:// (TLS) or unix://. Default: REDIS_URL, "
    f"else {DEFAULT_URL} (demo: a throwaway server).",
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


for _family in (demo, inspect, edit, backup):
    for _command in _family.COMMANDS:
        cli.add_command(_command)


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
