"""The force balance and the speed tables, on cases whose answer is known by hand."""
import numpy as np
import pytest

from peloton.predict.physics import (G, POWER_GRID, RiderModel, SpeedTables, drag_n, gravity_and_rolling_n, resistance_n,
                             speed_for_power)
from tests.test_predict import flat_profile


def test_the_force_balance_is_gravity_rolling_and_drag_with_only_the_drag_sheltered():
    mass, slope, crr, rho, cda = 76.0, np.arctan(0.06), 0.004, 1.2, 0.3
    gravity = mass * G * np.sin(slope)
    rolling = mass * G * crr * np.cos(slope)
    assert gravity_and_rolling_n(mass, slope, crr) == pytest.approx(gravity + rolling, rel=1e-12)
    # 10 m/s into a 2 m/s headwind is 12 m/s of air; a tailwind faster than the rider pushes him
    assert drag_n(rho, cda, 12.0) == pytest.approx(0.5 * rho * cda * 144.0, rel=1e-12)
    assert drag_n(rho, cda, -3.0) == pytest.approx(-0.5 * rho * cda * 9.0, rel=1e-12)
    alone = resistance_n(mass, slope, crr, rho, cda, 12.0)
    sheltered = resistance_n(mass, slope, crr, rho, cda, 12.0, shelter=0.5)
    assert alone - sheltered == pytest.approx(0.5 * drag_n(rho, cda, 12.0), rel=1e-12)
    # arrays broadcast: one rider per row, as the simulator asks
    many = resistance_n(np.array([70.0, 80.0]), np.zeros(2), crr, rho, cda, np.array([10.0, 10.0]))
    assert many.shape == (2,) and many[1] - many[0] == pytest.approx(10.0 * G * crr, rel=1e-12)


def test_steady_speed_balances_the_forces():
    model = RiderModel()
    for wkg, grade, wind in ((4.0, 0.0, 0.0), (5.5, 0.08, 0.0), (3.0, 0.0, 3.0), (4.0, -0.02, -2.0)):
        v = float(speed_for_power(wkg, grade, wind, 1.2, model))
        theta = np.arctan(grade)
        air = v + wind
        needed = v * (model.mass * G * (np.sin(theta) + model.crr * np.cos(theta))
                      + 0.5 * 1.2 * model.cda_m2 * air * abs(air))
        assert needed == pytest.approx(wkg * model.rider_kg * model.drivetrain, rel=1e-4)
    # steeper is slower, a group is faster than a rider alone, descents are capped
    assert speed_for_power(5.0, 0.08, 0, 1.2) < speed_for_power(5.0, 0.0, 0, 1.2) < \
        speed_for_power(5.0, 0.0, 0, 1.2, drag=0.5)
    assert float(speed_for_power(4.0, -0.10, 0, 1.2)) * 3.6 == pytest.approx(RiderModel().max_kph, abs=0.01)


def test_time_to_finish_on_a_flat_course_is_distance_over_speed():
    p = flat_profile()
    tables = SpeedTables(p)
    rho = float(p.rho()[0])
    v = float(speed_for_power(4.0, 0.0, 0.0, rho))
    assert float(tables.remaining_s(4.0, 10.0, 1)) == pytest.approx(40_000 / v, rel=1e-3)
    assert float(tables.remaining_s(4.0, 50.0, 1)) == 0.0
    # the power that rides 10 km in that time is the power back
    assert tables.power_for(10.0, 20.0, 10_000 / v, 1) == pytest.approx(4.0, abs=0.01)
    assert tables.power_for(10.0, 20.0, 1e9, 1) == POWER_GRID[0]  # clipped, never extrapolated
