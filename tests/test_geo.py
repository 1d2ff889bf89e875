import numpy as np

from peloton.match.geo import LocalProjection, haversine_m


def test_haversine_one_degree_of_latitude_is_111_km():
    d = haversine_m(45.0, 6.0, 46.0, 6.0)
    assert abs(float(d) - 111_195) < 10


def test_haversine_is_zero_for_same_point_and_symmetric():
    assert float(haversine_m(43.2, 2.3, 43.2, 2.3)) == 0.0
    a = haversine_m(43.2, 2.3, 42.9, 1.6)
    b = haversine_m(42.9, 1.6, 43.2, 2.3)
    assert np.isclose(a, b)


def test_projection_round_trip_and_scale():
    p = LocalProjection(43.0, 2.0)
    lat = np.array([43.0, 43.01, 42.99])
    lon = np.array([2.0, 2.02, 1.97])
    x, y = p.forward(lat, lon)
    lat2, lon2 = p.inverse(x, y)
    assert np.allclose(lat, lat2) and np.allclose(lon, lon2)
    # 0.01 deg of latitude ~ 1112 m, matching haversine within 0.1 %
    assert abs(y[1] - float(haversine_m(43.0, 2.0, 43.01, 2.0))) < 2
