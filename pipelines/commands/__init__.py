"""One module per command of ``peloton``: each adds its parser (``add``) and runs it (``run``), in the order of
``peloton --help``. ``pipelines/cli.py`` gathers them and turns every operator error into one line."""
from pipelines.commands import (bridge, evaluate, live, publish, pubsub, racecenter, record, replay, report, serve,
                                simulate, stage, tour)

__all__ = ["COMMANDS"]

COMMANDS = (replay, tour, live, evaluate, simulate, pubsub, publish, report, serve, stage, racecenter, bridge, record)
