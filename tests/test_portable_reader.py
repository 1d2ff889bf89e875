"""The pieces that keep ``peloton live`` on Flink exact, without a cluster: the reader's restriction (what it
remembers of the messages it read), its one-checkpoint-late acknowledgement, and the archive's row keys."""
from __future__ import annotations

import time

from peloton.ingest.feed import dead_letter
from peloton.sim.evaluate import read_table
from peloton.state.rows import dead_letter_columns
from transforms import read_feed
from transforms.read_feed import REMEMBER_S, FeedRestriction, _Acknowledger, _FeedTracker
from transforms.sinks import FlushAvroFileFn, _not_archived


def test_the_restriction_remembers_what_was_read_and_forgets_it_after_a_while():
    tracker = _FeedTracker(FeedRestriction(5, (("old", 1000.0), ("kept", 2000.0))))
    assert tracker.try_claim((5, (("a", 2000.0 + REMEMBER_S - 1),)))
    assert tracker.try_claim((6, ()))
    primary, residual = tracker.try_split(0)
    assert primary == FeedRestriction(5, ())
    # the residual goes on after the last pull, with the messages read since (and those not too old before)
    assert residual == FeedRestriction(7, (("kept", 2000.0), ("a", 2000.0 + REMEMBER_S - 1)))
    assert not tracker.try_claim((7, ()))  # split: this bundle claims no more
    assert tracker.try_split(0) is None


def test_messages_are_acknowledged_one_checkpoint_after_their_bundle_was_finalized(monkeypatch):
    acked = []
    acknowledger = _Acknowledger("projects/p/subscriptions/s")
    monkeypatch.setattr(acknowledger, "_acknowledge", acked.extend)
    monkeypatch.setattr(read_feed, "FINALIZE_ROUND_GAP_S", 0.05)
    acknowledger.finalized(["a"])  # bundles finalized when checkpoint 1 completed
    acknowledger.finalized(["b"])
    assert acked == []  # they may have finished after checkpoint 1's barrier: not yet
    time.sleep(0.1)
    acknowledger.finalized(["c"])  # checkpoint 2 completed: it holds a and b
    assert acked == ["a", "b"]
    time.sleep(0.1)
    acknowledger.finalized([])
    assert acked == ["a", "b", "c"]


def test_the_archive_takes_a_row_key_once_whatever_a_runner_replays(tmp_path):
    rows = [dead_letter("s4", "too_large", f"payload {i}", bib=None, t=1000.0 + i) for i in range(4)]
    first = FlushAvroFileFn(str(tmp_path))
    written = list(first._write("dead_letter", _Bag([dead_letter_columns(rows[:3])]), _Bag([])))
    assert len(written) == 1
    # a replay after a restore: rows 1-2 again, row 3 new, row 3 twice in one file
    again = dead_letter_columns(rows[1:3] + rows[3:] + rows[3:])
    kept = _not_archived(str(tmp_path), "dead_letter", again)
    assert [r["raw"] for r in kept.to_json_rows()] == ["payload 3"]
    list(first._write("dead_letter", _Bag([again]), _Bag([])))
    assert sorted(r["raw"] for r in read_table(str(tmp_path), "dead_letter")) == [f"payload {i}" for i in range(4)]
    # nothing replayed: the batch as it was, the same object
    fresh = dead_letter_columns([dead_letter("s4", "too_large", "payload 9", t=2000.0)])
    assert _not_archived(str(tmp_path), "dead_letter", fresh) is fresh


class _Bag:
    """A state cell as the sink's timer callbacks see it."""

    def __init__(self, items):
        self.items = list(items)

    def read(self):
        return self.items

    def clear(self):
        self.items = []


def test_a_live_job_on_flink_is_checkpointed_unless_told_otherwise(monkeypatch, tmp_path):
    from pipelines import flink

    monkeypatch.setenv("PELOTON_FLINK_STATE", str(tmp_path / "state"))
    args = flink.streaming_args(["--runner", "FlinkRunner"])
    assert args[args.index("--checkpointing_interval") + 1] == str(flink.CHECKPOINT_INTERVAL_MS)
    assert args[args.index("--state_backend") + 1] == "filesystem"
    assert args[args.index("--state_backend_storage_path") + 1] == f"file://{tmp_path}/state/checkpoints"
    assert args[args.index("--job_name") + 1].startswith("peloton-live-")
    assert "--externalized_checkpoints_enabled" in args
    mine = flink.streaming_args(["--checkpointing_interval", "10000", "--job_name=today"])
    assert mine.count("--checkpointing_interval") == 1 and "--job_name" not in mine
    assert flink.savepoint_dir() == f"file://{tmp_path}/state/savepoints"
