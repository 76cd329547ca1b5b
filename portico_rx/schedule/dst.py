"""The daylight-saving policy: what a wall-clock schedule does when the clock jumps.

* **Spring forward** (a local time that does not exist, e.g. 02:30 in Europe/Berlin on
  2025-03-30): ``nonexistent="shift"`` (default) runs it once at the first instant after
  the gap (03:00 local); several missing times collapse into that one run, and a schedule
  that also matches 03:00 still runs once. ``nonexistent="skip"`` does not run it that day.
* **Fall back** (a local time that happens twice, e.g. 02:30 on 2025-10-26):
  ``ambiguous="once"`` (default) runs it at its first occurrence only;
  ``ambiguous="both"`` runs it at both.
"""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict

from portico_rx.errors import InvalidScheduleError

__all__ = ["DstPolicy", "resolve_zone"]


class DstPolicy(BaseModel):
    """How a schedule treats local times that do not exist or happen twice.

    Args:
        nonexistent: ``"shift"`` (default): run once at the end of the gap; ``"skip"``.
        ambiguous: ``"once"`` (default): run at the first occurrence; ``"both"``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    nonexistent: Literal["shift", "skip"] = "shift"
    ambiguous: Literal["once", "both"] = "once"

    def __str__(self) -> str:
        return f"nonexistent={self.nonexistent},ambiguous={self.ambiguous}"


def resolve_zone(tz: str | ZoneInfo) -> ZoneInfo:
    """The ``ZoneInfo`` for an IANA name (``"Europe/Berlin"``) or a ``ZoneInfo``.

    Raises:
        InvalidScheduleError: the name is not a known IANA time zone.
    """
    if isinstance(tz, ZoneInfo):
        return tz
    if not isinstance(tz, str) or not tz:
        raise InvalidScheduleError(
            f"tz={tz!r}: give an IANA time zone name such as 'UTC' or 'Europe/Berlin'"
        )
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidScheduleError(
            f"tz={tz!r} is not a known IANA time zone: use a name such as 'UTC', "
            "'Europe/Berlin' or 'America/New_York' (install tzdata if the system has none)"
        ) from None
