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

Both give the rows the full computation gives (tests/test_incremental.py).
Kept state is small: the candidates of the context (a few columns per fix)
and two numbers.
"""
from __future__ import annotations

import numpy as np

from peloton.course import Candidates
from peloton.feed import FixBatch
from peloton.gaps import LEADER_HOLD_S, SILENT_HOLD_S

__all__ = ["LEADER_LOOKBACK_S", "empty_candidates", "stack_candidates", "take_candidates", "candidates_lookup"]

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
