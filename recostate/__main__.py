"""``python -m recostate``: the ``recostate`` command (see :mod:`recostate.cli`)."""

from __future__ import annotations

import sys

from recostate.cli import main

if __name__ == "__main__":
    sys.exit(main())
