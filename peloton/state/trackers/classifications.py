"""The classifications after the stage (general, points, mountains, young, teams)."""
from __future__ import annotations

import numpy as np

from peloton.match.quality import Quality
from peloton.state.classifications import StageClassifier, passage_intervals
from peloton.state.trackers.base import Reach, Window

__all__ = ["Classifications"]


class Classifications:
    """classifications, at the end only, from the final ranking (published by the results tracker) and the
    passages at the sprints, bonus points and summits, kept as riders pass them: the replay's intervals
    (:func:`peloton.state.classifications.passage_intervals`) on the rider's track in the history."""

    def __init__(self, classifier: StageClassifier):
        self.classifier = classifier
        self.reach = Reach()  # over trusted fixes
        self.passed: dict = {}  # (bib, classified point) -> (lo, hi) passage interval, once he is past it

    def update(self, w: Window) -> dict:
        m, points = w.m, self.classifier.at_km
        w.passed = self.passed
        if not points.size or not len(m):
            return {}
        riders, passed = self.reach.passed(m, np.isin(m.quality, Quality.TRUSTED), points)
        if not passed.any():
            return {}
        h = w.hist
        idx = np.flatnonzero(np.isin(h["bib"], riders[passed.any(axis=1)]) & h["climbing"])
        who, lo, hi = passage_intervals(h["bib"][idx], h["t"][idx], h["km"][idx], points)
        for r, p in zip(*np.nonzero(passed)):
            k = int(np.searchsorted(who, riders[r]))
            if k < who.size and who[k] == riders[r] and np.isfinite(lo[k, p]):
                self.passed[(int(riders[r]), int(p))] = (float(lo[k, p]), float(hi[k, p]))
        return {}

    def finish(self, w: Window) -> dict:
        w.passed = self.passed
        return {"classifications": self.classifier.rows(w.ranking, self._passages())}

    def _passages(self) -> list[tuple]:
        """Per classified point: (riders, lo, hi) of the riders seen past it."""
        out = []
        for p in range(self.classifier.at_km.size):
            got = sorted((b, v) for (b, q), v in self.passed.items() if q == p)
            out.append((np.array([b for b, _ in got], np.int64), np.array([v[0] for _, v in got], float),
                        np.array([v[1] for _, v in got], float)))
        return out
