"""In-memory JobQueue: for tests, notebooks and benchmarks. Lost when the process ends."""

from __future__ import annotations

import asyncio
import bisect
import builtins
import contextlib
import dataclasses
import heapq
import itertools
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from portico_rx.adapters.job_queue.base import (
    DUE_STATUSES,
    KEY_CEILING,
    cancel_refused,
    check_list_args,
    check_prefixes,
    check_queue_names,
)
from portico_rx.errors import JobNotFoundError
from portico_rx.models import PRIORITY_MAX, Job, JobStatus, fields_of, trusted, utcnow
from portico_rx.ports.dead_letter_store import (
    DeadLetterRecord,
    DeadLetterStore,
    check_dead_letter_query,
    check_resolution,
)
from portico_rx.ports.job_queue import JobQueue
from portico_rx.ports.schedule_store import ScheduleStore, StoredSchedule, check_schedule_id

__all__ = ["MemoryJobQueue"]

# A stored job is a row: a tuple of its scalar fields in Job's order (the id as its
# 128-bit int, the status as its string), with ``None`` where its JSON values go; those
# (payload, metadata, result) are kept in one dict per field, keyed by the id. Python's
# cyclic garbage collector stops tracking a tuple at its first pass once none of its items
# can hold references (CPython keeps a tuple that holds a dict tracked for as long as it
# lives), and never tracks a dict of scalars: a stored job whose payload and metadata are
# flat costs the collector nothing, where a row holding its dicts would be one more object
# for every full collection to traverse, and one more towards triggering the next (and
# as a pydantic object, five: the model, its __dict__, its fields set, its UUID, its heap
# entry). A heap entry is one int (below), not a tuple: nothing the collector counts.
# Jobs are built from rows when read.
Row = tuple[Any, ...]
_FIELDS = tuple(Job.model_fields)
(
    ID,
    JOB_TYPE,
    QUEUE_NAME,
    PAYLOAD,
    PRIORITY,
    METADATA,
    STATUS,
    ATTEMPTS,
    MAX_RETRIES,
    CREATED_AT,
    SCHEDULED_AT,
    STARTED_AT,
    COMPLETED_AT,
    IDEMPOTENCY_KEY,
    RESULT,
    ERROR,
) = range(len(_FIELDS))
_DUE = frozenset(status.value for status in DUE_STATUSES)
_ID_BITS = 128
_SEQ_BITS = 64
_ID_MASK = (1 << _ID_BITS) - 1
"""A heap entry is ``(PRIORITY_MAX - priority, seq, id.int)`` packed into one int (in that
order of significance): it sorts as the tuple would (higher priority, then older, first)."""


def _entry(priority: int, seq: int, ident: int) -> int:
    return (((PRIORITY_MAX - priority) << _SEQ_BITS | seq) << _ID_BITS) | ident


_STATUS = {status.value: status for status in JobStatus}


def _row(job: Job) -> Row:
    """The scalar fields of ``job`` (a display in ``_FIELDS`` order; JSON values ``None``)."""
    fields = fields_of(job)
    return (
        job.id.int,
        fields["job_type"],
        fields["queue_name"],
        None,  # payload: MemoryJobQueue._payloads
        fields["priority"],
        None,  # metadata: MemoryJobQueue._metadata
        job.status.value,
        fields["attempts"],
        fields["max_retries"],
        fields["created_at"],
        fields["scheduled_at"],
        fields["started_at"],
        fields["completed_at"],
        fields["idempotency_key"],
        None,  # result: MemoryJobQueue._results
        fields["error"],
    )


if _FIELDS != (
    "id",
    "job_type",
    "queue_name",
    "payload",
    "priority",
    "metadata",
    "status",
    "attempts",
    "max_retries",
    "created_at",
    "scheduled_at",
    "started_at",
    "completed_at",
    "idempotency_key",
    "result",
    "error",
):  # pragma: no cover - a guard for whoever changes Job's fields
    raise RuntimeError(f"Job's fields changed ({_FIELDS}): update MemoryJobQueue's row layout")


def _updated(row: Row, **changes: Any) -> Row:
    values = list(row)
    for name, value in changes.items():
        values[_FIELDS.index(name)] = value
    return tuple(values)


class MemoryJobQueue(JobQueue, DeadLetterStore, ScheduleStore):
    """A JobQueue held in a dict of rows and one priority heap per queue name.

    Same contract as the durable adapters (idempotent keys, priority then age, due
    times), but only for one process. Like them it stores each job's fields, not the
    ``Job`` object: ``get``, ``dequeue`` and ``list`` return jobs equal to the stored
    ones, built when read. It is also a
    :class:`~portico_rx.ports.dead_letter_store.DeadLetterStore` (a dict of records).
    """

    def __init__(self) -> None:
        self._rows: dict[int, Row] = {}  # id.int -> row, in insertion order
        self._payloads: dict[int, Any] = {}  # id.int -> the job's payload (see Row)
        self._metadata: dict[int, Any] = {}  # id.int -> the job's metadata
        self._results: dict[int, Any] = {}  # id.int -> the job's result, when not None
        self._by_key: dict[str, int] = {}
        self._sorted_keys: list[str] = []  # greatest_keys' index, sorted when asked
        self._new_keys: list[str] = []  # keys stored since it was last sorted
        self._heaps: dict[str, list[int]] = {}  # _entry(priority, seq, id.int)
        self._seq = itertools.count()
        self._new_work = asyncio.Event()
        self._dead_letters: dict[UUID, tuple[int, DeadLetterRecord]] = {}  # id -> (seq, record)
        self._schedules: dict[tuple[str, str], StoredSchedule] = {}
        self._schedule_revision = 0

    def __repr__(self) -> str:
        return f"MemoryJobQueue(jobs={len(self._rows)})"

    def _push(self, row: Row) -> None:
        heap = self._heaps.setdefault(row[QUEUE_NAME], [])
        heapq.heappush(heap, _entry(row[PRIORITY], next(self._seq), row[ID]))
        self._new_work.set()

    async def enqueue(self, job: Job) -> tuple[Job, bool]:
        return self._store(job)

    async def enqueue_many(self, jobs: Sequence[Job]) -> list[tuple[Job, bool]]:
        store = self._store
        return [store(job) for job in jobs]

    def _store(self, job: Job) -> tuple[Job, bool]:
        key = job.idempotency_key
        if key is not None:
            existing = self._by_key.get(key)
            if existing is not None:
                return self._job(self._rows[existing]), False
        row = _row(job)
        ident = row[ID]
        if key is not None:
            self._by_key[key] = ident
            self._new_keys.append(key)
        self._rows[ident] = row
        self._payloads[ident] = job.payload
        self._metadata[ident] = job.metadata
        if job.result is not None:
            self._results[ident] = job.result
        if row[STATUS] in _DUE:
            self._push(row)
        return job, True

    async def dequeue(
        self, queue_names: Sequence[str] | None, *, now: datetime | None = None
    ) -> Job | None:
        now = now or utcnow()
        best: tuple[int, str] | None = None
        names = check_queue_names(queue_names)
        for name in list(self._heaps) if names is None else names:
            heap = self._heaps.get(name)
            if not heap:
                continue
            later: list[int] = []
            while heap:
                entry = heap[0]
                row = self._rows.get(entry & _ID_MASK)
                if row is None or row[STATUS] not in _DUE:
                    heapq.heappop(heap)
                    continue
                if row[SCHEDULED_AT] is not None and row[SCHEDULED_AT] > now:
                    later.append(heapq.heappop(heap))
                    continue
                if best is None or entry < best[0]:
                    best = (entry, name)
                break
            for entry in later:
                heapq.heappush(heap, entry)
        if best is None:
            self._new_work.clear()
            return None
        heap = self._heaps[best[1]]
        if heap[0] == best[0]:
            heapq.heappop(heap)
        else:  # not-yet-due jobs were pushed back above it
            heap.remove(best[0])
            heapq.heapify(heap)
        row = self._rows[best[0] & _ID_MASK]
        row = _updated(
            row,
            status=JobStatus.RUNNING.value,
            attempts=row[ATTEMPTS] + 1,
            started_at=utcnow(),
        )
        self._rows[row[ID]] = row
        return self._job(row)

    def _job(self, row: Row) -> Job:
        """The Job a row holds (like ``Job.model_construct`` with every field given)."""
        fields = dict(zip(_FIELDS, row, strict=True))
        ident = row[ID]
        fields["id"] = UUID(int=ident)
        fields["status"] = _STATUS[row[STATUS]]
        fields["payload"] = self._payloads[ident]
        fields["metadata"] = self._metadata[ident]
        fields["result"] = self._results.get(ident)
        return trusted(Job, fields, set(_FIELDS))

    def _require(self, job_id: UUID) -> Row:
        row = self._rows.get(job_id.int)
        if row is None:
            raise JobNotFoundError(f"no job with id {job_id}")
        return row

    async def complete(self, job_id: UUID, result: Any = None) -> Job:
        row = _updated(
            self._require(job_id),
            status=JobStatus.COMPLETED.value,
            completed_at=utcnow(),
            error=None,
        )
        self._rows[row[ID]] = row
        if result is None:
            self._results.pop(row[ID], None)
        else:
            self._results[row[ID]] = result
        return self._job(row)

    async def fail(self, job_id: UUID, error: str, *, retry_at: datetime | None = None) -> Job:
        current = self._require(job_id)
        if retry_at is None:
            row = _updated(
                current, status=JobStatus.FAILED.value, error=error, completed_at=utcnow()
            )
            self._rows[row[ID]] = row
        else:
            row = _updated(
                current, status=JobStatus.SCHEDULED.value, error=error, scheduled_at=retry_at
            )
            self._rows[row[ID]] = row
            self._push(row)
        return self._job(row)

    async def cancel(self, job_id: UUID) -> Job:
        current = self._rows.get(job_id.int)
        if current is None or current[STATUS] not in _DUE:
            raise cancel_refused(job_id, None if current is None else self._job(current), "memory")
        # its heap entry stays; dequeue drops entries whose job is no longer due
        row = _updated(current, status=JobStatus.CANCELLED.value, completed_at=utcnow())
        self._rows[row[ID]] = row
        return self._job(row)

    async def get(self, job_id: UUID) -> Job | None:
        row = self._rows.get(job_id.int)
        return None if row is None else self._job(row)

    async def get_by_key(self, idempotency_key: str) -> Job | None:
        job_id = self._by_key.get(idempotency_key)
        return self._job(self._rows[job_id]) if job_id is not None else None

    async def greatest_keys(self, prefixes: Sequence[str]) -> dict[str, str]:
        """A binary search per prefix in a sorted index of the keys, brought up to date
        when asked (the keys stored since are sorted and merged in: linear, not a sort
        of every key)."""
        wanted = check_prefixes(prefixes)
        if self._new_keys:
            self._new_keys.sort()
            self._sorted_keys += self._new_keys  # two sorted runs: timsort merges them
            self._sorted_keys.sort()
            self._new_keys = []
        keys = self._sorted_keys
        found: dict[str, str] = {}
        for prefix in wanted:
            end = bisect.bisect_left(keys, prefix + KEY_CEILING)
            if end and keys[end - 1].startswith(prefix):
                found[prefix] = keys[end - 1]
        if any(key not in self._by_key for key in found.values()):  # a key was dropped
            self._sorted_keys, self._new_keys = [], list(self._by_key)
            return await self.greatest_keys(wanted)
        return found

    async def list(
        self,
        *,
        status: JobStatus | None = None,
        job_type: str | None = None,
        queue_name: str | None = None,
        key_prefix: str | None = None,
        limit: int = 100,
        order_by: str = "created_at",
    ) -> list[Job]:
        check_list_args(limit, order_by)
        # base.job_matches, on rows (building a Job per stored row would cost more)
        wanted = None if status is None else JobStatus(status).value
        rows = [
            row
            for row in self._rows.values()
            if (wanted is None or row[STATUS] == wanted)
            and (job_type is None or row[JOB_TYPE] == job_type)
            and (queue_name is None or row[QUEUE_NAME] == queue_name)
            and (
                key_prefix is None
                or (
                    row[IDEMPOTENCY_KEY] is not None and row[IDEMPOTENCY_KEY].startswith(key_prefix)
                )
            )
        ]
        if order_by == "idempotency_key":
            rows.sort(key=lambda r: r[IDEMPOTENCY_KEY] or "", reverse=True)
        else:
            rows.reverse()  # dicts keep insertion order: newest last
            rows.sort(key=lambda r: r[CREATED_AT], reverse=True)
        return [self._job(row) for row in rows[:limit]]

    async def wait_for_jobs(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._new_work.wait(), timeout)

    # -- DeadLetterStore -----------------------------------------------------------

    async def add_dead_letter(self, record: DeadLetterRecord) -> DeadLetterRecord:
        return self._add_letter(record)

    async def add_dead_letters(
        self, records: Sequence[DeadLetterRecord]
    ) -> builtins.list[DeadLetterRecord]:
        add = self._add_letter
        return [add(record) for record in records]

    def _add_letter(self, record: DeadLetterRecord) -> DeadLetterRecord:
        stored = self._dead_letters.get(record.id)
        if stored is not None:
            return stored[1]
        self._dead_letters[record.id] = (next(self._seq), record)
        return record

    async def get_dead_letter(self, letter_id: UUID) -> DeadLetterRecord | None:
        stored = self._dead_letters.get(letter_id)
        return None if stored is None else stored[1]

    async def list_dead_letters(
        self, *, trigger: str | None = None, status: str | None = "open", limit: int = 100
    ) -> builtins.list[DeadLetterRecord]:
        check_dead_letter_query(status, limit)
        found = [
            (record.at, seq, record)
            for seq, record in self._dead_letters.values()
            if (trigger is None or record.trigger == trigger)
            and (status is None or record.status == status)
        ]
        found.sort(key=lambda entry: entry[:2], reverse=True)
        return [record for _, _, record in found[:limit]]

    async def resolve_dead_letter(
        self, letter_id: UUID, status: str, job_id: UUID | None = None
    ) -> DeadLetterRecord:
        stored = self._dead_letters.get(letter_id)
        check_resolution(None if stored is None else stored[1], status, letter_id)
        assert stored is not None
        record = stored[1].resolved(status, job_id)
        self._dead_letters[letter_id] = (stored[0], record)
        return record

    # -- ScheduleStore ---------------------------------------------------------------

    def _write_schedule(self, old: StoredSchedule, **changes: Any) -> StoredSchedule:
        self._schedule_revision += 1
        row = dataclasses.replace(
            old, revision=self._schedule_revision, updated_at=utcnow(), **changes
        )
        self._schedules[(row.trigger, row.name)] = row
        return row

    async def save_schedule(
        self, trigger: str, name: str, config: Mapping[str, Any], *, paused: bool | None = None
    ) -> StoredSchedule:
        check_schedule_id(trigger, name)
        stored = json.loads(json.dumps(dict(config)))  # a copy, as a durable store keeps
        old = self._schedules.get((trigger, name))
        live = old is not None and not old.removed
        flag = paused if paused is not None else (live and old is not None and old.paused)
        blank = StoredSchedule(trigger, name, {}, False, 0, utcnow())
        return self._write_schedule(old or blank, config=stored, paused=flag, removed=False)

    async def set_schedule_paused(
        self, trigger: str, name: str, paused: bool
    ) -> StoredSchedule | None:
        check_schedule_id(trigger, name)
        old = self._schedules.get((trigger, name))
        if old is None or old.removed:
            return None
        return self._write_schedule(old, paused=bool(paused))

    async def delete_schedule(self, trigger: str, name: str) -> bool:
        check_schedule_id(trigger, name)
        old = self._schedules.get((trigger, name))
        if old is None or old.removed:
            return False
        self._write_schedule(old, removed=True)
        return True

    async def list_schedules(
        self, trigger: str | None = None, *, since: int | None = None
    ) -> builtins.list[StoredSchedule]:
        if trigger is not None:
            check_schedule_id(trigger)
        rows = [r for r in self._schedules.values() if trigger is None or r.trigger == trigger]
        if since is None:
            return sorted((r for r in rows if not r.removed), key=lambda r: (r.trigger, r.name))
        return sorted((r for r in rows if r.revision > since), key=lambda r: r.revision)
