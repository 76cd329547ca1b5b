"""Test doubles and helpers for users testing their own triggers.

* :class:`RecordingJobCreator` — an in-memory JobCreator that keeps every job, honours
  idempotency keys, and can be told to fail.
* :func:`advance`, :func:`settle` — move a virtual-time scheduler forward while letting
  asyncio tasks run.
* :func:`run_pipeline`, :func:`trace_pipeline`, :func:`marble_events`,
  :func:`to_marbles` — events in at virtual times, items out, settlement checked.
* :mod:`portico_rx.testing.strategies` — hypothesis strategies (``cron_expressions``,
  ``timezones``, ``event_streams``, ``job_requests``, ``payloads``); needs
  ``hypothesis`` (the ``testing`` extra), so it is imported on first use.
* The pytest plugin (fixtures ``recording_creator``, ``virtual_time``, ``job_service``)
  is registered by entry point: installing portico_rx is enough.
"""

from typing import Any

from portico_rx.testing.marbles import (
    EPOCH,
    PipelineTrace,
    marble_events,
    run_pipeline,
    to_marbles,
    trace_pipeline,
)
from portico_rx.testing.recording import RecordingJobCreator
from portico_rx.testing.virtual_time import advance, settle

__all__ = [
    "EPOCH",
    "PipelineTrace",
    "RecordingJobCreator",
    "advance",
    "marble_events",
    "run_pipeline",
    "settle",
    "strategies",
    "to_marbles",
    "trace_pipeline",
]


def __getattr__(name: str) -> Any:
    if name == "strategies":
        import importlib

        module = importlib.import_module("portico_rx.testing.strategies")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'portico_rx.testing' has no attribute {name!r}")
