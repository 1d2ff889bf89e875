"""Trackers whose clock is off from the field's: told apart from riders behind by when their fixes arrive.

From positions and times alone a tracker whose clock runs ``c`` seconds
slow is a rider riding ``c`` seconds behind: both put the same position at
the same time. What tells them apart is a clock the tracker does not set:
when the fix was seen (live, the Pub/Sub publish time of its message, set by
the service). Each fix's *delay* is ``seen - t``. Transport can only add to
it, never take from it, so:

* a rider's **fastest** recent delivery (his smallest delay over his last
  ``per_rider`` deliveries) is the transport's floor plus his clock's
  offset; one late delivery (a retry, a tunnel) does not raise it, only a
  clock does, consistently;
* the **field's** floor is the median of the riders' fastest deliveries
  (every rider of a tick shares its delay, so a clock common to the whole
  feed cancels out);
* a tracker is off by ``field floor - his floor`` (positive: ahead).

A fix of a tracker off by more than ``tolerance_s`` either way is flagged
(``quality = clock_off``): its position is real but its time is not, so it
must not set anyone's gap, lead the race, or be grouped; its own gap is null.
It is not corrected: the offset is known only to the arrival's jitter, and
a shifted time would be a guess shown as fact. With fewer than
``min_riders`` riders seen recently there is no field to compare with and
nothing is flagged; a fix without a ``seen`` time (nan: an archive) is
neither measured nor flagged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ClockParams", "ClockWatch"]


@dataclass(frozen=True)
class ClockParams:
    tolerance_s: float = 5.0  # offsets within this of the field's are the transport's jitter
    per_rider: int = 10  # deliveries remembered per rider: his fastest of the last 10 (a minute of 6 s ticks)
    forget_s: float = 600.0  # a rider unseen this long (of arrival time) is no longer part of the field
    min_riders: int = 5  # fewer riders remembered: no field to compare with


class ClockWatch:
    """Each tracker's recent delays and the field's: ``offsets`` for new fixes, in arrival order of batches.

    Small state (10 deliveries of each rider seen in the last 10 minutes,
    ~5,000 numbers in a race), so it pickles into a runner's keyed state.
    """

    def __init__(self, params: ClockParams = ClockParams()):
        self.params = params
        self.bib = np.zeros(0, dtype=np.int64)
        self.seen = np.zeros(0)
        self.delay = np.zeros(0)

    def offsets(self, bib: np.ndarray, t: np.ndarray, seen: np.ndarray) -> np.ndarray:
        """Remember these fixes' delays, then each fix's tracker's clock offset from the field's, seconds
        (positive: ahead); nan where it cannot be measured (no ``seen`` time, or no field yet)."""
        bib, t, seen = np.asarray(bib, dtype=np.int64), np.asarray(t, float), np.asarray(seen, float)
        known = np.isfinite(seen) & np.isfinite(t)
        out = np.full(bib.size, np.nan)
        if not known.any():
            return out
        self._remember(bib[known], seen[known], (seen - t)[known])
        riders, floor = _floor_per_rider(self.bib, self.delay)
        if riders.size < self.params.min_riders:
            return out
        field = float(np.median(floor))
        at = np.searchsorted(riders, bib[known])  # every known fix's rider was just remembered
        out[known] = field - floor[at]
        return out

    def _remember(self, bib: np.ndarray, seen: np.ndarray, delay: np.ndarray) -> None:
        """Add deliveries; keep each rider's last ``per_rider`` and forget riders unseen for ``forget_s``.

        Counted per rider, not by time: the field's ticks reach the engine
        when their window closes, a late fix at once, and the feed has holes
        (36 s every minute, whole minutes missing), so a time window would
        empty the field just when a late fix needs it."""
        b, s, d = np.r_[self.bib, bib], np.r_[self.seen, seen], np.r_[self.delay, delay]
        order = np.lexsort((s, b))
        b, s, d = b[order], s[order], d[order]
        starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
        ends = np.r_[starts[1:], b.size]
        from_end = np.repeat(ends, ends - starts) - np.arange(b.size)  # 1 for a rider's newest delivery
        newest = np.repeat(s[ends - 1], ends - starts)
        keep = (from_end <= self.params.per_rider) & (newest >= s.max() - self.params.forget_s)
        self.bib, self.seen, self.delay = b[keep], s[keep], d[keep]

    def flags(self, bib: np.ndarray, t: np.ndarray, seen: np.ndarray) -> np.ndarray:
        """:meth:`offsets`, as a mask of fixes whose tracker's clock is off by more than the tolerance."""
        off = self.offsets(bib, t, seen)
        with np.errstate(invalid="ignore"):
            return np.abs(off) > self.params.tolerance_s


def _floor_per_rider(bib: np.ndarray, delay: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted bibs, each one's smallest delay)."""
    order = np.lexsort((delay, bib))
    b, d = bib[order], delay[order]
    first = np.r_[True, b[1:] != b[:-1]]
    return b[first], d[first]
