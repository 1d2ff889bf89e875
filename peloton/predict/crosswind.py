"""Crosswind warnings: a ``crosswind_ahead`` race event when a group big enough to split into echelons comes
within reach of an exposed section of the course (:attr:`peloton.match.profile.Profile.crosswinds`). Pure Python."""
from __future__ import annotations

from peloton.match.profile import Profile
from peloton.predict.group_state import GroupState

__all__ = ["CrosswindWatch"]


class CrosswindWatch:
    """Warns each group once per section; remembers whom it warned (it pickles with the predictor)."""

    def __init__(self):
        self.warned: set = set()  # (group id, section start km)

    def warn(self, groups: list[GroupState], profile: Profile, min_size: int, warn_km: float) -> list[dict]:
        """The warnings this tick: groups of ``min_size`` riders or more within ``warn_km`` of a section."""
        events = []
        for g in groups:
            if g.size < min_size:
                continue
            row, km = g.row, g.km
            for start, end, cross_kph in profile.crosswinds:
                key = (row.group_id, start)
                if key in self.warned or not (start - warn_km <= km < start):
                    continue
                self.warned.add(key)
                events.append({
                    "stage_id": row.stage_id, "event_time": row.event_time, "event_type": "crosswind_ahead",
                    "km_to_finish": round(profile.finish_km - km, 3), "bibs": sorted(row.bibs),
                    "group_ids": [row.group_id],
                    "detail": f"crosswind {cross_kph:.0f} km/h from km {start:.1f} to {end:.1f}, "
                              f"{start - km:.1f} km ahead: echelon risk"})
        return events
