"""Course geometry: distance along a stage's polyline, calibrated to official km.

A course is a polyline (lat, lon, optional elevation) plus *anchors*: points
whose official kilometre is known (points of interest, timetable
checkpoints). Official course polylines are simplified and measure about 1 %
short, so raw polyline length is converted to official km by piecewise-linear
interpolation between the anchors ("calibration").

Vocabulary, all in metres unless the name says km:
    s       distance along the polyline from its first point (polyline metres)
    km      official distance from km 0 (negative in the neutral zone)
    off_m   distance of a point from the polyline
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely

from peloton.match.geo import LocalProjection, haversine_m

__all__ = ["Anchor", "Course", "Candidates", "chord_gradient"]

def chord_gradient(ele_from, ele_to, run_m, scale: float = 1.0):
    """The road's gradient between two points: rise over run, the run at least 1 m (times ``scale``: 100 for %).

    The one gradient rule: the course takes it over +-``GRADIENT_HALF_WINDOW_M`` around each point
    (:meth:`Course.gradient_at`), the profile over each step of its km grid (:func:`peloton.match.profile.build_profile`).
    """
    return scale * (np.asarray(ele_to) - np.asarray(ele_from)) / np.maximum(run_m, 1.0)


#: Half-window (polyline metres) over which the elevation profile is smoothed
#: before taking the gradient: road gradients are quoted over ~100-200 m.
GRADIENT_HALF_WINDOW_M = 100.0
#: Anchors further than this from the polyline are not trusted for calibration.
ANCHOR_MAX_OFF_M = 250.0
#: First search radius for candidates: a rider on the road is within this of
#: the (simplified) polyline; a pass further away would never win anyway.
NEAR_RADIUS_M = 120.0
#: Points per spatial query: bounds the memory of the (point, segment) pairs.
CANDIDATE_CHUNK = 100_000


@dataclass(frozen=True)
class Anchor:
    """A point of the course whose official kilometre from km 0 is known."""

    lat: float
    lon: float
    km: float
    label: str = ""


@dataclass
class Candidates:
    """Where a batch of points could lie on the course.

    Arrays are (n_points, k): every column is one distinct local minimum of
    the distance to the polyline (one pass of the course near the point),
    nearest first. Missing candidates have ``off_m = inf`` and ``s = nan``.
    """

    s: np.ndarray
    off_m: np.ndarray

    @property
    def count(self) -> np.ndarray:
        return np.isfinite(self.off_m).sum(axis=1)

    def take(self, rows) -> "Candidates":
        """Those rows, with as many columns as they need (as :meth:`Course.candidates` would give them: candidates
        fill each row from column 0, so the most any row has, at least one)."""
        s, off = self.s[rows], self.off_m[rows]
        width = max(int(np.isfinite(off).sum(axis=1).max(initial=0)), 1)
        return Candidates(s[:, :width].copy(), off[:, :width].copy())


@dataclass
class Course:
    """A stage course: polyline, elevation profile and km calibration."""

    lat: np.ndarray
    lon: np.ndarray
    ele: np.ndarray | None = None
    anchors: list[Anchor] = field(default_factory=list)
    finish_km: float | None = None
    name: str = ""

    def __post_init__(self):
        self.lat = np.asarray(self.lat, dtype=float)
        self.lon = np.asarray(self.lon, dtype=float)
        if self.lat.ndim != 1 or self.lat.size < 2 or self.lat.shape != self.lon.shape:
            raise ValueError("a course needs at least two (lat, lon) points")
        keep = np.ones(self.lat.size, dtype=bool)
        keep[1:] = (np.diff(self.lat) != 0) | (np.diff(self.lon) != 0)  # repeated vertices
        self.lat, self.lon = self.lat[keep], self.lon[keep]
        if self.ele is not None:
            self.ele = np.asarray(self.ele, dtype=float)[keep]
            if not np.isfinite(self.ele).any():
                self.ele = None
        self.proj = LocalProjection(float(np.mean(self.lat)), float(np.mean(self.lon)))
        self.x, self.y = self.proj.forward(self.lat, self.lon)
        seg_m = haversine_m(self.lat[:-1], self.lon[:-1], self.lat[1:], self.lon[1:])
        self.cum_m = np.concatenate([[0.0], np.cumsum(seg_m)])
        self.length_m = float(self.cum_m[-1])
        self._tree = None
        self._calibrate()
        self._build_profile()

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_tree"] = None  # rebuilt lazily where it is used
        return state

    # -------------------------------------------------------------- calibration
    def _calibrate(self) -> None:
        """Locate anchors on the polyline and build the s -> km mapping."""
        located = self.locate_anchors()
        if len(located) >= 2:
            s = np.array([a[0] for a in located])
            km = np.array([a[1].km for a in located])
        else:
            # No usable anchors: km 0 at the first point, scaled to finish_km.
            scale = (self.finish_km * 1000.0 / self.length_m) if self.finish_km else 1.0
            s = np.array([0.0, self.length_m])
            km = np.array([0.0, self.length_m * scale / 1000.0])
        self.anchor_s = s
        self.anchor_km = km
        self.used_anchors = [a[1] for a in located]
        if self.finish_km is None:
            self.finish_km = float(self.km_at(np.array([self.length_m]))[0])

    def locate_anchors(self) -> list[tuple[float, Anchor]]:
        """Place each anchor on the polyline, in km order, monotonically.

        An anchor near several passes of the course (a circuit, an
        out-and-back) is put on the pass closest to where the previous anchor
        and the official distance between them say it should be.
        """
        if not self.anchors:
            return []
        anchors = sorted(self.anchors, key=lambda a: a.km)
        cands = self.candidates(np.array([a.lat for a in anchors]), np.array([a.lon for a in anchors]),
                                radius_m=ANCHOR_MAX_OFF_M, k=8)
        located: list[tuple[float, Anchor]] = []
        prev_s = prev_km = None
        for i, anchor in enumerate(anchors):
            ok = np.isfinite(cands.off_m[i])
            if not ok.any():
                continue
            s_i, off_i = cands.s[i][ok], cands.off_m[i][ok]
            if prev_s is None:
                # the first mark: the earliest pass among the nearest ones
                near = off_i <= off_i.min() + 50.0
                j = int(np.flatnonzero(near)[np.argmin(s_i[near])])
            else:
                # polyline and official distances agree within a few percent
                step_m = (anchor.km - prev_km) * 1000.0
                miss = np.abs(s_i - (prev_s + step_m))
                j = int(np.argmin(miss + off_i))
                if miss[j] > 500.0 + 0.1 * step_m or s_i[j] <= prev_s or step_m <= 0:
                    continue
            prev_s, prev_km = float(s_i[j]), anchor.km
            located.append((prev_s, anchor))
        return located

    def km_at(self, s) -> np.ndarray:
        """Official km from km 0 at polyline distance ``s`` (metres).

        Linear between anchors; beyond the first and last anchor it continues
        with the slope of the nearest anchor pair (neutral zone, after finish).
        """
        s = np.asarray(s, dtype=float)
        a_s, a_km = self.anchor_s, self.anchor_km
        km = np.interp(s, a_s, a_km)
        lo_slope = (a_km[1] - a_km[0]) / (a_s[1] - a_s[0])
        hi_slope = (a_km[-1] - a_km[-2]) / (a_s[-1] - a_s[-2])
        km = np.where(s < a_s[0], a_km[0] + (s - a_s[0]) * lo_slope, km)
        return np.where(s > a_s[-1], a_km[-1] + (s - a_s[-1]) * hi_slope, km)

    def s_at_km(self, km) -> np.ndarray:
        """Inverse of :meth:`km_at` (polyline metres at official km)."""
        km = np.asarray(km, dtype=float)
        a_s, a_km = self.anchor_s, self.anchor_km
        s = np.interp(km, a_km, a_s)
        lo = (a_s[1] - a_s[0]) / (a_km[1] - a_km[0])
        hi = (a_s[-1] - a_s[-2]) / (a_km[-1] - a_km[-2])
        s = np.where(km < a_km[0], a_s[0] + (km - a_km[0]) * lo, s)
        return np.where(km > a_km[-1], a_s[-1] + (km - a_km[-1]) * hi, s)

    # ------------------------------------------------------------------ profile
    def _build_profile(self) -> None:
        """Elevation and gradient on a regular 10 m grid of polyline distance."""
        self._grid_step = 10.0
        self._grid_s = np.arange(0.0, self.length_m + self._grid_step, self._grid_step)
        if self.ele is None:
            self._grid_ele = self._grid_grad = None
            return
        ele = np.interp(self._grid_s, self.cum_m, np.where(np.isfinite(self.ele), self.ele, np.nanmean(self.ele)))
        half = max(1, int(GRADIENT_HALF_WINDOW_M / self._grid_step))
        idx = np.arange(self._grid_s.size)
        lo = np.clip(idx - half, 0, idx.size - 1)
        hi = np.clip(idx + half, 0, idx.size - 1)
        self._grid_ele = ele
        self._grid_grad = chord_gradient(ele[lo], ele[hi], self._grid_s[hi] - self._grid_s[lo], scale=100.0)

    def altitude_at(self, s) -> np.ndarray | None:
        """Course altitude (m) at polyline distance ``s``; None without elevation."""
        if self._grid_ele is None:
            return None
        return np.interp(s, self._grid_s, self._grid_ele)

    def gradient_at(self, s) -> np.ndarray | None:
        """Road gradient (%) at ``s``, smoothed over +-100 m; None without elevation."""
        if self._grid_grad is None:
            return None
        return np.interp(s, self._grid_s, self._grid_grad)

    def point_at(self, s) -> tuple[np.ndarray, np.ndarray]:
        """(lat, lon) of the polyline at distance ``s``."""
        s = np.clip(np.asarray(s, dtype=float), 0.0, self.length_m)
        return np.interp(s, self.cum_m, self.lat), np.interp(s, self.cum_m, self.lon)

    # ---------------------------------------------------------------- matching
    @property
    def tree(self) -> shapely.STRtree:
        if self._tree is None:
            segs = shapely.linestrings(np.stack([
                np.stack([self.x[:-1], self.y[:-1]], axis=1),
                np.stack([self.x[1:], self.y[1:]], axis=1)], axis=1))
            self._tree = shapely.STRtree(segs)
        return self._tree

    def candidates(self, lat, lon, radius_m: float = 500.0, k: int = 6,
                   near_m: float = NEAR_RADIUS_M) -> Candidates:
        """Every distinct pass of the course within ``radius_m`` of each point.

        Vectorised: one STRtree query per chunk of points, one projection per
        (point, segment) pair, then the local minima of the distance along the
        course are kept (a hairpin's two legs stay two candidates). Points are
        first searched within ``near_m`` (almost all of them are that close);
        only the rest are searched again out to ``radius_m``. The result has
        as many columns as the most ambiguous point needs, at most ``k``.
        """
        lat = np.asarray(lat, dtype=float)
        lon = np.asarray(lon, dtype=float)
        n = lat.size
        px, py = self.proj.forward(lat, lon)
        found = np.zeros(n, dtype=bool)
        parts = []  # (rows, rank, s, off)
        todo = np.arange(n)
        for radius in ([near_m] if near_m < radius_m else []) + [radius_m]:
            for chunk in np.array_split(todo, max(1, todo.size // CANDIDATE_CHUNK)):
                rows, rank, s, off = self._local_minima(chunk, px[chunk], py[chunk], radius)
                keep = rank < k
                parts.append((rows[keep], rank[keep], s[keep], off[keep]))
                found[rows] = True
            todo = np.flatnonzero(~found)
            if todo.size == 0:
                break
        width = max([int(p[1].max()) + 1 for p in parts if p[1].size] + [1])
        out = Candidates(np.full((n, width), np.nan), np.full((n, width), np.inf))
        for rows, rank, s, off in parts:
            out.s[rows, rank] = s
            out.off_m[rows, rank] = off
        return out

    def _local_minima(self, rows, px, py, radius_m: float):
        """(row, rank by distance, s, off) of each distinct pass near each point."""
        pairs = self.tree.query(shapely.points(px, py), predicate="dwithin", distance=radius_m)
        # sort by (point, segment): segment order is order along the course
        order = np.argsort(pairs[0] * np.int64(self.x.size) + pairs[1], kind="stable")
        pi, si = pairs[0][order], pairs[1][order]
        if pi.size == 0:
            e = np.zeros(0)
            return rows[:0], np.zeros(0, dtype=np.int64), e, e
        ax, ay = self.x[si], self.y[si]
        dx, dy = self.x[si + 1] - ax, self.y[si + 1] - ay
        l2 = dx * dx + dy * dy
        qx, qy = px[pi] - ax, py[pi] - ay
        t = np.clip((qx * dx + qy * dy) / np.where(l2 > 0, l2, 1.0), 0.0, 1.0)
        off = np.hypot(qx - t * dx, qy - t * dy)
        s = self.cum_m[si] + t * (self.cum_m[si + 1] - self.cum_m[si])
        # Local minima of off along the course, per point. Only adjacent
        # segments are neighbours: two passes separated by a stretch beyond
        # the radius are two candidates even if one is nearer. A tie at a
        # shared vertex (t clamped on both segments) keeps the first.
        same_prev = np.r_[False, (pi[1:] == pi[:-1]) & (si[1:] == si[:-1] + 1)]
        same_next = np.r_[same_prev[1:], False]
        prev_off = np.where(same_prev, np.r_[np.inf, off[:-1]], np.inf)
        next_off = np.where(same_next, np.r_[off[1:], np.inf], np.inf)
        is_min = ((off < prev_off) & (off <= next_off)) | ((off == prev_off) & (off < next_off) &
                                                            (np.r_[np.inf, np.diff(s)] >= 1.0))
        pi, s, off = pi[is_min], s[is_min], off[is_min]
        # rank by distance within each point (off < 2 * radius, so one float key sorts both)
        order = np.argsort(pi + off / (2.0 * radius_m + 1.0), kind="stable")
        pi, s, off = pi[order], s[order], off[order]
        first = np.r_[0, np.flatnonzero(np.diff(pi)) + 1]
        rank = np.arange(pi.size) - np.repeat(first, np.diff(np.r_[first, pi.size]))
        return rows[pi], rank, s, off
