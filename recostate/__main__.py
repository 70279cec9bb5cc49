"""``python -m recostate demo``: run the demo (see ``recostate._demo``)."""

from __future__ import annotations

import argparse
import sys

from recostate._demo import run_demo


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the command; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m recostate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="save, load, version, roll back and expire a state")
    demo.add_argument("--url", help="a Redis URL (default: REDIS_URL, else a throwaway server)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        run_demo(args.url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
