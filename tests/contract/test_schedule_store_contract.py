"""The ScheduleStore contract, on every job queue in ``JOB_QUEUE_FACTORIES`` (each offers
the port): save, pause, remove, list, and the revisions replicas poll by."""

from __future__ import annotations

from typing import Any

import pytest

from portico_rx.errors import ConfigurationError
from portico_rx.ports.schedule_store import ScheduleStore

HOURLY: dict[str, Any] = {"cron": "0 * * * *", "job_type": "report", "payload": {"n": 1.5}}
DAILY: dict[str, Any] = {"cron": "0 9 * * *", "job_type": "report", "payload": {"ü": [1, None]}}


async def test_saved_schedules_are_listed_by_trigger_and_name(
    schedule_store: ScheduleStore,
) -> None:
    store = schedule_store
    assert await store.list_schedules("schedules-t") == []
    second = await store.save_schedule("schedules-t", "b", DAILY)
    first = await store.save_schedule("schedules-t", "a", HOURLY)
    other = await store.save_schedule("schedules-other", "a", DAILY, paused=True)
    assert first.revision > second.revision
    assert (first.trigger, first.name, first.config, first.paused, first.removed) == (
        "schedules-t",
        "a",
        HOURLY,
        False,
        False,
    )
    assert first.updated_at.tzinfo is not None
    listed = await store.list_schedules("schedules-t")
    assert [(s.name, s.config) for s in listed] == [("a", HOURLY), ("b", DAILY)]
    everything = await store.list_schedules()
    assert [(s.trigger, s.name, s.paused) for s in everything] == [
        ("schedules-other", "a", True),
        ("schedules-t", "a", False),
        ("schedules-t", "b", False),
    ]
    assert other.paused


async def test_every_write_raises_the_revision_and_since_lists_changes(
    schedule_store: ScheduleStore,
) -> None:
    store = schedule_store
    added = await store.save_schedule("schedules-t", "a", HOURLY)
    seen = added.revision
    assert await store.list_schedules("schedules-t", since=seen) == []
    changed = await store.save_schedule("schedules-t", "a", DAILY)
    paused = await store.set_schedule_paused("schedules-t", "a", True)
    assert paused is not None and paused.paused and paused.config == DAILY
    assert seen < changed.revision < paused.revision
    changes = await store.list_schedules("schedules-t", since=seen)
    assert [(c.revision, c.paused) for c in changes] == [(paused.revision, True)]
    again = await store.save_schedule("schedules-t", "a", HOURLY)  # paused=None keeps it
    assert again.paused and again.config == HOURLY
    resumed = await store.set_schedule_paused("schedules-t", "a", False)
    assert resumed is not None and not resumed.paused


async def test_save_schedules_writes_each_as_save_schedule_would(
    schedule_store: ScheduleStore,
) -> None:
    store = schedule_store
    before = await store.save_schedule("schedules-t", "kept", HOURLY, paused=True)
    gone = await store.save_schedule("schedules-t", "back", HOURLY, paused=True)
    await store.delete_schedule("schedules-t", "back")
    written = await store.save_schedules(
        "schedules-t",
        [
            ("kept", DAILY, None),  # paused=None keeps the stored flag
            ("back", DAILY, None),  # a removed one comes back, not paused
            ("new", HOURLY, True),
            ("new", DAILY, None),  # the same name again: the later write wins, flag kept
        ],
    )
    assert [(w.name, w.config, w.paused) for w in written] == [
        ("kept", DAILY, True),
        ("back", DAILY, False),
        ("new", HOURLY, True),
        ("new", DAILY, True),
    ]
    assert len({w.revision for w in written}) == 4  # a revision per write
    assert min(w.revision for w in written) > max(before.revision, gone.revision)
    listed = await store.list_schedules("schedules-t")
    assert [(s.name, s.config, s.paused, s.removed) for s in listed] == [
        ("back", DAILY, False, False),
        ("kept", DAILY, True, False),
        ("new", DAILY, True, False),
    ]
    assert {s.name: s.revision for s in listed}["new"] == max(w.revision for w in written)
    assert await store.save_schedules("schedules-t", []) == []
    with pytest.raises(ConfigurationError, match="give"):
        await store.save_schedules("schedules-t", [("a:b", HOURLY, None)])


async def test_a_removed_schedule_is_a_tombstone_seen_by_since_and_can_come_back(
    schedule_store: ScheduleStore,
) -> None:
    store = schedule_store
    added = await store.save_schedule("schedules-t", "a", HOURLY, paused=True)
    assert await store.delete_schedule("schedules-t", "a") is True
    assert await store.delete_schedule("schedules-t", "a") is False
    assert await store.delete_schedule("schedules-t", "never") is False
    assert await store.set_schedule_paused("schedules-t", "a", False) is None
    assert await store.set_schedule_paused("schedules-t", "never", True) is None
    assert await store.list_schedules("schedules-t") == []
    [tombstone] = await store.list_schedules("schedules-t", since=added.revision)
    assert tombstone.removed and tombstone.revision > added.revision
    back = await store.save_schedule("schedules-t", "a", DAILY)
    assert not back.removed and not back.paused  # a new schedule: not paused
    assert [s.config for s in await store.list_schedules("schedules-t")] == [DAILY]


@pytest.mark.parametrize(
    ("trigger", "name"), [("", "a"), ("schedules-t", ""), ("schedules-t", "a:b"), (3, "a")]
)
async def test_bad_names_are_refused(
    schedule_store: ScheduleStore, trigger: Any, name: Any
) -> None:
    store = schedule_store
    with pytest.raises(ConfigurationError, match="give"):
        await store.save_schedule(trigger, name, HOURLY)
