"""`python -m phenaki ...` (and `accelerate launch -m phenaki train ...`): the `phenaki` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
