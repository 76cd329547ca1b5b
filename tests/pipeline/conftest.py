"""A test that fails before stopping its trigger must not leave its tracker bound to a
source name for the next test (see ``_source_trackers`` in pipeline/delivery.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from portico_rx.pipeline.delivery import _source_trackers


@pytest.fixture(autouse=True)
def _no_tracker_left_bound() -> Iterator[None]:
    yield
    _source_trackers.clear()
