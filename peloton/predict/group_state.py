"""What the predictions know of one group at one tick: its groups row decoded once, and its memory.

Pure Python. A group's memory (:class:`GroupHistory`) outlives the tick: a
new group (a split, an attack, a merge) takes over the history of the group
its first rider was in, so its power is fitted from where he rode.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["GroupRow", "GroupHistory", "GroupState"]


@dataclass(frozen=True)
class GroupRow:
    """The fields of a ``groups`` row the predictions use (a time trial's rider is a group of one)."""

    stage_id: str
    event_time: int  # epoch ms
    group_id: int
    rank: int
    label: str
    size: int
    bibs: tuple
    km: float  # the head's official km
    gap_to_leader_s: float  # 0 when unknown
    speed_kph: float  # 0 when unknown

    @classmethod
    def of(cls, row: dict, finish_km: float) -> "GroupRow | None":
        """A groups row decoded; None without the head's position."""
        if row.get("km_to_finish_head") is None:
            return None
        return cls(row["stage_id"], row["event_time"], int(row["group_id"]), int(row["rank"]), row.get("label") or "",
                   int(row.get("size") or 1), tuple(row.get("bibs") or ()), finish_km - float(row["km_to_finish_head"]),
                   row.get("gap_to_leader_s") or 0.0, float(row.get("speed_kph") or 0.0))


@dataclass
class GroupHistory:
    """A group's head over the last minutes (a time trial's rider over his whole ride), and its last fit."""

    t: list = field(default_factory=list)
    km: list = field(default_factory=list)  # head's official km
    gap: list = field(default_factory=list)  # head's gap to the leader
    last_predicted: float = -np.inf
    fit: tuple | None = None  # (when, drafting class, power, sigma) of the last fit


@dataclass
class GroupState:
    """One group at this tick: its row, its history, and the power (W/kg) and spread fitted to it."""

    row: GroupRow
    history: GroupHistory
    power: float = float("nan")
    sigma: float = float("nan")

    @property
    def km(self) -> float:
        return self.row.km

    @property
    def size(self) -> int:
        return self.row.size
