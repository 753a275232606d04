"""``python -m rgprune.benchmark``: the benchmark's command line (``rgprune.benchmark.cli``)."""

import sys

from rgprune.benchmark.cli import main

sys.exit(main())
