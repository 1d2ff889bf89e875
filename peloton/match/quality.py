"""The ``quality`` of a matched fix, and which of them each use of the fixes takes: one place, so a new flag is
decided for every use at once."""
from __future__ import annotations

__all__ = ["Quality"]


class Quality:
    GOOD = "good"
    OFF_ROUTE = "off_route"  # farther from the course than MatchParams.off_route_m
    NEUTRAL = "neutral"  # before km 0 (the neutral start)
    FINISHED = "finished"  # past the line
    CLOCK_OFF = "clock_off"  # its tracker's clock is off (peloton.ingest.clock): the position is real, the time is not

    #: on the road before the line: stops, the result's riders still out
    ON_COURSE = (GOOD, OFF_ROUTE)
    #: racing on the road: groups
    RIDING = (GOOD, OFF_ROUTE, NEUTRAL)
    #: near the course: gaps, line crossings, km marks
    TIMED = (GOOD, FINISHED, NEUTRAL)
    #: near the course and before the line: when a rider was last seen racing
    RACING = (GOOD, NEUTRAL)
    #: every fix whose time can be trusted: climbs, the report's frames
    TRUSTED = (GOOD, OFF_ROUTE, FINISHED, NEUTRAL)
