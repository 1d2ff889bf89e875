"""The kernels of ``benchmarks/hindsight.py``: the feed's groups, partition agreement, backward steps."""
import numpy as np
import pytest

from benchmarks.hindsight import backward_steps, feed_groups, official_backward_steps, partition_agreement


def test_feed_groups_part_where_the_official_gap_steps_by_two_seconds():
    official = {(1, 100): {"secToFirstRider": 0}, (2, 100): {"secToFirstRider": 1},
                (3, 100): {"secToFirstRider": 3}, (4, 100): {"secToFirstRider": 4},
                (5, 100): {"secToFirstRider": None}}
    groups = feed_groups(official, step_s=2.0)
    assert groups[(1, 100)] == groups[(2, 100)] != groups[(3, 100)] == groups[(4, 100)]
    assert (5, 100) not in groups  # no official gap: in no group
    assert len(set(feed_groups(official, step_s=3.0).values())) == 1


def test_partition_agreement_counts_pairs_and_scores_ticks():
    truth = {(b, 10): g for b, g in zip(range(4), (0, 0, 1, 1))}
    truth.update({(b, 20): 0 for b in range(4)})
    same = partition_agreement(truth, dict(truth))
    assert same["ari_median"] == 1.0 and same["agree"] == 1.0 and same["pairs"] == 12
    ours = {**truth, (2, 20): 7, (3, 20): 7}  # at tick 20 we part the pack in two
    split = partition_agreement(truth, ours)
    assert split["they_together_we_apart"] == pytest.approx(4 / 12)
    assert split["they_apart_we_together"] == 0.0
    assert split["ari_median"] < 1.0


def test_backward_steps_count_a_rider_going_back_not_a_change_of_rider():
    bib = np.array([1, 1, 1, 2, 2])
    t = np.array([0.0, 12.0, 6.0, 0.0, 6.0])  # out of order: sorted by time per rider
    ktf = np.array([10.0, 9.9, 9.95, 20.0, 20.06])  # rider 1 moves forward; rider 2 goes back 60 m
    assert backward_steps(bib, t, ktf, over_m=50.0) == 1
    assert backward_steps(bib, t, ktf, over_m=70.0) == 0
    official = {(1, 0): {"kmToFinish": 10.0}, (1, 6): {"kmToFinish": 10.2}, (2, 0): {"kmToFinish": None}}
    assert official_backward_steps(official) == 1
