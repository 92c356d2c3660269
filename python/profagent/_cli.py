"""The ``profagent`` console script the wheel puts on PATH: the CLI's own ``main``."""

import sys


def run() -> None:
    from . import main

    sys.exit(main(sys.argv[1:]))
