"""The pytest plugin's fixtures, under their former import path.

The plugin itself is the top-level module ``_portico_rx_plugins.pytest_fixtures`` (entry point
``pytest11: portico_rx``), outside this package so that loading it imports nothing of
portico_rx. This module re-exports its fixtures for projects that list
``pytest_plugins = ["portico_rx.testing.pytest_plugin"]`` and for installs whose entry
point still names this module.
"""

from _portico_rx_plugins.pytest_fixtures import (
    JOB_QUEUES,
    job_service,
    make_job_queue,
    recording_creator,
    virtual_time,
)

__all__ = ["JOB_QUEUES", "job_service", "make_job_queue", "recording_creator", "virtual_time"]
