"""The windowing spec: how event time is cut into windows and when a window's rows are final.

One spec for every stage that depends on it: the live ingest (tick windows, early firing, allowed
lateness), the race engine (its windows, and the settle time after which a window is final), and the
publishers' ``--shift-to-now`` (event times move by whole windows, so the live windows cut the race where
the replay's do). A change of tick length is made here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Windowing", "WINDOWING", "TICK_S", "window_index", "window_start", "window_end"]

#: One feed tick (s): the windows the race is cut into unless a spec says otherwise.
TICK_S = 6.0


def window_index(t, window_s: float):
    """The window an event time falls in, ``floor(t / window_s)`` (vectorised): the one cut of event time into
    windows, so the ingest, the engine and its timers agree on every window's edges."""
    return np.floor(np.asarray(t) / window_s).astype(np.int64)


def window_start(t, window_s: float):
    return window_index(t, window_s) * window_s


def window_end(t, window_s: float):
    return (window_index(t, window_s) + 1) * window_s


@dataclass(frozen=True)
class Windowing:
    #: one feed tick: the windows the race is cut into (s)
    window_s: float = TICK_S
    #: provisional rows this many processing-time seconds after a pane's first fix (whole seconds, at least 1) ...
    early_after_s: int = 1
    #: ... or as soon as this many messages' fixes are in (a tick message carries the whole field: at once)
    early_after_messages: int = 1
    #: fixes this late behind the watermark are still used; later ones are dead letters (s)
    allowed_lateness_s: float = 300.0
    #: how finely the late-data split follows the watermark (s): each step is a timer and a bundle through every
    #: later step of the graph (at 1 s, most of the local runner's CPU at 10x); a fix is late at most this much later
    watermark_step_s: float = 6.0

    @property
    def settle_s(self) -> float:
        """A window's rows are final this long after its end: every fix that may still come has come."""
        return self.allowed_lateness_s + self.window_s

    def whole_windows(self, shift_s: float) -> float:
        """``shift_s`` rounded down to a whole number of windows (never ahead of the clock)."""
        return float(window_start(shift_s, self.window_s)) if self.window_s > 0 else shift_s

    def nearest_windows(self, shift_s: float) -> float:
        """``shift_s`` rounded to the nearest whole number of windows."""
        return self.window_s * round(shift_s / self.window_s) if self.window_s > 0 else shift_s


#: The spec every command uses unless told otherwise.
WINDOWING = Windowing()
