"""Results: crossings of the line kept for good, result rows once final, and each rider's ``finished`` event."""
from __future__ import annotations

import numpy as np

from peloton.match.quality import Quality
from peloton.state.race import finished_event
from peloton.state.results import (CROSSING_BASE_S, FINALE_KM, RESULT_SETTLE_S, Crossings, crossing_uncertainty_s,
                             finale_stops, last_seen, line_crossings, rank_results)
from peloton.state.trackers.base import Window

__all__ = ["Results"]


class Results:
    """results and ``finished`` race_events. Road stages: a rider's row once his crossing has settled; time trials
    rank by elapsed time, which the riders still on the course can change, so their rows come at the end; so do
    every row not yet said (DNF included). Only the finale is looked at (fixes in the last few km), so the rest
    of the stage costs nothing. Publishes the final ranking at the end (the classifications need it)."""

    def __init__(self, same_time_gap_s: float = 1.0):
        self.same_time_gap_s = same_time_gap_s
        self.crossed: dict = {}  # bib -> (last fix t, crossed t, line km, seen at the line, km short)
        self.stops: dict = {}  # bib -> (stop t, bibs of his group)
        self.last_seen: dict = {}  # bib -> (t, km)
        self.sent: set = set()
        self.finished_said: set = set()
        self.over = False

    def update(self, w: Window) -> dict:
        m, ra = w.m, w.race_params
        f = m.fixes
        racing = np.isin(m.quality, Quality.RACING) & (m.km_to_finish > ra.at_line_km) & (m.km >= 0)
        self.last_seen.update(last_seen(f.t, m.km, f.bib, racing))
        if self.over:
            return {}
        h = w.hist
        near = h["ktf"] <= FINALE_KM + 1.0
        if not near[h["t"].size - len(m):].any() and not self.crossed:
            return {}
        t, bib, ktf, usable = h["t"][near], h["bib"][near], h["ktf"][near], h["usable"][near]
        c = line_crossings(t, h["km"][near], bib, usable, ktf, h["speed"][near], ra.at_line_km)
        out = {"race_events": self._finished_events(w.stage_id, self._remember(c, w.newest_t))}
        if w.time_trial:
            return out
        stops = finale_stops(t, bib, ktf, h["speed"][near], usable & (ktf > 0), h["gid"][near], ra.stopped_kph,
                             ra.stopped_min_s)
        for rider, stop in stops.items():
            self.stops.setdefault(rider, stop)
        # final once no crossing still unknown can overlap his interval: an unknown one's starts no sooner than
        # RESULT_SETTLE_S + CROSSING_BASE_S ago (his last fix is newer, and he extrapolates from it)
        kept = self._crossings()
        settled = set(kept.bib[kept.crossed_t + crossing_uncertainty_s(kept)
                               <= w.newest_t - RESULT_SETTLE_S - CROSSING_BASE_S].tolist())
        if not settled - self.sent:
            return out
        rows = rank_results(w.stage_id, kept, self.same_time_gap_s, self.stops)
        rows = [r for r in rows if r["bib"] in settled and r["bib"] not in self.sent]
        self.sent |= {r["bib"] for r in rows}
        out["results"] = w.results_said = rows
        return out

    def finish(self, w: Window) -> dict:
        """Every row not yet said. A tracker that stopped short of the line counts as a finish at its rider's last
        speed without waiting for the silence to settle."""
        self.over = True
        h, ra = w.hist, w.race_params
        c = line_crossings(h["t"], h["km"], h["bib"], h["usable"], h["ktf"], h["speed"], ra.at_line_km)
        events = self._finished_events(w.stage_id, self._remember(c, np.inf))
        starts = ranked = None
        if w.time_trial:
            starts, ranked = w.starts, w.ranked
        rows = rank_results(w.stage_id, self._crossings(), self.same_time_gap_s, self.stops, self.last_seen,
                            starts, ranked)
        w.ranking = rows
        unsaid = w.results_said = [r for r in rows if r["bib"] not in self.sent]
        self.sent |= {r["bib"] for r in rows}
        return {"race_events": events, "results": unsaid}

    def _remember(self, c: Crossings, now: float) -> list[int]:
        """Keep crossings for good: seen at the line, or a tracker silent short of it for ``RESULT_SETTLE_S``.
        Returns the riders newly kept."""
        new = []
        for i in np.flatnonzero(c.seen_at_line | (now - c.last_fix_t >= RESULT_SETTLE_S)).tolist():
            if int(c.bib[i]) not in self.crossed:
                new.append(int(c.bib[i]))
            self.crossed.setdefault(int(c.bib[i]), (float(c.last_fix_t[i]), float(c.crossed_t[i]),
                                                    float(c.line_km[i]), bool(c.seen_at_line[i]),
                                                    float(c.short_km[i])))
        return new

    def _finished_events(self, stage_id: str, riders: list[int]) -> list[dict]:
        """A ``finished`` event per rider whose crossing is known for good (as the results have it)."""
        out = []
        for b in riders:
            if b in self.finished_said:
                continue
            self.finished_said.add(b)
            _last, crossed_t, _line, seen, _short = self.crossed[b]
            out.append(finished_event(stage_id, b, crossed_t, seen))
        return out

    def _crossings(self) -> Crossings:
        bibs = sorted(self.crossed)
        cols = list(zip(*(self.crossed[b] for b in bibs))) if bibs else [[]] * 5
        return Crossings(np.array(bibs, dtype=np.int64), np.array(cols[0], float), np.array(cols[1], float),
                         np.array(cols[2], float), np.array(cols[3], bool), np.array(cols[4], float))
