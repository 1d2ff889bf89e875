"""Predictions on small cases whose answer is known by hand."""
import numpy as np
import pytest

from peloton.predict.model import (PredictParams, Predictor, StageModel, catch_probability_monte_carlo,
                             catch_probability_rule, forecast_race, timetable, time_trial_groups)
from peloton.match.profile import build_profile
from tests.helpers import course_with_elevation, weather

T0 = 1_783_422_600.0  # 2026-07-07 11:10 UTC


def flat_profile(length_m=50_000, checkpoints=()):
    return build_profile(course_with_elevation(length_m, 90.0, lambda s: np.full(s.size, 100.0)), list(checkpoints))


def group_row(t, gid, rank, km_to_finish, size=1, gap=0.0, bibs=None, speed=40.0):
    return {"stage_id": "t", "event_time": int(round(t * 1000)), "group_id": gid, "rank": rank, "label": "",
            "size": size, "bibs": bibs or list(range(gid * 100, gid * 100 + size)), "km_to_finish_head": km_to_finish,
            "gap_to_leader_s": gap, "speed_kph": speed}


def test_timetable_reads_local_clock_times():
    checkpoints = [{"km": 0.0, "schedule": ["13:10:00", "13:10:00", "13:10:00"]},
                   {"km": 0.0, "schedule": ["13:25:00", "13:25:00", "13:25:00"]},  # the real start after the neutral
                   {"km": 40.0, "schedule": ["14:20:00", "14:25:00", "14:30:00"]},
                   {"km": 41.0, "schedule": [None, None, None]}]
    tt = timetable(checkpoints, "2026-07-07", "Europe/Paris")
    assert tt.shape == (2, 4)
    assert tt[0, 0] == 0.0 and tt[0, 2] == T0 + 15 * 60  # 13:25 in Paris in July is 11:25 UTC
    assert list(tt[1, 1:] - tt[0, 1:]) == [55 * 60, 60 * 60, 65 * 60]
    assert timetable([], "2026-07-07") is None


def test_a_group_at_steady_speed_is_predicted_to_arrive_at_that_speed():
    p = flat_profile(50_000, [{"km": 30.0, "place": "Sprint", "types": ["sprint"]}])
    pred = Predictor(StageModel.build(p))
    speed_kph = 42.0
    rows = []
    for i in range(0, 301):  # 30 minutes of ticks every 6 s, riding 42 km/h from km 5
        t = T0 + 6 * i
        km = 5.0 + speed_kph * 6 * i / 3600
        rows = pred.update([group_row(t, 1, 1, 50.0 - km, size=3)])
    (row,) = rows
    km_to_go = row["km_to_finish"]
    assert row["eta_finish"] / 1000 - (T0 + 1800) == pytest.approx(km_to_go / speed_kph * 3600, rel=0.01)
    assert row["eta_finish_low"] < row["eta_finish"] < row["eta_finish_high"]
    sprint, finish = row["checkpoints"]
    assert sprint["kind"] == "sprint" and finish["kind"] == "finish" and finish["eta"] == row["eta_finish"]
    assert sprint["eta"] / 1000 - (T0 + 1800) == pytest.approx((km_to_go - 20.0) / speed_kph * 3600, rel=0.01)
    assert row["catch_probability"] is None  # nobody behind


def test_catch_probability_follows_the_gap_and_the_distance_left():
    p = flat_profile(100_000)

    def probability(gap_s, km_done_at_end, kph=42.0, minutes=20):
        """Both groups at the same steady speed, the bunch ``gap_s`` behind the trio, for ``minutes``."""
        pred = Predictor(StageModel.build(p))
        for i in range(0, minutes * 10 + 1):
            t = T0 + 6 * i
            km_break = km_done_at_end - kph * (minutes * 60 - 6 * i) / 3600
            km_chase = km_break - gap_s * kph / 3600
            rows = pred.update([group_row(t, 1, 1, 100.0 - km_break, size=3, gap=0.0, speed=kph),
                                group_row(t, 2, 2, 100.0 - km_chase, size=120, gap=gap_s, speed=kph)])
        return rows[0]["catch_probability"], rows[1]["catch_probability"]

    close_late, last = probability(gap_s=15.0, km_done_at_end=60.0)
    far_early, _ = probability(gap_s=600.0, km_done_at_end=95.0)
    assert last is None
    assert close_late > 0.7  # 15 s with 40 km to go: a bunch catches a trio
    assert far_early < 0.1  # 10 minutes with 5 km to go: it never does


def test_rule_of_thumb_and_monte_carlo_baselines():
    assert list(catch_probability_rule([60.0, 300.0], [20.0, 20.0])) == [1.0, 0.0]  # a minute per 10 km
    same = catch_probability_monte_carlo(100.0, 105.0, 40.0, 40.0, sd_kph=0.5)
    faster = catch_probability_monte_carlo(100.0, 105.0, 40.0, 50.0, sd_kph=0.5)
    assert same < 0.05 and faster > 0.95


def test_a_big_group_is_warned_of_a_crosswind_ahead_once():
    # riding north with a strong wind from the east from km 0: the whole course is exposed; start the
    # race 12 km before a second, windier stretch by putting the exposed road after km 20
    def ele(s):
        return np.full(s.size, 100.0)
    course = course_with_elevation(40_000, 0.0, ele)
    p = build_profile(course, [weather(1, "E", km=0.0), weather(6, "E", km=40.0)])
    assert len(p.crosswinds) == 1 and p.crosswinds[0][0] == pytest.approx(20.0, abs=0.1)
    pred = Predictor(StageModel.build(p))
    for i in range(200):
        km = 5.0 + 0.05 * i  # from km 5 to km 15
        pred.update([group_row(T0 + 6 * i, 1, 1, 40.0 - km, size=60)])
    (event,) = pred.events
    assert event["event_type"] == "crosswind_ahead" and event["group_ids"] == [1]
    assert event["km_to_finish"] == pytest.approx(30.0, abs=0.06)  # 10 km before the stretch
    small = Predictor(StageModel.build(p))
    for i in range(200):
        small.update([group_row(T0 + 6 * i, 1, 1, 35.0 - 0.05 * i, size=3)])
    assert small.events == []  # three riders do not form echelons


def test_time_trial_riders_are_predicted_from_the_rides_before_them():
    p = flat_profile(20_000)
    t_fast = np.arange(0.0, 20_000 / (45 / 3.6) + 5, 5.0)  # a rider at 45 km/h, from the ramp to the line
    km_fast = np.minimum(t_fast * 45 / 3600, 20.0)
    t_slow = 300.0 + np.arange(0.0, 900.0, 5.0)  # a rider starting 5 min later at 40 km/h, seen for 15 min
    km_slow = (t_slow - 300.0) * 40 / 3600
    t = np.r_[t_fast, t_slow] + T0
    bib = np.r_[np.full(t_fast.size, 1), np.full(t_slow.size, 2)]
    ktf = 20.0 - np.r_[km_fast, km_slow]
    forecast = forecast_race("t", [], StageModel.build(p, time_trial=True), riders=(t, bib, ktf, np.full(t.size, 40.0)))
    last = [r for r in forecast.predictions if r["group_id"] == 2][-1]
    assert last["catch_probability"] is None
    now = last["event_time"] / 1000
    truth = T0 + 300.0 + 20.0 / 40 * 3600
    assert last["eta_finish"] / 1000 == pytest.approx(truth, abs=3.0)
    assert now < truth
    groups = time_trial_groups("t", t, bib, ktf, np.full(t.size, 40.0))
    assert {g["size"] for g in groups} == {1} and {g["group_id"] for g in groups} == {1, 2}


def test_a_predictor_pickled_between_ticks_without_its_stage_model_goes_on_the_same():
    """The live engine keeps the predictor in state: its memory (histories, the time trial's finished rides,
    the warnings given) pickles, the stage model is attached again."""
    import pickle

    model = StageModel.build(flat_profile(20_000), time_trial=True)
    t = np.arange(0.0, 2400.0, 6.0)
    rider_km = {1: np.minimum(t * 45 / 3600, 20.0), 2: np.clip((t - 300.0) * 40 / 3600, 0.0, None)}
    ticks = [[r for b, km in rider_km.items() if 0.0 <= km[i] < 19.99 and t[i] >= (300.0 if b == 2 else 0.0)
              for r in time_trial_groups("t", [T0 + t[i]], [b], [20.0 - km[i]], [40.0])] for i in range(t.size)]
    kept, pickled = Predictor(model), Predictor(model)
    rides_seen = []
    for i, rows in enumerate(ticks):
        expected, got = kept.update(rows), pickled.update(rows)
        assert got == expected
        if i % 20 == 0:
            blob = pickle.dumps(pickled)
            assert len(blob) < 200_000 and b"SpeedTables" not in blob
            pickled = pickle.loads(blob).attach(model)
        rides_seen.append(len(pickled.finished_rides.rides))
    # the first rider's ride was learnt while the second rode, and survived the picklings; then the second's
    assert rides_seen[int(1800 / 6)] == 1 and rides_seen[-1] == 2


def test_predictions_ride_on_a_real_stage_profile(stage4):
    """Stage 4's course and timetable: a bunch at 20 km to go predicted at a plausible time."""
    profile = build_profile(stage4.course(), stage4.checkpoints)
    tt = timetable(stage4.checkpoints, stage4.date, stage4.timezone)
    pred = Predictor(StageModel.build(profile, tt), PredictParams())
    rows = pred.update([group_row(T0, 1, 1, 20.0, size=100)])
    minutes = (rows[0]["eta_finish"] / 1000 - T0) / 60
    assert 20 < minutes < 40  # 20 km in a finale: 30-60 km/h
    assert [c["kind"] for c in rows[0]["checkpoints"]] == ["finish"]
    early = pred.update([group_row(T0 + 6, 1, 1, 150.0, size=100)])
    kinds = [c["kind"] for c in early[0]["checkpoints"]]
    assert kinds.count("summit") == 4 and kinds.count("sprint") == 1 and kinds[-1] == "finish"
