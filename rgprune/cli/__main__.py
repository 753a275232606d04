"""``python -m rgprune.cli``: the ``rgprune`` console script."""

import sys

from rgprune.cli import main

if __name__ == "__main__":
    sys.exit(main())
