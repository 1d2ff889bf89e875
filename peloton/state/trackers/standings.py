"""Time trials' virtual standings: a rider's rank at a km mark among those who passed it before him."""
from __future__ import annotations

import numpy as np

from peloton.match.quality import Quality
from peloton.state.race import mark_kms, standing_rows
from peloton.state.trackers.base import Reach, Window

__all__ = ["VirtualStandings"]


class VirtualStandings:
    """virtual_standings: a rider's row at a km mark once he has a fix past it, ranked among the riders who passed
    it before him (:func:`peloton.state.race.standing_rows`, the replay's rule); only riders with a start and a trusted
    track."""

    def __init__(self):
        self.reach = Reach()  # over timed fixes
        self.seen: dict = {}  # km mark index -> (bibs, passages, elapsed) of the riders ranked there

    def update(self, w: Window) -> dict:
        m = w.m
        if not len(m):
            return {}
        marks, labels = mark_kms(w.finish_km)
        riders, passed = self.reach.passed(m, np.isin(m.quality, Quality.TIMED), marks)
        if not passed.any():
            return {}
        starts, ranked, tracks = w.starts, w.ranked, w.tracks  # the history's, as this window's gaps have them
        rows = []
        for r in np.flatnonzero(passed.any(axis=1)).tolist():
            rider = int(riders[r])
            if rider not in starts or rider not in ranked:
                continue
            cols = np.flatnonzero(passed[r])
            passage = tracks.trajectory(rider).passage_time(marks[cols])
            for j, when in zip(cols.tolist(), passage.tolist()):
                if not np.isfinite(when):
                    continue
                bibs, times, elapsed = self.seen.setdefault(j, ([], [], []))
                bibs.append(rider)
                times.append(when)
                elapsed.append(when - starts[rider])
                mark = standing_rows(w.stage_id, float(labels[j]), np.array(bibs), np.array(times),
                                     np.array(elapsed))
                rows += [row for row in mark if row["bib"] == rider]
        return {"virtual_standings": rows}

    def finish(self, w: Window) -> dict:
        return {}
