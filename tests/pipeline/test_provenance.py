"""Every idempotency-key format, pinned byte for byte: stores already hold these keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import reactivex

import portico_rx as prx
from portico_rx.pipeline.delivery import Delivery
from portico_rx.pipeline.provenance import (
    Provenance,
    absence_key,
    batch_key,
    file_key,
    http_item_key,
    http_key,
    job_key,
    lateness,
    row_key,
    schedule_key,
    schedule_key_prefix,
    source_time,
    stream_entry_key,
    webhook_key,
    window_key,
    window_start,
)
from portico_rx.schedule.tick import key_time
from portico_rx.testing import RecordingJobCreator

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_job_key_formats() -> None:
    assert job_key("orders", "order.ship", "msg-1") == "orders:order.ship:msg-1"
    assert schedule_key_prefix("schedules", "report.daily") == "schedules:report.daily:"
    assert (
        schedule_key("schedules", "report.daily", key_time(1_796_115_600_000_000))
        == "schedules:report.daily:2026-12-01T09:00:00Z"
    )
    assert key_time(1_796_115_600_500_000) == "2026-12-01T09:00:00.500000Z"
    assert webhook_key("webhook", "email.send", "evt_1") == "webhook:webhook:email.send:evt_1"


def test_event_key_formats() -> None:
    assert file_key("2026/12/a.csv", 10, 123) == "2026/12/a.csv:10:123"
    assert file_key("a.csv", 10, 123, deleted=True) == "a.csv:deleted:10:123"
    assert row_key("public.items", 42) == "public.items:42"
    assert stream_entry_key("orders", "1-0") == "orders/1-0"
    assert (
        batch_key(["a", "b"]) == "batch:" + __import__("hashlib").sha256(b"a\nb").hexdigest()[:32]
    )
    assert batch_key(["a", None]) is None
    assert absence_key("sensor-1", "2026-12-01T09:00:00+00:00") == (
        "sensor-1:2026-12-01T09:00:00+00:00"
    )
    assert http_key("https://x.test/s", 'W/"e1"') == 'https://x.test/s:W/"e1"'
    assert http_item_key("https://x.test/l", "42") == "https://x.test/l:item:42"
    assert stream_entry_key("orders", None) == "orders/None"


def test_metadata_names_the_trigger_source_event_and_key() -> None:
    delivery = Delivery(
        source="rabbitmq:orders",
        seen_at=AT,
        event_id="m1",
        idempotency_key="m1",
        attributes={"routing_key": "o"},
    )
    meta = Provenance("orders").metadata("order.ship", {"x": 1}, None, delivery)
    assert meta == {
        "x": 1,
        "routing_key": "o",
        "trigger": "orders",
        "source": "rabbitmq:orders",
        "seen_at": "2026-12-01T09:00:00+00:00",
        "event_id": "m1",
        "lateness_s": 0.0,  # no time of its own: as old as when the source saw it
        "idempotency_key": "orders:order.ship:m1",
    }
    common = Provenance("orders").metadata(
        "order.ship", {}, None, Delivery(source="s", seen_at=AT, event_id="e", idempotency_key="e")
    )
    assert common == {
        "trigger": "orders",
        "source": "s",
        "seen_at": "2026-12-01T09:00:00+00:00",
        "event_id": "e",
        "lateness_s": 0.0,
        "idempotency_key": "orders:order.ship:e",
    }
    timed = Delivery(
        source="rabbitmq:orders",
        seen_at=AT,
        event_id="m2",
        occurred_at=AT - timedelta(seconds=90),
    )
    late = Provenance("orders").metadata("order.ship", {}, None, timed)
    assert late["lateness_s"] == 90.0 and lateness(timed) == 90.0
    own = Provenance("orders").metadata("t", {}, "mine", None)
    assert own == {"trigger": "orders", "source": "observable", "idempotency_key": "mine"}


async def test_a_trigger_stores_the_scoped_key_of_its_delivery() -> None:
    creator = RecordingJobCreator()
    subject: reactivex.subject.Subject[dict[str, int]] = reactivex.subject.Subject()
    trigger = prx.PipelineTrigger(
        subject.pipe(prx.to_job("order.ship")), job_creator=creator, name="orders"
    )
    await trigger.start()
    prx.deliver(subject, {"id": 1}, Delivery(source="test", seen_at=AT, idempotency_key="m-7"))
    await trigger.stop()
    assert [job.metadata["idempotency_key"] for job in creator.jobs] == ["orders:order.ship:m-7"]


def test_windowed_keys_are_pinned_and_aligned_to_utc() -> None:
    day, hour = timedelta(days=1), timedelta(hours=1)
    assert window_key("digest:c7", AT, day) == "digest:c7@2026-12-01T00:00:00Z"
    late = datetime(2026, 12, 1, 23, 59, 59, 999999, tzinfo=UTC)
    assert window_key("k", late, day) == "k@2026-12-01T00:00:00Z"
    assert window_key("k", late + timedelta(microseconds=1), day) == "k@2026-12-02T00:00:00Z"
    assert window_key("k", late, hour) == "k@2026-12-01T23:00:00Z"
    assert window_key("k", AT + timedelta(minutes=44), timedelta(minutes=15)) == (
        "k@2026-12-01T09:30:00Z"
    )
    assert window_start(datetime(1969, 12, 31, 12, tzinfo=UTC), day) == datetime(
        1969, 12, 31, tzinfo=UTC
    )


def test_source_times_are_read_as_utc_or_not_at_all() -> None:
    assert source_time(datetime(2026, 12, 1, 9)) == AT  # a broker's naive UTC timestamp
    assert source_time(AT.timestamp()) == AT
    assert source_time(f" {int(AT.timestamp())} ") == AT  # a webhook-timestamp header
    for unreadable in (None, "soon", True, float("inf"), 1e20, object()):
        assert source_time(unreadable) is None
