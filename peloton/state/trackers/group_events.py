"""Group events (attack, split, merge, bridge...): the replay's, each said once its groups have lasted."""
from __future__ import annotations

import numpy as np

from peloton.state.race import change_event, change_lasted, change_needs, groups_by_tick, groups_of_change
from peloton.state.trackers.base import Window

__all__ = ["GroupEvents", "GROUP_GONE_S", "events_sorted"]

#: A group not seen for this long is gone: a change waiting for it to live long enough is dropped.
GROUP_GONE_S = 60.0


def events_sorted(events: list[dict]) -> list[dict]:
    return sorted(events, key=lambda e: (e["event_time"], e["event_type"]))


class GroupEvents:
    """race_events of the groups' membership changes (the road tracker's), each said once its groups have lived
    ``min_life_s`` (so, that much late). A change whose group is gone (unseen for ``GROUP_GONE_S``) before it
    lived that long was flicker."""

    def __init__(self):
        self.pending: list = []  # (membership change, groups at its tick) until its groups prove lasting

    def update(self, w: Window) -> dict:
        gparams, timeline = w.race_params.groups, w.group_timeline
        now = float(w.m.fixes.t.max()) if len(w.m) else w.newest_t
        rows_at = groups_by_tick(w.group_rows)
        self.pending += [(c, groups_of_change(rows_at, c)) for c in w.group_changes]
        last_seen = timeline.last_seen
        events, waiting = [], []
        for change, groups_then in self.pending:
            if change_lasted(timeline, change, gparams.min_life_s):
                event = change_event(w.stage_id, change, groups_then, gparams)
                if event is not None:
                    events.append(event)
            elif all(now - last_seen.get(g, -np.inf) <= GROUP_GONE_S for g in change_needs(change)):
                waiting.append((change, groups_then))
        self.pending = waiting
        return {"race_events": events_sorted(events)}

    def finish(self, w: Window) -> dict:
        return {}
