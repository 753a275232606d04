"""What the benchmark tells its user while it runs: timestamped lines on stderr (stdout is for the tables)."""
from __future__ import annotations

import sys
import time


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
