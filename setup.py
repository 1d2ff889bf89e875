"""peloton: live race state from rider GPS trackers, on Apache Beam."""
from setuptools import setup

setup(
    name="peloton",
    version="0.1.0",
    description="Real-time dataflow pipeline for professional road race tracking",
    python_requires=">=3.10",
    packages=["peloton", "transforms", "pipelines", "schemas"],
    package_data={"schemas": ["*.avsc"], "peloton": ["report.html", "vendor/*"]},
    include_package_data=True,
    install_requires=[
        "apache-beam[gcp]>=2.60",  # gcp: Pub/Sub, BigQuery, GCS and Dataflow
        "google-cloud-pubsub>=2.20",
        "shapely>=2.0",
        "numpy>=1.24",
        "fastavro>=1.9",
        "tzdata",  # the timetable's local clock times, where the system has no zoneinfo
    ],
    # selenium drives Debian's chromium (and its chromedriver) in the page tests; no browser download
    extras_require={"test": ["pytest>=8", "hypothesis>=6.100", "selenium>=4.20"]},
    # peloton-flink-worker: the Python SDK harness a Flink TaskManager starts (--runner FlinkRunner, PROCESS)
    entry_points={"console_scripts": ["peloton=pipelines.cli:main",
                                      "peloton-flink-worker=pipelines.flink_worker:main"]},
)
