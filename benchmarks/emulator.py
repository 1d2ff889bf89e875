"""The Pub/Sub emulator for a benchmark: the one PUBSUB_EMULATOR_HOST names, else one started for the run."""
from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "pubsub_emulator.sh"


@contextlib.contextmanager
def pubsub_emulator(port: int = 8087):
    """Yield the emulator's host:port; stop it afterwards only if it was started here."""
    if os.environ.get("PUBSUB_EMULATOR_HOST"):
        yield os.environ["PUBSUB_EMULATOR_HOST"]
        return
    host = subprocess.run([str(SCRIPT), "start", str(port)], check=True, capture_output=True,
                          text=True).stdout.strip()
    os.environ["PUBSUB_EMULATOR_HOST"] = host
    try:
        yield host
    finally:
        subprocess.run([str(SCRIPT), "stop"], capture_output=True)
        del os.environ["PUBSUB_EMULATOR_HOST"]
