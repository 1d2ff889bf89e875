"""The gate: what a message must pass before its fixes reach the race state.

One object for the replay (with hindsight), the causal replay and the live
pipeline, so that all three set aside the same fixes with the same reasons
and "the final rows equal the causal replay's" holds on hostile input too.
In order: the limits (payload size, attributes, event times ahead of the
clock), the signature (live, with a keyring), parsing (the start list, the
rider limit, every field), then every fix's time against the clock and the
``event_time`` attribute. A replay has neither clock nor attributes: those
checks pass and the rest are the same.

The start list is the stage's (:meth:`peloton.match.stage.Stage.start_list`: the
riders of the recording or the stage file). A stage without one (a flat CSV
export, a stage file written before start lists were kept) gives None, and
then no bib is checked: that is decided here and nowhere else.

The organiser's rankings after the stage (a message of ``kind`` ``rankings``, :mod:`peloton.ingest.official`) pass the
same limits and signature, then :meth:`Gate.rankings` checks them against the stage (its year and number, its
start list): a bad document is one dead letter, never rows.

The flat CSV export is rows, not feed messages: its chunks are the reader's
own cut (``CSV_CHUNK_ROWS``), so the message limits (payload size, rider
count) are not applied to them.
"""
from __future__ import annotations

from dataclasses import dataclass

from peloton.ingest.auth import Keyring, Limits, event_time_attribute_s, screen
from peloton.ingest.feed import FixBatch, check_event_times, dead_letter, parse_message
from peloton.ingest.official import ATTR_BIND, RANKINGS_KIND, Rankings, RankingsError, read_rankings
from peloton.ingest.reasons import Reason

__all__ = ["Gate", "ARCHIVE_ROWS"]

#: The kind of an archive's rows (the flat CSV export): no message limits.
ARCHIVE_ROWS = "csv"


@dataclass(frozen=True)
class Gate:
    """The checks of one stage's feed: ``admit`` a message -> (FixBatch, dead-letter rows), never an exception."""

    stage_id: str
    start_list: tuple | None = None  # the stage's bibs; None: bibs are not checked (module doc)
    limits: Limits = Limits()
    year: int | None = None  # the stage's race year and number: a rankings document must be of them
    stage_number: int | None = None

    @classmethod
    def of_stage(cls, stage, limits: Limits = Limits()) -> "Gate":
        return cls.of(stage.stage_id, stage.start_list(), limits, stage.year, stage.number)

    @classmethod
    def of(cls, stage_id: str, start_list=None, limits: Limits = Limits(), year: int | None = None,
           stage_number: int | None = None) -> "Gate":
        bibs = None if start_list is None else tuple(sorted({int(b) for b in start_list}))
        return cls(stage_id, bibs or None, limits, year, stage_number)

    @staticmethod
    def is_rankings(attributes: dict | None) -> bool:
        """A message of the organiser's rankings (attribute ``kind`` = ``rankings``), not of fixes."""
        return (attributes or {}).get("kind") == RANKINGS_KIND

    def rankings(self, payload, attributes: dict | None = None, source: str = "pubsub", name: str = "rankings"):
        """A screened rankings message -> ((Rankings, event time s), []) or (None, [its one dead letter]): the
        document checked against the stage (:func:`peloton.ingest.official.read_rankings`), its event time the
        ``event_time`` attribute (when it was fetched, on the feed's clock)."""
        attributes = attributes or {}
        t = event_time_attribute_s(attributes)
        try:
            if t is None:
                raise RankingsError(Reason.BAD_ATTRIBUTE, f"{name}: a rankings message needs its event_time")
            doc = read_rankings(_bytes(payload), name, self.stage_id, self.year, self.stage_number,
                                self.start_list, attributes.get(ATTR_BIND))
        except RankingsError as exc:
            return None, [dead_letter(self.stage_id, exc.reason, _raw(payload), str(exc), t=t, source=source)]
        return (doc, t), []

    def check_rankings(self, text, name: str) -> Rankings:
        """A rankings file (the replay's ``--rankings``): :class:`peloton.ingest.official.RankingsError` when unusable."""
        return read_rankings(text, name, self.stage_id, self.year, self.stage_number, self.start_list)

    def screen(self, payload: bytes, attributes: dict | None = None, keyring: Keyring | None = None,
               now_s: float | None = None, kind: str | None = None, source: str = "pubsub") -> list[dict]:
        """Before any parsing: the limits, then the signature (with a keyring) -> [] when it may be parsed, else
        its one dead letter."""
        attributes = attributes or {}
        if kind == ARCHIVE_ROWS:
            return []
        verdict = screen(_bytes(payload), attributes, self.limits, keyring, now_s)
        if verdict is None:
            return []
        return [dead_letter(self.stage_id, verdict[0], _raw(payload), verdict[1],
                            t=event_time_attribute_s(attributes), source=source)]

    def accept(self, payload, attributes: dict | None = None, now_s: float | None = None, kind: str | None = None,
               source: str = "pubsub"):
        """A screened message -> (FixBatch, dead letters): parsing (start list, rider limit), then every fix's
        time against the clock and the ``event_time`` attribute.

        ``kind``: the archive's kind of the message (a replay); None: the ``kind`` attribute says (live), and
        never ``csv``, which is an archive's rows and not a message.
        """
        attributes = attributes or {}
        if kind is None:
            kind = attributes.get("kind")
            kind = kind if kind in ("tick", "fix") else "auto"
        fixes, dead = parse_message(self.stage_id, kind, payload, source=source, start_list=self.start_list,
                                    max_riders=None if kind == ARCHIVE_ROWS else self.limits.max_riders)
        fixes, wrong_time = check_event_times(fixes, event_time_attribute_s(attributes), now_s,
                                              self.limits.future_tolerance_s, self.limits.skew_tolerance_s, source)
        return fixes, dead + wrong_time

    def admit(self, payload, attributes: dict | None = None, keyring: Keyring | None = None,
              now_s: float | None = None, kind: str | None = None, source: str = "pubsub"):
        """:meth:`screen` then :meth:`accept`, in one call (the replays, the fuzz tests). Live runs them as two
        Beam steps, with replay protection between (a message is remembered only once accepted)."""
        dead = self.screen(payload, attributes, keyring, now_s, kind, source)
        if dead:
            return FixBatch.empty(self.stage_id), dead
        return self.accept(payload, attributes, now_s, kind, source)


def _bytes(payload) -> bytes:
    return payload if isinstance(payload, bytes) else payload.encode("utf-8", "surrogatepass")


def _raw(payload) -> str:
    """The start of a refused message, as its dead letter's ``raw``."""
    return _bytes(payload)[:20000].decode("utf-8", errors="replace")
