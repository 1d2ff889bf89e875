"""Predictions: each window's groups (time trials: riders) forecast to the line, and crosswind warnings."""
from __future__ import annotations

from peloton.predict.model import Predictor, forecast_stage, time_trial_groups
from peloton.state.trackers.base import Window

__all__ = ["Predictions"]


class Predictions:
    """predictions, and the predictor's crosswind warnings as race_events (as the replay's); only when the engine
    is given a stage model. Road stages predict the groups the gaps tracker published."""

    def __init__(self):
        self.predictor: Predictor | None = None

    def update(self, w: Window) -> dict:
        forecast = w.forecast
        if forecast is None:
            return {}
        if self.predictor is None:
            self.predictor = Predictor(forecast)
        self.predictor.attach(forecast)
        if w.time_trial:
            m = w.m
            f = m.fixes
            rows = time_trial_groups(w.stage_id, f.t, f.bib, m.km_to_finish, m.speed_kph)
        else:
            rows = w.groups.to_rows()
        predictions, warnings = forecast_stage(rows, self.predictor)
        return {"predictions": predictions, "race_events": warnings}

    def finish(self, w: Window) -> dict:
        return {}
