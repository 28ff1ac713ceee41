"""Timing two calls side by side: the one routine behind ``make bench``, Chapter 9's page and its speed check.

Each run times ``a`` and then ``b`` back to back, so a machine that slows down slows both; the ratio of
the two is taken per pair, and the median over the pairs is what is reported.
"""

from __future__ import annotations

import statistics
import time

#: The C library allocator's thresholds for timed code, here and in the grading workers (their environment sets
#: them: ``grading.sandbox.ALLOCATOR``): a block past MMAP_THRESHOLD is mapped fresh from the system on every
#: call and unmapped when freed, which adds page faults to each timed call; freed memory up to TRIM_THRESHOLD is
#: kept for the next one.
MMAP_THRESHOLD, TRIM_THRESHOLD = 32 << 20, 1 << 30


def keep_freed_memory() -> None:
    """Set the thresholds above in this process (glibc only; best effort), as the grading workers have them: a
    learner's ratio measured here is then the one the grader measures."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, TRIM_THRESHOLD)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


# Bound when this module is imported: a notebook that later replaces time.perf_counter does not change what the
# visible speed check measures. (The graded speed part is clocked by the grader, outside the learner's process.)
_clock = time.perf_counter


def alternate(a, b, runs: int, warmup: int = 0, give_up=None) -> tuple[list[float], list[float]]:
    """Seconds of ``a`` and of ``b``, run alternately ``runs`` times after ``warmup`` untimed pairs.

    ``give_up(seconds_a, seconds_b)`` may end the runs early (say, after one pair that is far too slow).
    """
    for _ in range(warmup):
        a(), b()
    ta, tb = [], []
    for _ in range(runs):
        t0 = _clock()
        a()
        t1 = _clock()
        b()
        t2 = _clock()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
        if give_up is not None and give_up(ta[-1], tb[-1]):
            break
    return ta, tb


def median_ratio(ta, tb) -> float:
    """The median of the per-pair ratios of ``ta`` to ``tb``."""
    return statistics.median(x / max(y, 1e-12) for x, y in zip(ta, tb))


def paired(a, b, runs: int = 7, warmup: int = 1):
    """Median seconds of ``a`` and ``b``, run alternately, and the median of the per-pair ratios."""
    ta, tb = alternate(a, b, runs, warmup)
    return statistics.median(ta), statistics.median(tb), median_ratio(ta, tb)


def best_of(fn, runs: int) -> float:
    """The fewest seconds ``fn`` took in ``runs`` calls after one untimed call: a roof (the best the machine
    did), not a typical time."""
    fn()
    return min(alternate(fn, lambda: None, runs)[0])
