"""What a DoFn builds once per worker process, not once per bundle.

The local runner calls ``setup`` on a fresh copy of each DoFn for every bundle
(it round-trips the DoFn through pickle), and a live stage makes a bundle per
pane and per timer: building a stage's course index and speed tables there
(2-3 s) was most of the live pipeline's CPU. Dataflow calls ``setup`` once per
DoFn instance; the cache costs nothing there.
"""
from __future__ import annotations

import functools
import uuid

__all__ = ["stage_model", "publisher_client", "pipeline_token", "once_per_pipeline"]


@functools.lru_cache(maxsize=8)
def stage_model(stage_json: str):
    """(Stage, Course with its spatial index, StageModel) of a stage spec."""
    from peloton.match.stage import Stage
    from peloton.predict.model import StageModel

    stage = Stage.from_json(stage_json)
    course = stage.course()
    course.tree  # the spatial index, built now
    return stage, course, StageModel.of_stage(stage, course)


@functools.lru_cache(maxsize=1)
def publisher_client():
    """One Pub/Sub publisher per process (it batches for 10 ms, then sends)."""
    from google.cloud import pubsub_v1

    return pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_messages=1000, max_latency=0.01))


def pipeline_token() -> str:
    """A key made when a transform is built: its copies on the workers share it, another pipeline's do not."""
    return uuid.uuid4().hex


_ONCE: dict = {}


def once_per_pipeline(token: str, name: str, build):
    """``build()``'s value, computed once per (token, name) in this process."""
    key = (token, name)
    if key not in _ONCE:
        _ONCE[key] = build()
    return _ONCE[key]
