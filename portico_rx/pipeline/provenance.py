"""Idempotency keys and job provenance: every format in one place.

Users' job stores already hold these keys, so each format is pinned byte for byte by
``tests/pipeline/test_provenance.py``; change one and a replica running the old code
creates a second job for the same event.

Two levels:

* an **event key** names the event at its source, the same on every replica and on
  redelivery (a fire time, a file's path + size + mtime, a message id, a stream entry);
* a **job key** scopes it to the trigger and job type, so two triggers (or two job types
  built from one event) never collide.

:class:`Provenance` writes what a job's ``metadata`` says of its origin: ``trigger``,
``source``, ``seen_at``, ``event_id``, ``lateness_s``, the delivery's attributes and the
job key (and nothing for a bare request that has no delivery, key or metadata).

**Lateness** is one measure for every source: ``seen_at`` minus the source's own time
for the event (``Delivery.occurred_at``: broker publish time, webhook timestamp, file
mtime, planned fire time), in seconds, written as ``lateness_s`` on every job whose
source tells that time. A source with no time of its own writes none (its events are
as old as when they were seen: 0 by definition); leaving the key out keeps a job's
metadata in the smallest dict CPython makes, which every store copies. The trigger's
``max_age`` compares it (see :func:`lateness`).

**Windowed keys** (:func:`window_key`) fold a time window's start into a key, so one key
makes one job per window ("once per customer per day") in every store, on every replica.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "Provenance",
    "absence_key",
    "batch_key",
    "dead_letter_key",
    "file_key",
    "http_item_key",
    "http_key",
    "job_key",
    "lateness",
    "row_key",
    "run_now_key",
    "schedule_key",
    "schedule_key_prefix",
    "source_time",
    "stream_entry_key",
    "stream_entry_time",
    "webhook_key",
    "window_key",
    "window_start",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# -- job keys ------------------------------------------------------------------------


def job_key(trigger: str, job_type: str, event_key: str) -> str:
    """The key of a job built from an event that has a key: ``{trigger}:{job_type}:{key}``."""
    return f"{trigger}:{job_type}:{event_key}"


def schedule_key_prefix(trigger: str, schedule: str) -> str:
    """The prefix of a schedule's run keys: ``{trigger}:{schedule}:``."""
    return f"{trigger}:{schedule}:"


def schedule_key(trigger: str, schedule: str, fire_time: str) -> str:
    """A schedule run's key: ``{trigger}:{schedule}:{UTC fire time}`` (see
    :func:`portico_rx.schedule.tick.key_time` for the time's form)."""
    return f"{trigger}:{schedule}:{fire_time}"


def run_now_key(at: str, token: str) -> str:
    """The event key of a run made on request (``ScheduleTrigger.run_now``):
    ``+run-now:{UTC time}:{token}``, inside the schedule's key prefix.

    A fire time's key starts with a digit, this one with ``+``, so the two never
    collide; and ``+`` sorts below every digit, so the greatest key under a schedule's
    prefix (how a restarted trigger finds its last fire time) is still a fire time.
    ``token`` (random) keeps two runs requested in one microsecond apart.
    """
    return f"+run-now:{at}:{token}"


def webhook_key(trigger: str, job_type: str, delivery_key: str) -> str:
    """A webhook request's key: ``webhook:{trigger}:{job_type}:{delivery id}``."""
    return f"webhook:{trigger}:{job_type}:{delivery_key}"


def dead_letter_key(letter_id: object) -> str:
    """The key a redriven dead letter's job gets when its request had none:
    ``dead-letter:{dead letter id}`` (so redriving it twice makes one job)."""
    return f"dead-letter:{letter_id}"


def window_start(at: datetime, window: timedelta) -> datetime:
    """The start of the ``window``-long window holding ``at``: windows are aligned to the
    Unix epoch in UTC (a day runs from 00:00 UTC; an hour from each full hour)."""
    step = window // timedelta(microseconds=1)
    offset = (at - _EPOCH) // timedelta(microseconds=1)
    return _EPOCH + timedelta(microseconds=offset - offset % step)


def window_key(key: str, at: datetime, window: timedelta) -> str:
    """``key`` scoped to the window holding ``at``: ``{key}@{window start, UTC}``, e.g.
    ``customer-7@2026-12-01T00:00:00Z`` for a one-day window."""
    return f"{key}@{window_start(at, window).strftime('%Y-%m-%dT%H:%M:%SZ')}"


# -- event keys ----------------------------------------------------------------------


def file_key(relative_path: str, size: int, mtime_ns: int, *, deleted: bool = False) -> str:
    """A file's version: ``{path}:{size}:{mtime_ns}`` (``{path}:deleted:…`` once gone)."""
    if deleted:
        return f"{relative_path}:deleted:{size}:{mtime_ns}"
    return f"{relative_path}:{size}:{mtime_ns}"


def row_key(table: str, key: object) -> str:
    """A database row: ``{schema.table}:{primary key}``."""
    return f"{table}:{key}"


def batch_key(member_keys: list[str | None]) -> str | None:
    """A batch of events: ``batch:`` + the first 32 hex digits of the SHA-256 of its
    members' keys, one per line (``None`` when a member has no key)."""
    if any(key is None for key in member_keys):
        return None
    joined = "\n".join(key for key in member_keys if key is not None)
    return "batch:" + hashlib.sha256(joined.encode()).hexdigest()[:32]


def absence_key(key: object, deadline: str) -> str:
    """An expected event that did not arrive: ``{key}:{deadline}``."""
    return f"{key}:{deadline}"


def http_key(url: str, fingerprint: str) -> str:
    """A polled HTTP resource's version: ``{url}:{fingerprint}`` (ETag, Last-Modified or
    body hash)."""
    return f"{url}:{fingerprint}"


def http_item_key(url: str, item_key: str) -> str:
    """One item of a polled HTTP list: ``{url}:item:{item key}``."""
    return f"{url}:item:{item_key}"


def stream_entry_key(stream: str, entry_id: object) -> str:
    """A stream entry (Redis Streams, NATS JetStream): ``{stream}/{entry id}``."""
    return f"{stream}/{entry_id}"


def source_time(value: object) -> datetime | None:
    """A source's own time for an event as an aware UTC datetime, for
    ``Delivery.occurred_at``: a datetime (naive ones are UTC, as brokers send them), or
    Unix seconds as a number or a string (a ``webhook-timestamp`` header), or ISO-8601
    text (a database's timestamp stored as text); ``None`` for anything else (no time,
    or one that cannot be read: the event is then as old as when it was seen)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                return source_time(datetime.fromisoformat(text))
            except ValueError:
                return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def stream_entry_time(entry_id: object) -> datetime | None:
    """When a Redis Streams entry was added: its id is ``{milliseconds}-{sequence}``
    (``None`` for an id of another form)."""
    head = str(entry_id).partition("-")[0]
    return source_time(int(head) / 1000) if head.isdigit() else None


def lateness(delivery: Any) -> float:
    """How late the trigger saw ``delivery``'s event, in seconds: ``seen_at`` minus the
    source's time (``occurred_at``); 0.0 when the source has no time of its own."""
    occurred_at = delivery.occurred_at
    if occurred_at is None:
        return 0.0
    return float((delivery.seen_at - occurred_at).total_seconds())


# -- metadata ------------------------------------------------------------------------


class Provenance:
    """Builds each job's metadata and key for one trigger.

    Args:
        trigger: the trigger's name (first part of every job key it forms).
    """

    __slots__ = ("_seen_at", "_seen_at_iso", "trigger")

    def __init__(self, trigger: str) -> None:
        self.trigger = trigger
        self._seen_at: datetime | None = None
        self._seen_at_iso = ""

    def key(self, job_type: str, request_key: str | None, delivery: Any) -> str | None:
        """The job's key: the request's own, else one scoped from the delivery's."""
        if request_key is not None:
            return request_key
        if delivery is not None and delivery.idempotency_key is not None:
            return job_key(self.trigger, job_type, delivery.idempotency_key)
        return None

    def metadata(
        self,
        job_type: str,
        request_metadata: dict[str, Any],
        request_key: str | None,
        delivery: Any,
    ) -> dict[str, Any]:
        """The job's metadata: the request's, plus where the event came from and its key.

        A bare request (no delivery, no key, no metadata of its own: a direct call such
        as the spec's ``WebhookTrigger._create_job_endpoint(request)``) has no origin to
        record and gets none (``{}``); the sink then calls ``create_job`` without
        ``metadata``.
        """
        if delivery is None:
            if request_key is None and not request_metadata:
                return {}
            meta: dict[str, Any] = dict(request_metadata) if request_metadata else {}
            meta["trigger"] = self.trigger
            meta.setdefault("source", "observable")
            if request_key is not None:
                meta["idempotency_key"] = request_key
            return meta
        seen_at = delivery.seen_at
        if seen_at is not self._seen_at:  # runs of one timer wake-up share their seen_at
            self._seen_at, self._seen_at_iso = seen_at, seen_at.isoformat()
        occurred_at = delivery.occurred_at
        # The source's own time, when it tells one; else the event is as old as when the
        # source saw it (0.0): every job delivered by a source says how late it is.
        lateness = 0.0 if occurred_at is None else (seen_at - occurred_at).total_seconds()
        if request_key is None and delivery.idempotency_key is not None:
            request_key = job_key(self.trigger, job_type, delivery.idempotency_key)
        event_id = delivery.event_id
        attributes = delivery.attributes
        if not (request_metadata or attributes) and event_id is not None and request_key:
            # the common request: one dict display, built at its size
            return {
                "trigger": self.trigger,
                "source": delivery.source,
                "seen_at": self._seen_at_iso,
                "event_id": event_id,
                "lateness_s": lateness,
                "idempotency_key": request_key,
            }
        meta = dict(request_metadata) if request_metadata else {}
        meta["trigger"] = self.trigger
        if attributes:
            meta.update(attributes)
        meta["source"] = delivery.source
        meta["seen_at"] = self._seen_at_iso
        if event_id is not None:
            meta["event_id"] = event_id
        meta["lateness_s"] = lateness
        if request_key is not None:
            meta["idempotency_key"] = request_key
        return meta

    @staticmethod
    def mark_stale(metadata: dict[str, Any]) -> None:
        """Say in a job's metadata that its event was older than ``max_age`` (a trigger
        with ``stale="create"`` creates it anyway): ``stale: true``."""
        metadata["stale"] = True
