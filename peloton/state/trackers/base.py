"""What every tracker of the race engine shares: the window they all read, and per-rider numbers they carry.

The engine matches a window's fixes and appends them to its history once;
each tracker then derives its own tables from that one :class:`Window`, never
from another tracker's internals. What a tracker hands on to the trackers
after it (the groups of the window, the final ranking) it publishes on the
window, in the engine's order.
"""
from __future__ import annotations

from functools import cached_property
from typing import Callable, Protocol

import numpy as np

from peloton.match.matching import Matched
from peloton.predict.model import StageModel
from peloton.state.race import RaceParams, RiderTracks, estimate_start_times, trusted_tracks

__all__ = ["Tracker", "Window", "PerRider", "Reach"]


class Window:
    """One window as the trackers see it: its new matched fixes, the history they end, the engine's clocks.

    ``m`` is the window's matched fixes (the last ``len(m)`` rows of ``hist``); at the end of the stage it is
    None. ``leaders`` and ``clock`` are the engine's (carried from window to window, see
    :meth:`peloton.state.engine.RaceEngine._leaders`). Time trials' tracks, starts and ranked riders are derived
    from the history once per window, for whoever asks first.
    """

    def __init__(self, stage_id: str, finish_km: float, time_trial: bool, race_params: RaceParams,
                 m: Matched | None, hist: dict, newest_t: float, forecast: StageModel | None,
                 leaders: Callable | None = None, clock: Callable | None = None, track_memo: dict | None = None):
        self.stage_id, self.finish_km, self.time_trial, self.race_params = stage_id, finish_km, time_trial, race_params
        self.m, self.hist, self.newest_t, self.forecast = m, hist, newest_t, forecast
        self.leaders, self.clock, self.track_memo = leaders, clock, track_memo
        # published by trackers for the ones after them
        self.groups = None  # road stages: this window's group rows (Columns, wind added), see RoadGaps
        self.group_rows: list = []  # the same rows as dicts, as the groups tracker made them (no wind)
        self.group_timeline = None  # the groups tracked so far (peloton.state.groups.GroupTimeline)
        self.group_changes: list = []  # membership changes first seen in this window
        self.ranking: list = []  # at the end: every result row, ranked (see Results)
        self.gaps = None  # road stages: each new fix's gap to the leader (row for row with m), see RoadGaps
        self.results_said: list = []  # the result rows said in this window (at the end: the rest), see Results
        self.passed: dict = {}  # (bib, classified point) -> passage interval, once past it (see Classifications)

    @cached_property
    def newest(self) -> np.ndarray:
        """The history's rows of this window (its last ``len(m)``)."""
        n = self.hist["t"].size
        out = np.zeros(n, dtype=bool)
        out[n - (0 if self.m is None else len(self.m)):] = True
        return out

    @cached_property
    def tracks(self) -> RiderTracks:
        """The riders' tracks of the (time-trial) history: what is derived from a track is kept until it grows."""
        h = self.hist
        return RiderTracks(h["bib"], h["t"], h["km"], h["usable"], self.track_memo)

    @cached_property
    def starts(self) -> dict:
        """Time trials: each rider's estimated start over the history."""
        h = self.hist
        return estimate_start_times(h["bib"], h["t"], h["km"], h["usable"], self.race_params.itt_start_grid_s,
                                    self.tracks)

    @cached_property
    def ranked(self) -> set:
        """Time trials: the riders whose track is trusted enough to rank."""
        h = self.hist
        return set(trusted_tracks(h["bib"], h["t"], h["km"], h["usable"], self.race_params, self.tracks).tolist())


class Tracker(Protocol):
    """One rule of the race state: its tables from each window, and what only the end of the stage decides."""

    def update(self, w: Window) -> dict:
        """{table: rows (Columns or a list of dicts)} of this window."""

    def finish(self, w: Window) -> dict:
        """{table: rows} that the end of the stage decides (``w.m`` is None)."""


class PerRider:
    """Per-rider numbers a tracker carries (sorted bibs, a column per name): looked up and set for many at once."""

    def __init__(self):
        self.bib = np.zeros(0, dtype=np.int64)
        self.cols: dict = {}

    def get(self, bib: np.ndarray, name: str, default: float = np.nan) -> np.ndarray:
        col = self.cols.get(name)
        if col is None or not self.bib.size:
            return np.full(np.size(bib), default)
        pos = np.minimum(np.searchsorted(self.bib, bib), self.bib.size - 1)
        value = np.where(self.bib[pos] == bib, col[pos], default)
        return np.where(np.isnan(value), default, value)

    def set(self, bib: np.ndarray, **values: np.ndarray) -> None:
        """``bib`` unique."""
        missing = np.setdiff1d(bib, self.bib)
        if missing.size:
            merged = np.union1d(self.bib, missing)
            at = np.searchsorted(merged, self.bib)
            for name, col in self.cols.items():
                grown = np.full(merged.size, np.nan)
                grown[at] = col
                self.cols[name] = grown
            self.bib = merged
        pos = np.searchsorted(self.bib, bib)
        for name, v in values.items():
            col = self.cols.setdefault(name, np.full(self.bib.size, np.nan))
            col[pos] = v


class Reach:
    """How far each rider has been seen (km, over some of his fixes): which points a window takes him past."""

    def __init__(self):
        self.seen = PerRider()

    def passed(self, m: Matched, mask: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(riders of this window, [rider, point]: passed in this window), over the ``mask`` fixes of ``m``."""
        f = m.fixes
        riders = np.unique(f.bib)
        before = self.seen.get(riders, "km", -np.inf)
        km = np.where(mask & np.isfinite(m.km), m.km, -np.inf)
        now = np.full(riders.size, -np.inf)
        np.maximum.at(now, np.searchsorted(riders, f.bib), km)
        now = np.maximum(before, now)
        self.seen.set(riders, km=now)
        return riders, (before[:, None] < points[None, :]) & (points[None, :] <= now[:, None])
