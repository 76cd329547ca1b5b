"""pytest plugin (registered by entry point): fixtures for testing triggers.

Fixtures:
    recording_creator: a fresh :class:`~portico_rx.testing.RecordingJobCreator`.
    virtual_time: a ``HistoricalScheduler`` starting at 2025-01-01 00:00 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from reactivex.scheduler import HistoricalScheduler

from portico_rx.testing.recording import RecordingJobCreator


@pytest.fixture
def recording_creator() -> RecordingJobCreator:
    """A RecordingJobCreator that never fails."""
    return RecordingJobCreator()


@pytest.fixture
def virtual_time() -> HistoricalScheduler:
    """A virtual-time scheduler at 2025-01-01T00:00:00Z; advance it with ``advance()``."""
    return HistoricalScheduler(initial_clock=datetime(2025, 1, 1, tzinfo=UTC))
