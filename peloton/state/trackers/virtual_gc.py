"""The live virtual general classification: classifications rows ``virtual_general`` and ``virtual_leader_change``
race events, window by window."""
from __future__ import annotations

import numpy as np

from peloton.output.table import Columns
from peloton.state.classifications import StageClassifier
from peloton.state.trackers.base import Window
from peloton.state.virtual_gc import VirtualGC

__all__ = ["VirtualGeneral"]


class VirtualGeneral:
    """Road stages: the virtual general classification (:mod:`peloton.state.virtual_gc`) from what the trackers before it
    publish on the window: each new fix's gap (RoadGaps) and group (in the history), the result rows said
    (Results), the passages at the bonus points (Classifications). Rows where a rider's claim changed; at the end,
    once more with every result."""

    def __init__(self, classifier: StageClassifier):
        self.bonus = [i for i, p in enumerate(classifier.points) if p[0] == "bonus"]  # their passages' keys
        self.book = VirtualGC.of(classifier)

    def update(self, w: Window) -> dict:
        m, h = w.m, w.hist
        if not len(m) or w.gaps is None:
            return {}
        f = m.fixes
        gid = h["gid"][w.newest]
        return self._said(self.book.update(w.newest_t, f.bib, f.t, m.km, m.km_to_finish, w.gaps, gid,
                                           w.results_said, self._bonus_passages(w)))

    def finish(self, w: Window) -> dict:
        return self._said(self.book.close(w.newest_t, w.results_said, self._bonus_passages(w)))

    def _bonus_passages(self, w: Window) -> list:
        out = []
        for p in self.bonus:
            got = sorted((b, v) for (b, q), v in w.passed.items() if q == p)
            out.append((np.array([b for b, _ in got], np.int64), np.array([v[0] for _, v in got], float),
                        np.array([v[1] for _, v in got], float)))
        return out

    @staticmethod
    def _said(got) -> dict:
        rows, events = got
        out = {}
        if rows:
            out["classifications"] = Columns.from_rows("classifications", rows)
        if events:
            out["race_events"] = events
        return out
