"""A rider's own events: signal lost and back, stopped."""
from __future__ import annotations

import numpy as np

from peloton.match.quality import Quality
from peloton.state.race import signal_events, stop_event
from peloton.state.results import stop_runs
from peloton.state.trackers.base import PerRider, Window

__all__ = ["RiderEvents"]


class RiderEvents:
    """signal_lost / signal_back (said when the signal is back) and stopped (said when the rider moves on, or at
    the end) as race_events: the replay's kernels over this window's fixes, each rider's carried on from his last
    fix."""

    def __init__(self):
        self.riders = PerRider()  # each rider's last matched fix (t, ktf)
        self.feed_ticks = np.zeros(0)  # every tick of matched fixes so far (sorted): silences while the feed ticked
        self.open_stops: dict = {}  # bib -> (first fix t, its km to finish, last fix t) of a stop not over yet

    def update(self, w: Window) -> dict:
        m, ra, stage_id = w.m, w.race_params, w.stage_id
        f = m.fixes
        if not len(m):
            return {}
        order = np.lexsort((f.t, f.bib))
        bib, t, ktf = f.bib[order], f.t[order], m.km_to_finish[order]
        speed, quality = m.speed_kph[order], m.quality[order]
        same_prev = np.r_[False, bib[1:] == bib[:-1]]
        last_t, last_ktf = self.riders.get(bib, "t"), self.riders.get(bib, "ktf")
        prev_t = np.where(same_prev, np.r_[np.nan, t[:-1]], last_t)
        prev_ktf = np.where(same_prev, np.r_[np.nan, ktf[:-1]], last_ktf)
        self.feed_ticks = np.union1d(self.feed_ticks, t)
        events = signal_events(stage_id, bib, t, ktf, prev_t, prev_ktf, self.feed_ticks, ra)
        last = np.r_[bib[1:] != bib[:-1], True]
        self.riders.set(bib[last], t=t[last], ktf=ktf[last])
        # stops: a stop still open at the last window goes on with this one's fixes (its first and last fix stand in)
        carried = [(b, *self.open_stops.pop(b)) for b in np.unique(bib).tolist() if b in self.open_stops]
        pre_bib = np.array([c[0] for c in carried for _ in range(2)], dtype=np.int64)
        pre_t = np.array([x for c in carried for x in (c[1], c[3])], dtype=float)
        pre_ktf = np.array([x for c in carried for x in (c[2], np.nan)], dtype=float)
        B, T, K = np.r_[pre_bib, bib], np.r_[pre_t, t], np.r_[pre_ktf, ktf]
        S = np.r_[np.zeros(pre_t.size), speed]
        on_course = np.r_[np.ones(pre_t.size, dtype=bool), np.isin(quality, Quality.ON_COURSE)]
        order = np.lexsort((T, B))
        is_last = np.zeros(B.size, dtype=bool)
        is_last[order[np.r_[B[order][1:] != B[order][:-1], True]]] = True
        first, final = stop_runs(B, T, S, on_course, ra.stopped_kph, 0.0)  # every run, however short
        for a, z in zip(first[is_last[final]].tolist(), final[is_last[final]].tolist()):
            self.open_stops[int(B[a])] = (float(T[a]), float(K[a]), float(T[z]))
        first, final = stop_runs(B, T, S, on_course, ra.stopped_kph, ra.stopped_min_s)
        over = ~is_last[final]
        events += [stop_event(stage_id, B[a], T[a], K[a], T[z]) for a, z in zip(first[over], final[over])]
        return {"race_events": events}

    def finish(self, w: Window) -> dict:
        """A stop not over at the end is one if it lasted long enough."""
        events = [stop_event(w.stage_id, b, t_a, ktf, t_z) for b, (t_a, ktf, t_z) in sorted(self.open_stops.items())
                  if t_z - t_a >= w.race_params.stopped_min_s]
        self.open_stops = {}
        return {"race_events": events}
