"""A one-line progress bar on stderr for long operations (reindex); no dependency, redrawn at most 5×/s."""
from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Call with (done, total) after each step; a newline is written once done reaches total."""

    def __init__(self, label: str, stream: TextIO | None = None):
        self.label = label
        self.stream = stream or sys.stderr
        self._start = time.perf_counter()
        self._drawn = 0.0
        self._finished = False

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        finished = done >= total
        if self._finished or (now - self._drawn < 0.2 and not finished):
            return
        self._drawn = now
        share = done / total if total else 1.0
        rate = done / max(now - self._start, 1e-9)
        self.stream.write(f"\r{self.label} [{'#' * int(30 * share):<30}] {done}/{total} {rate:.0f}/s")
        if finished:
            self.stream.write("\n")
            self._finished = True
        self.stream.flush()
