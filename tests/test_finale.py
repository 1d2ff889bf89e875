"""The finale model on small courses whose answer is known by hand."""
from dataclasses import replace

import numpy as np
import pytest

from peloton.match.profile import build_profile
from peloton.predict.finale import BunchRunIn, FinaleModel, FinaleParams, blend_weight, first_to_line, recent_rides
from peloton.predict.group_state import GroupHistory, GroupState
from peloton.predict.model import PredictParams, Predictor, RiderModel, SpeedTables, StageModel
from tests.helpers import course_with_elevation
from tests.test_predict import T0, flat_profile, group_row


def ride(pred, speed_kph, start_km, finish_km, minutes, size=3, gid=1, rank=1, extra=()):
    """A group riding steadily for ``minutes`` of 6 s ticks: the last tick's rows."""
    rows = []
    for i in range(int(minutes * 10) + 1):
        t = T0 + 6 * i
        km = start_km + speed_kph * 6 * i / 3600
        rows = pred.update([group_row(t, gid, rank, finish_km - km, size=size, speed=speed_kph)]
                           + [f(t) for f in extra])
    return rows


def test_the_finale_takes_over_gradually():
    p = FinaleParams(window_km=30.0, full_km=15.0)
    w = blend_weight(np.array([40.0, 30.0, 22.5, 15.0, 3.0, 0.0]), p)
    assert list(w) == [0.0, 0.0, 0.5, 1.0, 1.0, 1.0]


def test_recent_rides_are_the_last_minutes_and_their_pieces():
    t = T0 + 6.0 * np.arange(300)  # 30 minutes
    km = 0.01 * np.arange(300)  # 6 km/h... any steady pace
    whole, pieces, dist, secs = recent_rides(t, km, t[-1], FinaleParams(recent_s=600.0, piece_s=120.0))
    assert secs == pytest.approx(600.0) and whole[2] == pytest.approx(600.0)
    assert whole[1] == pytest.approx(km[-1]) and dist == pytest.approx(1.0)
    assert len(pieces) == 5 and sum(x[2] for x in pieces) == pytest.approx(600.0)
    assert pieces[-1][1] == pytest.approx(km[-1])  # the last piece ends now
    assert recent_rides(t[:20], km[:20], t[19]) is None  # two minutes: too little to go by


def test_a_caught_group_finishes_with_the_group_that_caught_it():
    eta = np.array([[1000.0, 1100.0], [990.0, 1050.0], [1200.0, 1300.0]])  # head, chase, last
    out = first_to_line(eta)
    assert out[0].tolist() == [990.0, 1050.0]  # the chase arrives first: it has caught the head
    assert out[1].tolist() == [990.0, 1050.0] and out[2].tolist() == [1200.0, 1300.0]
    # a chase that cannot catch yet (out of the finale) leaves the groups ahead alone
    assert first_to_line(eta, np.array([True, False, True]))[0].tolist() == [1000.0, 1100.0]
    rising = np.array([[1.0], [2.0], [3.0]])
    assert first_to_line(rising).tolist() == rising.tolist()


def descent_profile():
    """20 km at 6 % down, then 5 km flat."""
    ele = lambda s: np.where(s < 20_000, 1300.0 - 0.06 * s, 100.0)  # noqa: E731
    return build_profile(course_with_elevation(25_000, 0.0, ele))


def test_descents_are_raced_faster_than_the_stage_model_brakes_them():
    p = descent_profile()
    stage = SpeedTables(p)
    finale = FinaleModel(p, RiderModel(), FinaleParams(descent_kph=90.0))
    t_stage = float(stage.elapsed_s(4.0, 0.0, 20.0, 20))
    t_finale = float(finale.tables.elapsed_s(4.0, 0.0, 20.0, 20))
    assert t_stage == pytest.approx(20 / 75 * 3600, rel=0.01)  # capped at 75 km/h
    assert t_finale < 0.9 * t_stage
    # the flat road after it is ridden alike by both
    assert float(finale.tables.elapsed_s(4.0, 21.0, 25.0, 20)) == pytest.approx(
        float(stage.elapsed_s(4.0, 21.0, 25.0, 20)), rel=1e-6)


def test_the_run_in_counts_only_its_flat_kilometres():
    finale = FinaleModel(descent_profile(), RiderModel(), FinaleParams(run_in_km=3.0))
    assert float(finale.flat_run_in_km(0.0)) == pytest.approx(3.0, abs=0.05)
    assert float(finale.flat_run_in_km(23.5)) == pytest.approx(1.5, abs=0.05)
    assert float(finale.flat_run_in_km(25.0)) == 0.0
    climb = build_profile(course_with_elevation(25_000, 0.0, lambda s: 100.0 + 0.05 * s))
    assert float(FinaleModel(climb, RiderModel()).flat_run_in_km(20.0)) == 0.0  # a summit finish has none


def test_a_group_in_the_finale_is_predicted_from_its_own_last_minutes():
    """A group rides 45 km/h for 15 minutes, then 55 km/h for 10 on a flat road: in the finale the last
    minutes set its pace; far from the line the 20-minute fit still does."""
    def last_row(params, finish_km):
        pred = Predictor(StageModel.build(flat_profile(int(finish_km * 1000))), params)
        ride(pred, 45.0, 0.0, finish_km, 15, size=20)
        km0 = 45.0 * 0.25
        rows = []
        for i in range(1, 101):
            t = T0 + 900 + 6 * i
            rows = pred.update([group_row(t, 1, 1, finish_km - (km0 + 55.0 * 6 * i / 3600), size=20, speed=55.0)])
        (row,) = rows
        return row, (row["eta_finish"] / 1000 - (T0 + 1500))

    own = PredictParams(finale_params=FinaleParams(bunch_run_in=False))  # not as a racing bunch (tested below)
    row, eta_s = last_row(own, 35.0)  # 14.9 km to go: all finale
    assert row["km_to_finish"] == pytest.approx(35.0 - 11.25 - 55.0 / 6, abs=0.01)
    assert eta_s == pytest.approx(row["km_to_finish"] / 55.0 * 3600, rel=0.02)
    _row, eta_old = last_row(PredictParams(finale=False), 35.0)
    assert eta_old > eta_s + 30  # the 20-minute fit still rides part of it at 45 km/h
    far, eta_far = last_row(own, 80.0)  # 60 km to go: before the finale, unchanged
    _far, eta_far_old = last_row(PredictParams(finale=False), 80.0)
    assert eta_far == eta_far_old
    assert row["checkpoints"][-1]["kind"] == "finish" and row["checkpoints"][-1]["eta"] == row["eta_finish"]
    # a steady group's own pieces barely differ: the interval is the tactics' share of the time to go
    assert row["eta_finish_high"] - row["eta_finish"] >= FinaleParams().pace_spread * eta_s * 1000 - 1
    assert row["eta_finish"] - row["eta_finish_low"] >= FinaleParams().pace_spread * eta_s * 1000 - 1


def test_the_head_of_the_race_is_not_predicted_after_a_faster_chase():
    """A lone leader at 30 km/h and a chase at 45 km/h, 12 and 14 km out: the chase reaches the line first,
    catching him, so he is predicted to finish with it."""
    finish_km = 40.0

    def run(params):
        pred = Predictor(StageModel.build(flat_profile(int(finish_km * 1000))), params)
        rows = []
        for i in range(151):  # 15 minutes
            t = T0 + 6 * i
            lead_km, chase_km = 20.5 + 30.0 * 6 * i / 3600, 15.25 + 45.0 * 6 * i / 3600
            rows = pred.update([group_row(t, 1, 1, finish_km - lead_km, size=1, speed=30.0),
                                group_row(t, 2, 2, finish_km - chase_km, size=30, gap=60.0, speed=45.0)])
        return {r["rank"]: r for r in rows}

    # the chase at its own pace (as a racing bunch it would be faster still: tested below)
    on = run(PredictParams(finale_params=FinaleParams(bunch_run_in=False)))
    off = run(PredictParams(finale=False))
    now = T0 + 900
    assert on[1]["km_to_finish"] == pytest.approx(12.0, abs=0.01)
    assert on[2]["km_to_finish"] == pytest.approx(13.5, abs=0.01)
    assert off[1]["eta_finish"] / 1000 - now == pytest.approx(12.0 / 30 * 3600, rel=0.03)  # alone: 24 min
    assert on[2]["eta_finish"] / 1000 - now == pytest.approx(13.5 / 45 * 3600, rel=0.03)  # the chase: 18 min
    assert on[1]["eta_finish"] == on[2]["eta_finish"]  # caught: he finishes with the chase
    assert on[1]["eta_finish_high"] <= on[2]["eta_finish_high"]


def test_a_braked_descent_does_not_set_the_power_for_the_flat_after_it():
    """20 km flat at 40 km/h, then 10 km down at 5 % braked to 50 km/h, 5 km flat to go: the descent's
    minutes would say the group rides at a fraction of its power; they are left out of its fit."""
    ele = lambda s: np.where(s < 20_000, 600.0, np.where(s < 30_000, 600.0 - 0.05 * (s - 20_000), 100.0))  # noqa
    profile = build_profile(course_with_elevation(35_000, 0.0, ele))

    def eta_s(finale_params):
        pred = Predictor(StageModel.build(profile), PredictParams(finale_params=finale_params))
        rows, t = [], T0
        for km, kph in ((np.arange(0.0, 20.0, 40.0 * 6 / 3600), 40.0), (np.arange(20.0, 30.0, 50.0 * 6 / 3600), 50.0)):
            for x in km.tolist():
                rows = pred.update([group_row(t, 1, 1, 35.0 - x, size=20, speed=kph)])
                t += 6
        (row,) = rows
        return row["km_to_finish"], row["eta_finish"] / 1000 - (t - 6)

    left, kept = eta_s(FinaleParams(by_precision=False))
    _left, braked = eta_s(FinaleParams(by_precision=False, descent_gradient=1.0))  # every piece sets the power
    assert left == pytest.approx(5.0, abs=0.15)
    assert kept < braked - 20  # the braked descent no longer slows the flat ahead
    assert kept < left / 30.0 * 3600  # faster than 30 km/h on the flat
    # weighted by the two predictions' spreads, the stage's (its power fitted over the descent) keeps a share
    _left, weighted = eta_s(FinaleParams())
    assert kept + 5 < weighted  # (here nearly all: the finale has 2 flat minutes to go on)


def test_the_finale_changes_the_finish_times_and_nothing_else():
    finish_km = 40.0
    rows = {}
    for on in (True, False):
        pred = Predictor(StageModel.build(flat_profile(int(finish_km * 1000))), PredictParams(finale=on))
        out = []
        for i in range(151):
            t = T0 + 6 * i
            out += pred.update([group_row(t, 1, 1, finish_km - 20.5 - 30.0 * 6 * i / 3600, size=1, speed=30.0),
                                group_row(t, 2, 2, finish_km - 15.25 - 45.0 * 6 * i / 3600, size=30, gap=60.0,
                                          speed=45.0)])
        rows[on] = out
    assert len(rows[True]) == len(rows[False])
    eta_keys = {"eta_finish", "eta_finish_low", "eta_finish_high", "checkpoints"}
    changed = 0
    for a, b in zip(rows[True], rows[False]):
        assert {k: v for k, v in a.items() if k not in eta_keys} == {k: v for k, v in b.items() if k not in eta_keys}
        changed += a["eta_finish"] != b["eta_finish"]
    assert changed > 100  # and the finish times did change


def test_the_run_in_floor_times_only_the_flat_metres_of_the_last_kilometres():
    finale = FinaleModel(descent_profile(), RiderModel(), FinaleParams(run_in_km=3.0))
    powers = np.array([[3.0, 4.0, 5.0]])
    # 3 km of flat run-in: the stage tables' time over km 22-25
    expected = finale.tables.elapsed_s(powers, 22.0, 25.0, 20)
    assert finale._flat_physics_s(powers, np.array([10.0]), np.array([20])) == pytest.approx(expected, rel=1e-3)
    half = finale.tables.elapsed_s(powers, 23.5, 25.0, 20)
    assert finale._flat_physics_s(powers, np.array([23.5]), np.array([20])) == pytest.approx(half, rel=1e-3)
    climb = build_profile(course_with_elevation(25_000, 0.0, lambda s: 100.0 + 0.05 * s))
    assert np.all(FinaleModel(climb, RiderModel())._flat_physics_s(powers, np.array([20.0]), np.array([20])) == 0)


def test_the_finale_tables_cover_its_window_as_the_whole_stage_tables_do():
    """Built only over the finale and the last minutes before it: the same times there as over the whole stage."""
    long_flat = flat_profile(120_000)
    params = FinaleParams(window_km=30.0, recent_s=600.0, descent_kph=90.0)
    finale = FinaleModel(long_flat, RiderModel(), params)
    assert finale.tables.profile.km[0] > 60.0  # a fraction of the stage's grid
    whole = SpeedTables(long_flat, RiderModel(max_kph=90.0))
    powers, km = np.array([3.0, 4.5, 6.0]), np.array([75.0, 90.0, 119.0])
    for size in (1, 5, 40):
        assert finale.tables.remaining_s(powers, km, size) == pytest.approx(whole.remaining_s(powers, km, size))
    assert finale.tables.elapsed_s(4.0, 76.0, 80.0, 20) == pytest.approx(whole.elapsed_s(4.0, 76.0, 80.0, 20))


def test_groups_in_the_finale_are_fitted_each_on_its_own_pieces():
    """All groups' powers in one pass: two groups together get what each gets alone."""
    finale = FinaleModel(descent_profile(), RiderModel())
    now = 1000.0
    t = np.arange(0.0, now + 1, 6.0)
    history = [GroupHistory(t=list(t), km=list(10.0 + 45.0 * t / 3600)),
               GroupHistory(t=list(t), km=list(9.0 + 30.0 * t / 3600))]
    state = [GroupState(row=None, history=h, power=4.0) for h in history]
    km = np.array([h.km[-1] for h in history])
    size, sigma = np.array([20, 3]), np.array([0.3, 0.3])
    base = np.array([[900.0, 1000.0, 800.0]] * 2)  # the stage's: central, late, early
    both = finale.remaining_s(state, km, size, now, base, sigma)
    for i in range(2):
        alone = finale.remaining_s([state[i]], km[i:i + 1], size[i:i + 1], now, base[i:i + 1], sigma[i:i + 1])
        assert alone[0] == pytest.approx(both[i])
    assert both[0, 0] < both[1, 0]  # the faster group, ahead, is the sooner at the line


def test_the_run_in_floor_rides_the_last_minutes_power_into_the_run_in_wind():
    """A group did 45 km/h with the wind behind it; the last 3 km turn into a headwind: the floor's speed is
    the same power into the air there (v (v + headwind)^2 kept), slower; in still air it is the recent speed."""
    still = flat_profile(25_000)
    km_now, finish = still.finish_km - 5.0, still.finish_km
    recent = np.array([45.0 / 3600.0])  # km/s
    args = (np.array([km_now - 7.0]), np.array([km_now]))
    same = FinaleModel(still, RiderModel())._speed_in_run_in_wind(recent, *args)
    assert same[0] == pytest.approx(recent[0], rel=1e-6)
    head = np.where(still.km[:still.headwind_ms.size] >= finish - 3.0, 5.0, -3.0)  # m/s, + against the riders
    windy = replace(still, headwind_ms=head)
    v = FinaleModel(windy, RiderModel())._speed_in_run_in_wind(recent, *args)[0] * 1000.0
    v_r = 12.5  # m/s
    assert v < v_r - 2.0  # 8 m/s more air: markedly slower
    assert v * (v + 5.0) ** 2 == pytest.approx(v_r * (v_r - 3.0) ** 2, rel=1e-3)
    assert np.isnan(FinaleModel(windy, RiderModel())._speed_in_run_in_wind(np.array([np.nan]), *args)[0])


def test_a_bunch_racing_on_a_flat_run_in_speeds_up_to_the_line_at_the_published_profile():
    profile = flat_profile(50_000)
    bunch = BunchRunIn(profile)
    km = np.array([30.0, 30.0, 30.0, 45.0])
    # 20 km to go at the profile's own 47 km/h, level 1: its time is the profile's, faster than holding 47 km/h
    racing_speed = 47.0 / 3600.0
    out, racing, candidate = bunch.remaining_s(km, np.array([40, 40, 10, 40]), np.array([racing_speed, 35.0 / 3600.0,
                                                                              racing_speed, racing_speed]),
                                    km - 8.0)
    assert list(racing) == [True, False, False, True]  # a bunch at 35 km/h rides tempo; 10 riders are no bunch
    assert list(candidate) == [True, True, False, True]  # but its sprint may still come
    expected = bunch.seconds(np.array([30.0]), np.array([50.0]))[0]
    assert out[0, 0] == pytest.approx(expected)
    assert 20.0 / 55.0 * 3600 < out[0, 0] < 20.0 / 50.0 * 3600  # last 20 km: a chase, a lead-out, a sprint
    assert out[0, 2] < out[0, 0] < out[0, 1]
    assert 5.0 / 60.0 * 3600 < out[3, 0] < 5.0 / 51.0 * 3600  # the last 5 km at lead-out speeds
    assert np.isnan(out[2, 0]) and out[1, 0] > out[0, 0]  # no bunch: no sprint; at 35 km/h: a sprint at its level


def test_a_bunch_run_in_is_not_a_climb():
    climb = build_profile(course_with_elevation(30_000, 90.0, lambda s: 100.0 + np.clip(s - 25_000, 0, None) * 0.07))
    assert not BunchRunIn(climb).flat(20.0)
    assert BunchRunIn(flat_profile(30_000)).flat(5.0)


def test_the_head_of_the_race_is_the_racing_bunch_that_catches_the_breakaway():
    pred = Predictor(StageModel.build(flat_profile(60_000)), PredictParams(
        every_s=0.0, finale_params=FinaleParams(bunch_run_in=True)))

    def bunch_row(t):
        # 40 s down, within a minute per 10 km to go: it races for the win
        return group_row(t, 2, 2, 60.0 - 41.0 - 48.0 * (t - T0) / 3600.0, size=40, gap=40.0, speed=48.0)

    rows = ride(pred, 40.0, 41.5, 60.0, 12, size=1, extra=[bunch_row])
    head, chase = sorted(rows, key=lambda r: r["rank"])
    assert head["eta_finish"] == chase["eta_finish"]  # the bunch is predicted to catch it: the same finish
    alone = Predictor(StageModel.build(flat_profile(60_000)), PredictParams(
        every_s=0.0, finale_params=FinaleParams(bunch_run_in=False)))
    before = sorted(ride(alone, 40.0, 41.5, 60.0, 12, size=1, extra=[bunch_row]), key=lambda r: r["rank"])[0]
    assert head["eta_finish"] < before["eta_finish"]
    assert head["eta_finish_low"] < before["eta_finish_low"] and head["eta_finish_high"] >= before["eta_finish"]


#: issue 26's round 2 candidate (off by default): a sprint only within 20 km, only while the bunch's level holds, the
#: interval spanning both
ROUND_2 = FinaleParams(bunch_trend_s=300.0, bunch_hold=0.9, bunch_both=True, bunch_max_km=20.0,
                       bunch_gap_s_per_km=1e9)


def test_a_bunch_that_eases_is_not_predicted_to_sprint_but_its_interval_keeps_the_sprint():
    profile = flat_profile(50_000)
    bunch = BunchRunIn(profile, ROUND_2)  # its level over the last 5 minutes must hold 0.9 of the 5 before
    v = 45.0 / 3600.0  # km/s
    km = np.array([38.0, 38.0, 38.0, 25.0])  # 12 km to go; 25 km: beyond the published finale's 20 km
    back = np.array([[38.0 - 600 * v, 38.0 - 300 * v],  # steady
                     [38.0 - 300 * v - 300 * 1.3 * v, 38.0 - 300 * v],  # 30 % faster before: the chase eased
                     [38.0 - 300 * v - 300 * 1.05 * v, 38.0 - 300 * v],  # 5 % faster before: within the rule
                     [25.0 - 600 * v, 25.0 - 300 * v]])
    out, racing, candidate = bunch.remaining_s(km, np.full(4, 40), np.full(4, v), km - 600 * v, back)
    assert list(racing) == [True, False, True, False]
    assert list(candidate) == [True, True, True, False]
    assert out[1, 0] == pytest.approx(out[0, 0])  # the sprint it may still ride: the same level now
    assert np.isnan(out[3]).all()
    off = BunchRunIn(profile, replace(ROUND_2, bunch_hold=1.2))  # no bunch holds 1.2 of its level
    assert not off.remaining_s(km, np.full(4, 40), np.full(4, v), km - 600 * v, back)[1].any()


def test_a_bunch_that_eased_keeps_its_own_pace_but_its_interval_reaches_the_sprint():
    def run(params, speeds):
        pred = Predictor(StageModel.build(flat_profile(60_000)), PredictParams(every_s=0.0, finale_params=params))
        km, rows = 41.0, []
        for i, speed in enumerate(speeds):  # 6 s ticks, 19 km to go at first
            rows = pred.update([group_row(T0 + 6 * i, 1, 1, 60.0 - km, size=40, speed=speed)])
            km += speed * 6 / 3600
        return rows[0]

    eased = [55.0] * 60 + [40.0] * 61  # 6 minutes of chase, then the catch and tempo
    off, on = run(replace(ROUND_2, bunch_run_in=False), eased), run(ROUND_2, eased)
    assert on["eta_finish"] == off["eta_finish"]  # no sprint predicted: its own pace
    assert on["eta_finish_low"] < off["eta_finish_low"]  # but the sprint may come: the interval reaches it
    assert on["eta_finish_high"] == off["eta_finish_high"]
    steady = [48.0] * 121  # a chase that holds: the sprint is predicted
    off, on = run(replace(ROUND_2, bunch_run_in=False), steady), run(ROUND_2, steady)
    assert run(FinaleParams(), eased)["eta_finish"] < off["eta_finish"]  # the default (no trend test) sprints
    assert on["eta_finish"] < off["eta_finish"] and on["eta_finish_high"] >= off["eta_finish"]


def test_a_bunch_minutes_behind_the_leader_rides_in_and_one_within_the_catch_races_for_the_win():
    bunch = BunchRunIn(flat_profile(50_000))
    km = np.full(3, 30.0)  # 20 km to go: a minute per 10 km is 120 s
    speed = np.full(3, 47.0 / 3600.0)
    out, racing, candidate = bunch.remaining_s(km, np.full(3, 40), speed, km - 8.0, gap_s=np.array([0.0, 110.0, 780.0]))
    assert list(candidate) == [True, True, False] and list(racing) == [True, True, False]
    assert np.isnan(out[2]).all() and out[1, 0] == pytest.approx(out[0, 0])


def test_a_bunch_whose_gap_is_not_known_is_not_raced():
    bunch = BunchRunIn(flat_profile(50_000))
    km = np.full(2, 30.0)
    racing = bunch.remaining_s(km, np.full(2, 40), np.full(2, 47.0 / 3600.0), km - 8.0, gap_s=np.array([0.0, np.nan]))[1]
    assert list(racing) == [True, False]
