"""Validation of operator arguments: durations and counts must be positive."""

from __future__ import annotations

import math
from datetime import timedelta

from portico_rx.errors import ConfigurationError

__all__ = ["positive_count", "positive_duration"]


def positive_duration(name: str, value: float | timedelta) -> timedelta:
    """``value`` (seconds or a ``timedelta``) as a positive ``timedelta``.

    Raises:
        ConfigurationError: naming ``name`` when ``value`` is not a positive, finite
            number of seconds.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigurationError(
            f"{name}={value!r}: use a positive number of seconds or a timedelta"
        )
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError(
            f"{name}={value!r}: use a positive number of seconds (e.g. {name}=5.0)"
        )
    window = timedelta(seconds=seconds)
    if window <= timedelta(0):
        raise ConfigurationError(f"{name}={value!r}: use at least one microsecond")
    return window


def positive_count(name: str, value: int) -> int:
    """``value`` as a positive ``int``.

    Raises:
        ConfigurationError: naming ``name`` when ``value`` is not an integer of 1 or more.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name}={value!r}: use an integer of 1 or more")
    return value
