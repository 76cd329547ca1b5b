"""Test doubles and helpers for users testing their own triggers.

* :class:`RecordingJobCreator` — an in-memory JobCreator that keeps every job, honours
  idempotency keys, and can be told to fail.
* :func:`advance`, :func:`settle` — move a virtual-time scheduler forward while letting
  asyncio tasks run.
* :func:`run_pipeline`, :func:`trace_pipeline`, :func:`marble_events`,
  :func:`to_marbles` — events in at virtual times, items out, settlement checked.
* :mod:`portico_rx.testing.strategies` — hypothesis strategies (``cron_expressions``,
  ``timezones``, ``event_streams``, ``job_requests``, ``jobs``, ``payloads`` …), also
  importable from here (``from portico_rx.testing import cron_expressions``); they need
  ``hypothesis`` (the ``testing`` extra), so the module is imported on first use.
  ``st.from_type(JobRequest)`` (``Job``, ``TriggerHealth``) uses them too, through
  hypothesis' entry point.
* The pytest plugin (fixtures ``recording_creator``, ``virtual_time``, ``job_service``)
  is registered by entry point: installing portico_rx is enough.
"""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from portico_rx.testing.strategies import (
        cron_expressions,
        event_streams,
        job_requests,
        job_types,
        jobs,
        payloads,
        queue_names,
        timezones,
        trigger_healths,
    )

_STRATEGIES = frozenset(
    {
        "cron_expressions",
        "event_streams",
        "job_requests",
        "job_types",
        "jobs",
        "payloads",
        "queue_names",
        "timezones",
        "trigger_healths",
    }
)

__all__ = [
    "EPOCH",
    "PipelineTrace",
    "RecordingJobCreator",
    "advance",
    "cron_expressions",
    "event_streams",
    "job_requests",
    "job_types",
    "jobs",
    "marble_events",
    "payloads",
    "queue_names",
    "run_pipeline",
    "settle",
    "strategies",
    "timezones",
    "to_marbles",
    "trace_pipeline",
    "trigger_healths",
]


def __getattr__(name: str) -> Any:
    if name == "strategies" or name in _STRATEGIES:
        import importlib

        module = importlib.import_module("portico_rx.testing.strategies")
        globals()["strategies"] = module
        return module if name == "strategies" else getattr(module, name)
    raise AttributeError(f"module 'portico_rx.testing' has no attribute {name!r}")
