"""``python -m profagent ...``: the ``profagent`` command."""

import sys

from . import main

sys.exit(main(sys.argv[1:]))
