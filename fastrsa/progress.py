"""A one-line progress bar for long jobs (events, events/s and time left), and the clock and memory record
of a job's phases."""
from __future__ import annotations

import math
import sys
import time


class Progress:
    """A one-line progress bar on stderr (events, events/s, time left); plain lines when not a tty."""

    def __init__(self, total: int, done: int, stream=None):
        self.total, self.done, self.start_done = total, done, done
        self.t0 = time.monotonic()
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last = 0.0

    def update(self, n: int, force: bool = False) -> None:
        self.done += n
        now = time.monotonic()
        if not force and now - self.last < (0.2 if self.tty else 10.0):
            return
        self.last = now
        rate = (self.done - self.start_done) / max(now - self.t0, 1e-9)
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta = time.strftime("%H:%M:%S", time.gmtime(left)) if math.isfinite(left) else "--:--:--"
        frac = self.done / self.total
        bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
        line = f"[{bar}] {self.done}/{self.total} events  {rate:,.0f} ev/s  left {eta}"
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.update(0, force=True)
        if self.tty:
            self.stream.write("\n")


def peak_rss_bytes() -> int | None:
    """The process's peak resident memory so far (getrusage's ru_maxrss: KiB on Linux, bytes on macOS),
    or None where the platform does not say (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class Phases:
    """Wall time and the peak resident memory so far at the end of each named phase of a job, in the
    order they ran: `with phases("steps"): ...`. A phase run twice adds its times."""

    def __init__(self):
        self.record: dict = {}

    def __call__(self, name: str):
        return _Phase(self, name)


class _Phase:
    def __init__(self, phases: Phases, name: str):
        self.phases, self.name = phases, name

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        rec = self.phases.record.setdefault(self.name, {"seconds": 0.0})
        rec["seconds"] += time.perf_counter() - self.t0
        peak = peak_rss_bytes()
        rec["peak_rss_gb"] = None if peak is None else peak / 1e9
        return False
