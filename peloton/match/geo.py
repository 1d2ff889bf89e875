"""Small geodesy helpers on numpy arrays (no Beam, no shapely).

Distances are in metres, angles in degrees. A stage spans at most a few
hundred kilometres, so a local equirectangular projection centred on the
course is accurate to well under 0.5 % for *directions and offsets*; lengths
along the course are measured with the haversine formula instead.
"""
from __future__ import annotations

import numpy as np

__all__ = ["EARTH_RADIUS_M", "haversine_m", "LocalProjection"]

EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in metres between two arrays of points (degrees)."""
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(a, dtype=float)) for a in (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


class LocalProjection:
    """Equirectangular projection to metres around a reference point.

    >>> p = LocalProjection(45.0, 6.0)
    >>> x, y = p.forward([45.0], [6.0])
    >>> float(x[0]), float(y[0])
    (0.0, 0.0)
    """

    def __init__(self, lat0: float, lon0: float):
        self.lat0 = float(lat0)
        self.lon0 = float(lon0)
        self._kx = np.radians(1.0) * EARTH_RADIUS_M * np.cos(np.radians(self.lat0))
        self._ky = np.radians(1.0) * EARTH_RADIUS_M

    def forward(self, lat, lon) -> tuple[np.ndarray, np.ndarray]:
        """(lat, lon) in degrees -> (x east, y north) in metres."""
        lat = np.asarray(lat, dtype=float)
        lon = np.asarray(lon, dtype=float)
        return (lon - self.lon0) * self._kx, (lat - self.lat0) * self._ky

    def inverse(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) in metres -> (lat, lon) in degrees."""
        return (np.asarray(y, dtype=float) / self._ky + self.lat0,
                np.asarray(x, dtype=float) / self._kx + self.lon0)
