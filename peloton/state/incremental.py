"""What the race engine carries from one window to the next, so that a window costs what is new in it.

The engine (:mod:`peloton.state.engine`) matches each window against every rider's
last minutes and takes gaps against the leader's trajectory over its whole
history. Two parts of that work do not change for rows already seen:

* a fix's candidate passes of the course (:meth:`Course.candidates`, a
  spatial search): they depend on its position only, so they are kept next
  to the match context, row for row, and only new fixes are searched;
* who led at each tick: :func:`peloton.state.gaps.leader_per_tick` walks the ticks
  in order, and a tick's leader depends on fixes of the last
  ``LEADER_LOOKBACK_S`` and on the leader of the tick before. Carrying that
  last (tick, leader), the newest window's ticks need the last few minutes of
  rows, not the whole history.

* the road clock (:class:`LiveRoadClock`): a 10 m cell's sums change only
  where an interval of the history came or went, so only those cells are
  summed again.

The history and the clock's intervals sit in buffers with room to grow
(:class:`ColumnBuffer`): a window writes its new rows and moves the few kept
among those that aged out, instead of copying 45 minutes of rows.

All give the rows the full computation gives (tests/test_incremental.py).
Kept state is small: the candidates of the context (a few columns per fix),
who led each tick, the clock's intervals and cell sums (a few columns per fix
of the history).
"""
from __future__ import annotations

import numpy as np

from peloton.match.course import Candidates
from peloton.state.gaps import LEADER_HOLD_S, SILENT_HOLD_S, RoadClock, cell_sums, clock_cells, road_intervals

__all__ = ["LEADER_LOOKBACK_S", "empty_candidates", "stack_candidates", "LiveRoadClock", "ColumnBuffer"]

#: A tick's leader depends on fixes this far back at most: the furthest rider of the last ``LEADER_HOLD_S``,
#: or a silent leader's last fix up to ``SILENT_HOLD_S`` old.
LEADER_LOOKBACK_S = max(LEADER_HOLD_S, SILENT_HOLD_S)


def empty_candidates() -> Candidates:
    return Candidates(np.full((0, 1), np.nan), np.full((0, 1), np.inf))


def stack_candidates(a: Candidates, b: Candidates) -> Candidates:
    """Rows of ``a`` then rows of ``b``, the narrower padded with missing candidates."""
    n, w = a.s.shape[0], max(a.s.shape[1], b.s.shape[1])
    s, off = np.full((n + b.s.shape[0], w), np.nan), np.full((n + b.s.shape[0], w), np.inf)
    s[:n, :a.s.shape[1]], off[:n, :a.s.shape[1]] = a.s, a.off_m
    s[n:, :b.s.shape[1]], off[n:, :b.s.shape[1]] = b.s, b.off_m
    return Candidates(s, off)


class ColumnBuffer:
    """Parallel columns that gain rows at the end and lose rows (the oldest: mostly the first ones), kept in buffers
    with room to grow: a window copies its new rows and the few kept among those dropped, not every row.

    :meth:`columns` are views of the buffers, in the order the rows came (less those dropped): the arrays that
    concatenating and masking would give. A view is valid until the next :meth:`drop`, which moves kept rows.
    """

    def __init__(self, columns: dict):
        n = len(next(iter(columns.values())))
        self._buf = {k: np.empty(max(2 * n, 1024), dtype=v.dtype) for k, v in columns.items()}
        for k, v in columns.items():
            self._buf[k][:n] = v
        self._start, self._end = 0, n
        self._views = None

    def __len__(self) -> int:
        return self._end - self._start

    def columns(self) -> dict:
        if self._views is None:
            self._views = {k: b[self._start:self._end] for k, b in self._buf.items()}
        return self._views

    def holds(self, columns: dict) -> bool:
        """Whether ``columns`` are this buffer's current views (not arrays put in their place)."""
        views = self.columns()
        return views.keys() == columns.keys() and all(columns[k] is v for k, v in views.items())

    def drop(self, gone: np.ndarray) -> None:
        """Drop the rows of mask ``gone`` (over :meth:`columns`), the others kept in their order."""
        at = np.flatnonzero(gone)
        if not at.size:
            return
        end = self._start + int(at[-1]) + 1  # rows from here on are all kept
        kept = np.flatnonzero(~gone[:int(at[-1]) + 1])
        for b in self._buf.values():  # the kept rows before the last dropped one close up towards it
            b[end - kept.size:end] = b[self._start:end][kept]
        self._start = end - kept.size
        self._views = None

    def append(self, new: dict) -> None:
        n = len(next(iter(new.values())))
        if not n:
            return
        size = len(self)
        if self._end + n > next(iter(self._buf.values())).size:  # no room at the end: into new buffers
            room = max(2 * (size + n), 1024)
            for k, b in self._buf.items():
                grown = np.empty(room, dtype=b.dtype)
                grown[:size] = b[self._start:self._end]
                self._buf[k] = grown
            self._start, self._end = 0, size
        for k, b in self._buf.items():
            b[self._end:self._end + n] = new[k]
        self._end += n
        self._views = None


#: A road clock's intervals, a column each (rider, time of the first fix, ends in cells from km 0, log pace, cells).
_INTERVAL_COLUMNS = ("bib", "t0", "a", "b", "log_pace", "lo", "hi")


class LiveRoadClock:
    """The road clock (:class:`peloton.state.gaps.RoadClock`) of the engine's history, kept up to date window by window.

    A 10 m cell's sums change only where an interval came (the riders' newest fixes) or went (fixes dropped from
    the history, ``history_s`` old): only those cells are summed again, from every interval over them, in the
    order a clock built from the whole history adds them up (by rider, then time). Kept in cells counted from
    km 0, which are the built clock's cells less a whole number: the same floats while no fix of the history lies
    before km 0; while the neutral start is in the history, in the built clock's own cells (``shift``,
    :meth:`shift_for`; :meth:`clock` says None when the history needs other cells: the caller counts them anew
    from the history). So the clock is the built one bit for bit (tests/test_incremental.py).
    """

    def __init__(self, step_km: float = 0.01, max_dt_s: float = 7.0, shift: int = 0):
        self.step_km, self.max_dt_s = step_km, max_dt_s
        self.shift = shift  # cells are counted from -shift (shift_for)
        # the intervals, in the order they came: rider, time of the first fix, ends (cells from km 0), log pace
        self.bib, self.t0 = np.zeros(0, dtype=np.int64), np.zeros(0)
        self.a, self.b, self.log_pace = np.zeros(0), np.zeros(0), np.zeros(0)
        self.lo, self.hi = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)  # the cells of a and b
        # each rider's newest fix: the first of his next interval
        self.last_bib, self.last_t = np.zeros(0, dtype=np.int64), np.zeros(0)
        self.last_km, self.last_usable = np.zeros(0), np.zeros(0, dtype=bool)
        self.base = 0  # the cell of total[0] and covered[0]
        self.total, self.covered = np.zeros(0), np.zeros(0)  # cell_sums of the intervals
        self.pace_sorted: np.ndarray | None = None  # log_pace sorted (None: sorted again)
        self.interval_rows: ColumnBuffer | None = None  # the buffers behind the interval columns (not pickled)

    def update(self, bib: np.ndarray, t: np.ndarray, km: np.ndarray, usable: np.ndarray, cutoff: float) -> None:
        """The history gained these fixes (each newer than its rider's fixes already in it) and dropped its fixes
        older than ``cutoff``."""
        intervals = self._intervals()
        gone = self.t0 < cutoff
        at = np.flatnonzero(gone)
        dirty = [self._cells_of(self.lo[at], self.hi[at])]
        pace_gone = self.log_pace[at]
        intervals.drop(gone)
        pace_new = np.zeros(0)
        if bib.size:
            # each rider's newest fix before these, then these: their intervals, as the built clock pairs them
            known = np.zeros(0, dtype=np.int64)
            if self.last_bib.size:
                pos = np.minimum(np.searchsorted(self.last_bib, bib), self.last_bib.size - 1)
                known = np.unique(pos[self.last_bib[pos] == bib])
            B, T = np.concatenate([self.last_bib[known], bib]), np.concatenate([self.last_t[known], t])
            K, U = np.concatenate([self.last_km[known], km]), np.concatenate([self.last_usable[known], usable])
            first, second, pace_new = road_intervals(T, K, B, U, self.max_dt_s)
            a, b = K[first] / self.step_km, K[second] / self.step_km
            if self.shift:
                a, b = a + self.shift, b + self.shift
            lo, hi = np.floor(a).astype(np.int64), np.floor(b).astype(np.int64)
            intervals.append(dict(bib=B[first], t0=T[first], a=a, b=b, log_pace=pace_new, lo=lo, hi=hi))
            dirty.append(self._cells_of(lo, hi))
            self._remember_last(B, T, K, U)
        self.__dict__.update(intervals.columns())
        self._pace_changed(pace_gone, pace_new)
        self._sum_again(np.unique(np.concatenate(dirty)))

    def _intervals(self) -> ColumnBuffer:
        """The buffers behind the interval columns (made again from them after a pickle round trip)."""
        intervals = self.interval_rows
        columns = {k: getattr(self, k) for k in _INTERVAL_COLUMNS}
        if intervals is None or not intervals.holds(columns):
            intervals = self.interval_rows = ColumnBuffer(columns)
            self.__dict__.update(intervals.columns())
        return intervals

    def _pace_changed(self, gone: np.ndarray, new: np.ndarray) -> None:
        """Keep ``pace_sorted`` (the intervals' log paces, sorted: their median is the clock's typical pace) as
        the intervals ``gone`` go and ``new`` ones come."""
        paces = self.pace_sorted
        if paces is None or paces.size != self.log_pace.size + gone.size - new.size:
            self.pace_sorted = np.sort(self.log_pace)
            return
        if gone.size:
            gone = np.sort(gone)
            first = np.searchsorted(gone, gone, side="left")  # each value's n-th repeat takes the n-th equal slot
            paces = np.delete(paces, np.searchsorted(paces, gone, side="left") + np.arange(gone.size) - first)
        if new.size:
            new = np.sort(new)
            paces = np.insert(paces, np.searchsorted(paces, new, side="left"), new)
        self.pace_sorted = paces

    def __getstate__(self):
        state = dict(self.__dict__)
        state["interval_rows"] = None  # the interval columns' buffers: their views pickle as the rows alone
        return state

    def clock(self, lo_km: float, hi_km: float) -> RoadClock | None:
        """The clock a :class:`RoadClock` built from the history (usable fixes from ``lo_km`` to ``hi_km``) is; None
        when its cells are not this clock's (:meth:`shift_for`: the neutral start came into the history or left it)."""
        origin, n_cells = clock_cells(lo_km, hi_km, self.step_km)
        shift = self.shift
        if self.shift_for(lo_km, self.step_km) != shift:
            return None
        typical = self._typical_pace()
        first = int(origin) + shift  # the built clock's first cell, in this clock's cells
        return RoadClock.of_cells(origin, self._cells(self.total, first, n_cells),
                                  self._cells(self.covered, first, n_cells), typical, self.step_km)

    @staticmethod
    def shift_for(lo_km: float, step_km: float = 0.01) -> int:
        """The shift of the cells a clock of fixes from ``lo_km`` on is kept in.

        A clock built from fixes counts its cells from the cell before the first fix's (``origin``), and
        measures an interval's ends in them (``km / step_km - origin``). Counted from km 0 instead, the
        ends are the same floats less a whole number as long as ``origin >= 0`` (a subtraction that stays
        exact): shift 0 serves every such history. With fixes before km 0 (the neutral start), ``-origin``
        is added, which may round: the cells are then kept shifted by exactly that (``-origin``), and serve
        the histories with that origin.
        """
        origin = int(clock_cells(lo_km, lo_km, step_km)[0])
        return max(-origin, 0)

    @classmethod
    def of_history(cls, bib, t, km, usable, step_km: float = 0.01, max_dt_s: float = 7.0,
                   shift: int = 0) -> "LiveRoadClock":
        """The clock of a history, at once (the cells' shift changed: see :meth:`clock`)."""
        clock = cls(step_km, max_dt_s, shift)
        order = np.lexsort((t, bib))
        clock.update(bib[order], t[order], km[order], usable[order], -np.inf)
        return clock

    @staticmethod
    def _cells_of(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Every cell the intervals of cells ``lo`` to ``hi`` cover (repeats and all)."""
        count = hi - lo + 1
        if not lo.size:
            return lo
        return np.repeat(lo - np.concatenate([[0], np.cumsum(count)[:-1]]), count) + np.arange(int(count.sum()))

    def _typical_pace(self) -> float:
        """The median log pace of the intervals (as ``np.median(self.log_pace)``), from ``pace_sorted``."""
        n = self.log_pace.size
        if not n:
            return np.log(100.0)
        paces = self.pace_sorted
        if paces is None or paces.size != n:
            return np.median(self.log_pace)
        if np.isnan(paces[-1]):  # (nan sorts last; the median of a nan is nan)
            return np.median(self.log_pace)
        return np.median(paces[(n - 1) // 2:n // 2 + 1])  # the middle one or two: the same mean of them

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
