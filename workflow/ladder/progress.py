"""Progress lines for the data stages, which can take hours on a real corpus.

One line every `every_s` seconds: what is done (MB of text), the rate (MB/s), the share
done and an ETA when the stage knows its total, plus whatever counts the stage adds:

    corpus: 1,204.5 MB, 86.0 MB/s, 12.0%, ETA 0:01:42 (31,022 docs)
"""

from __future__ import annotations

import sys
import time


def hms(seconds: float) -> str:
    s = int(round(max(seconds, 0.0)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class StageProgress:
    """Rate and ETA of one stage. `update(done_bytes, fraction)` prints when a line is due;
    `fraction` (0-1) is how far the stage is, when it knows (None: no ETA)."""

    def __init__(self, what: str, every_s: float = 10.0, stream=None):
        self.what = what
        self.every_s = every_s
        self.stream = stream or sys.stdout
        self.t0 = self.last = time.time()

    def elapsed(self) -> float:
        return time.time() - self.t0

    def line(self, done_bytes: int, fraction: float | None = None, extra: str = "") -> str:
        dt = max(self.elapsed(), 1e-9)
        text = f"{self.what}: {done_bytes / 1e6:,.1f} MB, {done_bytes / 1e6 / dt:,.1f} MB/s"
        if fraction is not None and fraction > 0:
            fraction = min(fraction, 1.0)
            text += f", {100 * fraction:.1f}%, ETA {hms(dt * (1 - fraction) / fraction)}"
        return text + (f" ({extra})" if extra else "")

    def update(self, done_bytes: int, fraction: float | None = None, extra: str = "") -> None:
        now = time.time()
        if now - self.last >= self.every_s:
            self.last = now
            print(self.line(done_bytes, fraction, extra), file=self.stream, flush=True)
