"""What the benchmark tells its user while it runs: timestamped lines and progress bars on stderr (stdout is
for the tables)."""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm


def log(msg: str) -> None:
    tqdm.write(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr)


class RepetitionBar:
    """A progress bar over the timed repetitions of one round (the slow baselines' take most of the time):
    call it with ``(method, repetitions done, repetitions planned)`` after each repetition."""

    def __init__(self, description: str, enabled: bool = True):
        # disable=None: no bar when stderr is not a terminal (a log file would collect every refresh)
        self.bar = tqdm(desc=description, unit="rep", file=sys.stderr, leave=False, disable=None if enabled else True)

    def __call__(self, name: str, done: int, total: int) -> None:
        self.bar.total = total
        self.bar.set_postfix_str(name, refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()
