import json

import numpy as np

from peloton.ingest.feed import Reason, parse_message


def _tick(riders, ts=1783425798):
    return json.dumps({"bind": "telemetryCompetitor-2026", "data": {"TimeStamp": ts, "Riders": riders}})


def test_tick_gives_one_fix_per_rider_with_event_time():
    fixes, letters = parse_message("s", "tick", _tick([
        {"Bib": 1, "Latitude": 43.09, "Longitude": 2.62, "kph": 42.7, "kmToFinish": 154.1, "secToFirstRider": 195},
        {"Bib": 2, "Latitude": 43.08, "Longitude": 2.61}]))
    assert letters == []
    assert fixes.bib.tolist() == [1, 2]
    assert fixes.t.tolist() == [1783425798.0, 1783425798.0]
    assert fixes.sensor_kph[0] == 42.7 and np.isnan(fixes.sensor_kph[1])


def test_official_derived_fields_are_not_read():
    a, _ = parse_message("s", "tick", _tick([{"Bib": 1, "Latitude": 43.09, "Longitude": 2.62, "kph": 40,
                                               "kmToFinish": 154.1, "secToFirstRider": 195, "mAlt": 5,
                                               "Gradient": 1}]))
    b, _ = parse_message("s", "tick", _tick([{"Bib": 1, "Latitude": 43.09, "Longitude": 2.62, "kph": 40}]))
    for field in ("bib", "t", "lat", "lon", "sensor_kph"):
        assert np.array_equal(getattr(a, field), getattr(b, field))


def test_recording_wrapped_payload_is_unwrapped():
    inner = _tick([{"Bib": 3, "Latitude": 43.0, "Longitude": 2.0}])
    fixes, letters = parse_message("s", "tick", json.dumps({"dt": 0, "data": inner}))
    assert letters == [] and fixes.bib.tolist() == [3]


def test_each_kind_of_bad_row_goes_to_dead_letter_with_its_reason():
    riders = [
        {"Bib": 1, "Latitude": 41.419714, "Longitude": 2.201369},  # placeholder
        {"Bib": 2, "Latitude": 95.0, "Longitude": 2.0},  # impossible
        {"Bib": 3, "Latitude": None, "Longitude": 2.0},  # missing
        {"Latitude": 43.0, "Longitude": 2.0},  # no bib
        {"Bib": "x7", "Latitude": 43.0, "Longitude": 2.0},  # bad bib
        {"Bib": 4, "Latitude": "43.5", "Longitude": "2.5"},  # numbers as text are fine
        "not a rider",
        {"Bib": 5, "Latitude": 0, "Longitude": 0},  # null island
    ]
    fixes, letters = parse_message("s", "tick", _tick(riders))
    assert fixes.bib.tolist() == [4]
    reasons = sorted((d["bib"] or 0, d["reason"]) for d in letters)
    assert reasons == sorted([(1, Reason.PLACEHOLDER_POSITION), (2, Reason.IMPOSSIBLE_COORDINATES),
                              (3, Reason.MISSING_FIELD), (0, Reason.MISSING_FIELD),
                              (0, Reason.MISSING_FIELD), (0, Reason.MISSING_FIELD),
                              (5, Reason.IMPOSSIBLE_COORDINATES)])
    assert all(d["raw"] and d["event_time"] == 1783425798000 for d in letters)
    assert len(fixes) + len(letters) == len(riders)


def test_malformed_json_and_wrong_shape():
    _, letters = parse_message("s", "tick", '{"data": {"TimeStamp": 1, "Riders": [')
    assert [d["reason"] for d in letters] == [Reason.MALFORMED_JSON]
    assert letters[0]["raw"].startswith('{"data"')
    _, letters = parse_message("s", "tick", '{"data": {"TimeStamp": 1783425798, "Riders": 5}}')
    assert [d["reason"] for d in letters] == [Reason.BAD_SHAPE]


def test_tick_without_timestamp_rejects_its_riders():
    fixes, letters = parse_message("s", "tick", json.dumps({"data": {"Riders": [
        {"Bib": 1, "Latitude": 43.0, "Longitude": 2.0}]}}))
    assert len(fixes) == 0 and letters[0]["reason"] == Reason.MISSING_FIELD and letters[0]["bib"] == 1


def test_single_fix_message_shape():
    fixes, letters = parse_message("s", "auto", json.dumps({"bib": 7, "time": 1783425798.5, "lat": 43.0,
                                                            "lon": 2.0, "kph": 38.0}))
    assert letters == [] and fixes.t.tolist() == [1783425798.5] and fixes.sensor_kph.tolist() == [38.0]


def test_flat_csv_chunk():
    text = ("TimeStamp,Bib,Latitude,Longitude,kph,kmToFinish,secToFirstRider,mAlt,Gradient\n"
            "1783420242,2,41.419714,2.201369,0.18,12.4,,546,1\n"
            "1783425798,1,43.092368,2.620204,42.7,154.14,195,128,1.6\n"
            "1783425798,9,,2.6,42.7,154.14,195,128,1.6\n")
    fixes, letters = parse_message("s", "csv", text)
    assert fixes.bib.tolist() == [1]
    assert sorted(d["reason"] for d in letters) == [Reason.MISSING_FIELD, Reason.PLACEHOLDER_POSITION]
    assert letters[0]["raw"].count(",") == 8


def test_bibs_are_json_integers_on_the_start_list_and_the_rider_limit_counts_parsed_entries():
    riders = [{"Bib": b, "Latitude": 43.0, "Longitude": 2.0} for b in (1, True, "12", 12.0, 7, 999)]
    fixes, letters = parse_message("s", "tick", _tick(riders), start_list=[1, 7, 12])
    assert fixes.bib.tolist() == [1, 7]
    assert sorted(d["reason"] for d in letters) == [Reason.MISSING_FIELD] * 3 + [Reason.UNKNOWN_RIDER]
    assert len(parse_message("s", "tick", _tick(riders))[0]) == 3  # no start list (an old stage file): not checked
    escaped = '{"data": {"TimeStamp": 1783425798, "Riders": [%s]}}' % ",".join(
        ['{"\\u0042ib": %d, "Latitude": 43.0, "Longitude": 2.0}' % i for i in range(1, 1002)])
    fixes, letters = parse_message("s", "tick", escaped, max_riders=1000)
    assert len(fixes) == 0 and [d["reason"] for d in letters] == [Reason.TOO_MANY_RIDERS]


def test_stage_without_a_start_list_checks_no_bib():
    from peloton.match.stage import Stage

    assert Stage("s").start_list() is None
    assert Stage("s", riders=[{"bib": 3}, {"bib": 1}, {"name": "x"}]).start_list() == [1, 3]


def test_fix_times_are_checked_against_the_clock_and_the_attribute_and_dead_letters_keep_sink_dates():
    from peloton.ingest.feed import check_event_times, dead_letter

    fixes, _ = parse_message("s", "tick", _tick([{"Bib": 1, "Latitude": 43.0, "Longitude": 2.0}]))
    t = float(fixes.t[0])
    kept, letters = check_event_times(fixes, t, t - 3600, 30.0, 30.0)  # an hour ahead of the clock
    assert len(kept) == 0 and letters[0]["reason"] == Reason.FUTURE_TIME
    kept, letters = check_event_times(fixes, t + 120, t, 30.0, 30.0)  # the attribute says 2 minutes later
    assert len(kept) == 0 and letters[0]["reason"] == Reason.TIME_MISMATCH
    kept, letters = check_event_times(fixes, None, None, 30.0, 30.0)  # a replay, no attribute: nothing to check
    assert len(kept) == 1 and not letters
    assert dead_letter("s", "x", "", t=9223372036854775.0)["event_time"] is None  # beyond BigQuery's years
