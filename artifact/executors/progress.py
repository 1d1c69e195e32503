"""Jobs done / total with an ETA, one line per finished job (stderr, so tables stay clean)."""

from __future__ import annotations

import sys
import time


def fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
    def __init__(self, total: int, label: str, workers: int = 1, stream=None):
        # sys.stderr when called, not when imported (a lazily imported module may meet a replaced stream)
        self.total, self.label, self.workers, self.stream = total, label, workers, stream or sys.stderr
        self.done = 0
        self.t0 = time.time()

    def update(self, what: str, status: str = "done") -> None:
        self.done += 1
        elapsed = time.time() - self.t0
        left = self.total - self.done
        eta = f", ETA {fmt_duration(elapsed / self.done * left)}" if left else ""
        print(f"[{self.label} {self.done}/{self.total}] {status} {what} "
              f"(elapsed {fmt_duration(elapsed)}{eta})", file=self.stream, flush=True)
