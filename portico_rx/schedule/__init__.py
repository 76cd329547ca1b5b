"""The schedule engine: cron parsing, fire times, DST and misfire policies, one timer.

Public entry points are the sources (``portico_rx.sources._cron``/``interval``/``at``) and
``portico_rx.adapters.job_trigger.schedule_trigger.ScheduleTrigger``; this package holds
the parts they share.
"""

from portico_rx.schedule.backfill import BackfillReport, BackfillRun
from portico_rx.schedule.calendar import Calendar, Dates, Holidays
from portico_rx.schedule.cron_expression import CronExpression, parse_cron
from portico_rx.schedule.dst import DstPolicy
from portico_rx.schedule.misfire import DEFAULT_GRACE_TIME, MisfirePolicy
from portico_rx.schedule.tick import Tick

__all__ = [
    "DEFAULT_GRACE_TIME",
    "BackfillReport",
    "BackfillRun",
    "Calendar",
    "CronExpression",
    "Dates",
    "DstPolicy",
    "Holidays",
    "MisfirePolicy",
    "Tick",
    "parse_cron",
]
