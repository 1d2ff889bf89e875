"""peloton: live race state from rider GPS trackers, on Apache Beam.

Bounds here are what a user installing peloton beside other code can live with; the versions the project is
tested with are locked in ``constraints.txt`` (``./run_local.sh`` installs exactly those, ``./run_local.sh lock``
upgrades them and runs the suite).
"""
from setuptools import find_packages, setup

setup(
    name="peloton",
    version="0.1.0",
    description="Real-time dataflow pipeline for professional road race tracking",
    python_requires=">=3.10",
    # peloton's folders follow the flow (ingest, match, state, predict, output, report; sim apart)
    packages=find_packages(include=["peloton", "peloton.*", "transforms", "pipelines", "schemas"]),
    package_data={"schemas": ["*.avsc"], "peloton.report": ["report.html", "vendor/*"]},
    include_package_data=True,
    install_requires=[
        # gcp: Pub/Sub, BigQuery, GCS and Dataflow. Bounded above while transforms/read_feed.py patches the local
        # runner's private classes: a new minor release is taken by './run_local.sh lock' after the suite passes.
        "apache-beam[gcp]>=2.60,<2.79",
        "google-cloud-pubsub>=2.20",
        "shapely>=2.0",
        "numpy>=1.24",
        "fastavro>=1.9",
        "tzdata",  # the timetable's local clock times, where the system has no zoneinfo
    ],
    # selenium drives Debian's chromium (and its chromedriver) in the page tests; no browser download.
    # pytest-xdist overlaps the tests that mostly wait; pytest-timeout ends one that hangs; import-linter checks
    # the house's import rules (pyproject.toml).
    extras_require={"test": ["pytest>=8", "hypothesis>=6.100", "selenium>=4.20", "pytest-xdist>=3.5",
                             "pytest-timeout>=2.3", "import-linter>=2.1"]},
    # peloton-flink-worker: the Python SDK harness a Flink TaskManager starts (--runner FlinkRunner, PROCESS)
    entry_points={"console_scripts": ["peloton=pipelines.cli:main",
                                      "peloton-flink-worker=pipelines.flink_worker:main"]},
)
