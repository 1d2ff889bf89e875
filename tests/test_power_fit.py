"""A group's power: its own riding pulled towards the timetable's, by how sure each is."""
import numpy as np
import pytest

from peloton.predict.group_state import GroupHistory
from peloton.predict.model import PredictParams
from peloton.predict.power_fit import Z80, combine, rides_of

P = PredictParams()


def test_the_fit_and_the_timetable_are_weighed_by_their_precisions():
    span = P.lookback_s  # a whole lookback of history: no penalty for a short one
    alone, sigma_alone = combine(4.0, [3.8, 4.0, 4.2], None, span, P)
    assert alone == 4.0 and sigma_alone == pytest.approx(float(np.std([3.8, 4.0, 4.2])))
    # the timetable's low/middle/high say 5 W/kg give or take its spread
    table = [4.0, 5.0, 6.0]
    s_tt = 2.0 / (2 * Z80)
    only_tt = combine(None, [], table, 0.0, P)
    assert only_tt == (5.0, pytest.approx(s_tt))
    both, sigma = combine(4.0, [3.8, 4.0, 4.2], table, span, P)
    w_fit, w_tt = 1 / sigma_alone ** 2, 1 / s_tt ** 2
    assert both == pytest.approx((4.0 * w_fit + 5.0 * w_tt) / (w_fit + w_tt))
    assert 4.0 < both < 4.5 and sigma > sigma_alone  # the surer fit wins; its own variation stays
    assert combine(None, [], None, 0.0, P) == (None, np.inf)


def test_a_group_is_fitted_on_its_lookback_and_its_five_minute_pieces():
    t = np.arange(0.0, 1500.0, 6.0)
    h = GroupHistory(list(t), list(t * 0.012), [0.0] * t.size)  # 43.2 km/h for 25 minutes
    rides = rides_of(h, h.km[-1], t[-1], P, None, 100.0)
    since = t[-1] - P.lookback_s
    first = int(np.searchsorted(t, since))
    assert rides.lookback == pytest.approx((h.km[first], h.km[-1], t[-1] - t[first]))
    assert len(rides.pieces) == 4 and all(p[2] == P.segment_s for p in rides.pieces)
    assert rides.timetable is None  # no timetable: the group's own riding alone
    assert rides_of(GroupHistory([0.0, 60.0], [0.0, 0.7], [0.0, 0.0]), 0.7, 60.0, P, None, 100.0).lookback is None
