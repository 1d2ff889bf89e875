"""What the race engine carries from one window to the next, so that a window costs what is new in it.

The engine (:mod:`peloton.engine`) matches each window against every rider's
last minutes and takes gaps against the leader's trajectory over its whole
history. Two parts of that work do not change for rows already seen:

* a fix's candidate passes of the course (:meth:`Course.candidates`, a
  spatial search): they depend on its position only, so they are kept next
  to the match context, row for row, and only new fixes are searched;
* who led at each tick: :func:`peloton.gaps.leader_per_tick` walks the ticks
  in order, and a tick's leader depends on fixes of the last
  ``LEADER_LOOKBACK_S`` and on the leader of the tick before. Carrying that
  last (tick, leader), the newest window's ticks need the last few minutes of
  rows, not the whole history.

* the road clock (:class:`LiveRoadClock`): a 10 m cell's sums change only
  where an interval of the history came or went, so only those cells are
  summed again.

All give the rows the full computation gives (tests/test_incremental.py).
Kept state is small: the candidates of the context (a few columns per fix),
who led each tick, the clock's intervals and cell sums (a few columns per fix
of the history).
"""
from __future__ import annotations

import numpy as np

from peloton.course import Candidates
from peloton.feed import FixBatch
from peloton.gaps import LEADER_HOLD_S, SILENT_HOLD_S, RoadClock, cell_sums, clock_cells, road_intervals

__all__ = ["LEADER_LOOKBACK_S", "empty_candidates", "stack_candidates", "take_candidates", "candidates_lookup",
           "LiveRoadClock"]

#: A tick's leader depends on fixes this far back at most: the furthest rider of the last ``LEADER_HOLD_S``,
#: or a silent leader's last fix up to ``SILENT_HOLD_S`` old.
LEADER_LOOKBACK_S = max(LEADER_HOLD_S, SILENT_HOLD_S)


def empty_candidates() -> Candidates:
    return Candidates(np.full((0, 1), np.nan), np.full((0, 1), np.inf))


def _width(c: Candidates) -> int:
    """Columns needed: candidates fill each row from column 0, so the most any row has (at least one)."""
    return max(int(np.isfinite(c.off_m).sum(axis=1).max(initial=0)), 1)


def take_candidates(c: Candidates, rows) -> Candidates:
    """Those rows, with as many columns as they need (as :meth:`Course.candidates` would give them)."""
    s, off = c.s[rows], c.off_m[rows]
    w = _width(Candidates(s, off))
    return Candidates(s[:, :w].copy(), off[:, :w].copy())


def stack_candidates(a: Candidates, b: Candidates) -> Candidates:
    """Rows of ``a`` then rows of ``b``, the narrower padded with missing candidates."""
    w = max(a.s.shape[1], b.s.shape[1])
    pad = lambda x, fill: np.pad(x, ((0, 0), (0, w - x.shape[1])), constant_values=fill)  # noqa: E731
    return Candidates(np.vstack([pad(a.s, np.nan), pad(b.s, np.nan)]),
                      np.vstack([pad(a.off_m, np.inf), pad(b.off_m, np.inf)]))


def candidates_lookup(batch: FixBatch, cands: Candidates):
    """For :func:`peloton.matching.match_fixes`: the candidates of the fixes it keeps, read off ``cands`` (the
    candidates of ``batch``, row for row) instead of searched.

    A fix's candidates depend on its position only, so each fix is looked up by (lat, lon): whichever of its
    (bib, t)'s positions ``match_fixes`` keeps (repeats dropped, conflicts resolved), its candidates are those
    searched for that position.
    """
    key = batch.lat + 1j * batch.lon  # complex numbers sort by real part, then imaginary: by (lat, lon)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]

    def lookup(fixes: FixBatch) -> Candidates:
        if not len(fixes):
            return empty_candidates()
        wanted = fixes.lat + 1j * fixes.lon
        pos = np.minimum(np.searchsorted(sorted_key, wanted), max(order.size - 1, 0))
        if not (order.size and np.array_equal(sorted_key[pos], wanted)):
            raise ValueError("fixes are not rows of the batch whose candidates are known")
        return take_candidates(cands, order[pos])

    return lookup


class LiveRoadClock:
    """The road clock (:class:`peloton.gaps.RoadClock`) of the engine's history, kept up to date window by window.

    A 10 m cell's sums change only where an interval came (the riders' newest fixes) or went (fixes dropped from
    the history, ``history_s`` old): only those cells are summed again, from every interval over them, in the
    order a clock built from the whole history adds them up (by rider, then time). Kept in cells counted from
    km 0, which are the built clock's cells less a whole number: the same floats while no fix of the history lies
    before km 0 (:meth:`clock` says None before that: the neutral start still in the history, the caller builds
    the clock from the history). So the clock is the built one bit for bit (tests/test_incremental.py).
    """

    def __init__(self, step_km: float = 0.01, max_dt_s: float = 7.0):
        self.step_km, self.max_dt_s = step_km, max_dt_s
        # the intervals, in the order they came: rider, time of the first fix, ends (cells from km 0), log pace
        self.bib, self.t0 = np.zeros(0, dtype=np.int64), np.zeros(0)
        self.a, self.b, self.log_pace = np.zeros(0), np.zeros(0), np.zeros(0)
        self.lo, self.hi = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)  # the cells of a and b
        # each rider's newest fix: the first of his next interval
        self.last_bib, self.last_t = np.zeros(0, dtype=np.int64), np.zeros(0)
        self.last_km, self.last_usable = np.zeros(0), np.zeros(0, dtype=bool)
        self.base = 0  # the cell of total[0] and covered[0]
        self.total, self.covered = np.zeros(0), np.zeros(0)  # cell_sums of the intervals

    def update(self, bib: np.ndarray, t: np.ndarray, km: np.ndarray, usable: np.ndarray, cutoff: float) -> None:
        """The history gained these fixes (each newer than its rider's fixes already in it) and dropped its fixes
        older than ``cutoff``."""
        gone = self.t0 < cutoff
        dirty = [self._cells_of(gone)]
        if gone.any():
            kept = ~gone
            self.bib, self.t0, self.a, self.b, self.log_pace, self.lo, self.hi = (
                x[kept] for x in (self.bib, self.t0, self.a, self.b, self.log_pace, self.lo, self.hi))
        if bib.size:
            # each rider's newest fix before these, then these: their intervals, as the built clock pairs them
            known = np.zeros(0, dtype=np.int64)
            if self.last_bib.size:
                pos = np.minimum(np.searchsorted(self.last_bib, bib), self.last_bib.size - 1)
                known = np.unique(pos[self.last_bib[pos] == bib])
            B, T = np.r_[self.last_bib[known], bib], np.r_[self.last_t[known], t]
            K, U = np.r_[self.last_km[known], km], np.r_[self.last_usable[known], usable]
            first, second, log_pace = road_intervals(T, K, B, U, self.max_dt_s)
            n_old = self.bib.size
            a, b = K[first] / self.step_km, K[second] / self.step_km
            new = (B[first], T[first], a, b, log_pace, np.floor(a).astype(np.int64), np.floor(b).astype(np.int64))
            self.bib, self.t0, self.a, self.b, self.log_pace, self.lo, self.hi = (
                np.concatenate([old, x]) for old, x in
                zip((self.bib, self.t0, self.a, self.b, self.log_pace, self.lo, self.hi), new))
            added = np.zeros(self.bib.size, dtype=bool)
            added[n_old:] = True
            dirty.append(self._cells_of(added))
            self._remember_last(B, T, K, U)
        self._sum_again(np.unique(np.concatenate(dirty)))

    def clock(self, lo_km: float, hi_km: float) -> RoadClock | None:
        """The clock a :class:`RoadClock` built from the history (usable fixes from ``lo_km`` to ``hi_km``) is; None
        while the history holds fixes before km 0."""
        origin, n_cells = clock_cells(lo_km, hi_km, self.step_km)
        if origin < 0:
            return None
        typical = np.median(self.log_pace) if self.log_pace.size else np.log(100.0)
        return RoadClock.of_cells(origin, self._cells(self.total, origin, n_cells),
                                  self._cells(self.covered, origin, n_cells), typical, self.step_km)

    @classmethod
    def of_history(cls, bib, t, km, usable, step_km: float = 0.01, max_dt_s: float = 7.0) -> "LiveRoadClock":
        """The clock of a history, at once (an engine pickled before it kept one)."""
        clock = cls(step_km, max_dt_s)
        order = np.lexsort((t, bib))
        clock.update(bib[order], t[order], km[order], usable[order], -np.inf)
        return clock

    def _cells_of(self, mask: np.ndarray) -> np.ndarray:
        """Every cell the ``mask`` intervals cover (repeats and all)."""
        lo = self.lo[mask]
        count = self.hi[mask] - lo + 1
        if not lo.size:
            return lo
        return np.repeat(lo - np.r_[0, np.cumsum(count)[:-1]], count) + np.arange(int(count.sum()))

    def _sum_again(self, dirty: np.ndarray) -> None:
        """The sums of the ``dirty`` cells (sorted, unique) from every interval over them, in (rider, time) order."""
        if not dirty.size:
            return
        self._cover(int(dirty[0]), int(dirty[-1]))
        marked = np.zeros(self.total.size + 1, dtype=np.int64)  # dirty cells up to each cell: an interval over one
        marked[dirty - self.base + 1] = 1  # has more at its last cell than before its first
        marked = np.cumsum(marked)
        over = np.flatnonzero(marked[self.hi - self.base + 1] > marked[self.lo - self.base])
        total, covered = np.zeros(dirty.size), np.zeros(dirty.size)
        if over.size:
            over = over[np.lexsort((self.t0[over], self.bib[over]))]
            first = int(self.lo[over].min())
            n = int(self.hi[over].max()) - first + 1
            sums = cell_sums(self.a[over], self.b[over], self.log_pace[over], first, n)
            inside = (dirty >= first) & (dirty < first + n)
            total[inside], covered[inside] = (x[dirty[inside] - first] for x in sums)
        self.total[dirty - self.base], self.covered[dirty - self.base] = total, covered

    def _cover(self, lo: int, hi: int) -> None:
        """Grow the cell arrays to hold cells ``lo`` to ``hi``."""
        if self.total.size and self.base <= lo and hi < self.base + self.total.size:
            return
        base = min(lo, self.base) if self.total.size else lo
        end = max(hi + 1, self.base + self.total.size) if self.total.size else hi + 1
        total, covered = np.zeros(end - base), np.zeros(end - base)
        total[self.base - base:self.base - base + self.total.size] = self.total
        covered[self.base - base:self.base - base + self.covered.size] = self.covered
        self.base, self.total, self.covered = base, total, covered

    def _cells(self, sums: np.ndarray, origin: int, n: int) -> np.ndarray:
        """Cells ``origin`` .. ``origin + n - 1`` of ``sums`` (0 outside the kept ones)."""
        out = np.zeros(n)
        lo, hi = max(int(origin), self.base), min(int(origin) + n, self.base + sums.size)
        if hi > lo:
            out[lo - int(origin):hi - int(origin)] = sums[lo - self.base:hi - self.base]
        return out

    def _remember_last(self, bib, t, km, usable) -> None:
        order = np.lexsort((t, bib))
        bib, t, km, usable = bib[order], t[order], km[order], usable[order]
        last = np.r_[bib[1:] != bib[:-1], True]
        merged = np.union1d(self.last_bib, bib[last])
        at_old, at_new = np.searchsorted(merged, self.last_bib), np.searchsorted(merged, bib[last])
        cols = []
        for old, new, dtype in ((self.last_t, t, float), (self.last_km, km, float),
                                (self.last_usable, usable, bool)):
            col = np.zeros(merged.size, dtype=dtype)
            col[at_old], col[at_new] = old, new[last]
            cols.append(col)
        self.last_bib, (self.last_t, self.last_km, self.last_usable) = merged, cols
