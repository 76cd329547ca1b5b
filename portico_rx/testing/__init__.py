"""Test doubles and helpers for users testing their own triggers.

* :class:`RecordingJobCreator` — an in-memory JobCreator that keeps every job, honours
  idempotency keys, and can be told to fail.
* :func:`advance` — move a virtual-time scheduler forward while letting asyncio tasks run.
"""

from portico_rx.testing.recording import RecordingJobCreator
from portico_rx.testing.virtual_time import advance, settle

__all__ = ["RecordingJobCreator", "advance", "settle"]
