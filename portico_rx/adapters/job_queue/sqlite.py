"""SQLite JobQueue: the embedded default. One file, no server, several processes.

How it stays correct with several processes on one host:

* WAL journal, a busy timeout, and ``BEGIN IMMEDIATE`` for every transaction, so writers
  queue up on SQLite's lock instead of failing or deadlocking on a lock upgrade.
* The idempotency key is ``UNIQUE`` in the table: ``enqueue`` is ``INSERT … ON CONFLICT
  DO NOTHING`` and then reads the row that holds the key, inside one transaction — no
  check-then-insert race, whichever process wins.
* ``dequeue`` claims with one ``UPDATE … WHERE seq = (SELECT … LIMIT 1) RETURNING``
  under the write lock: a job is handed to one worker only.
* A claimed job carries a lease (``visibility_timeout``): if its worker dies before
  ``complete``/``fail``, the job is claimed again once the lease has expired.
* The schema is versioned (table ``schema_version``) and created or migrated by
  :meth:`SQLiteJobQueue.open` under the write lock; a file written by a newer
  portico_rx is refused with :class:`~portico_rx.errors.SchemaVersionError`.

How it stays fast and off the event loop: each queue owns one thread and one
connection. The calls made during one event-loop iteration are handed to that thread
together; the thread takes every call waiting at that moment and runs them in *one*
transaction (group commit), so a burst of ``create_job`` calls costs one fsync and one
thread hand-over, not one per job. Inside that transaction a run of alike calls shares
one statement (``enqueue``: one ``executemany``; claims: one ``UPDATE … LIMIT n``;
``complete``/``fail``: one ``executemany`` and one read-back), each caller still
answered as if its call had run alone (see :class:`_Joinable`).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import queue
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, cast
from uuid import UUID

from portico_rx.adapters.job_queue.base import (
    DUE_STATUSES,
    KEY_CEILING,
    cancel_refused,
    check_list_args,
    check_prefixes,
    check_queue_names,
)
from portico_rx.errors import (
    ConfigurationError,
    InvalidJobError,
    JobNotFoundError,
    QueueUnavailableError,
    SchemaVersionError,
)
from portico_rx.logs import get_logger
from portico_rx.models import Job, JobStatus, fields_of, trusted, utcnow
from portico_rx.ports.dead_letter_store import (
    DeadLetterRecord,
    DeadLetterStore,
    check_dead_letter_query,
    check_resolution,
)
from portico_rx.ports.job_queue import JobQueue
from portico_rx.ports.schedule_store import ScheduleStore, StoredSchedule, check_schedule_id

__all__ = ["SCHEMA_VERSION", "SQLiteJobQueue"]

logger = get_logger("portico_rx.sqlite_queue")

SCHEMA_VERSION = 3
"""The schema this version of portico_rx writes; :meth:`SQLiteJobQueue.open` migrates older
files up to it and refuses newer ones. 2: ``lease_expires_at`` (``visibility_timeout``);
3: the ``dead_letters`` table (:class:`~portico_rx.ports.dead_letter_store.DeadLetterStore`)
and the ``schedules`` table (the :class:`~portico_rx.ports.schedule_store.ScheduleStore`)."""

T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], Any]

# Version 1 exactly as it shipped: a new file is created by running every migration.
_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    job_type TEXT NOT NULL,
    queue_name TEXT NOT NULL,
    payload TEXT NOT NULL,
    priority INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    max_retries INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    scheduled_at INTEGER,
    started_at INTEGER,
    completed_at INTEGER,
    idempotency_key TEXT UNIQUE,
    result TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_due
    ON jobs (queue_name, priority DESC, created_at, seq)
    WHERE status IN ('pending', 'scheduled');
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at, seq);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at);
"""

_MIGRATIONS: dict[int, list[str]] = {
    1: [statement for statement in _SCHEMA_V1.split(";") if statement.strip()],
    2: [
        "ALTER TABLE jobs ADD COLUMN lease_expires_at INTEGER",
        "CREATE INDEX IF NOT EXISTS jobs_leased ON jobs (queue_name, lease_expires_at) "
        "WHERE status = 'running'",
    ],
    3: [
        "CREATE TABLE IF NOT EXISTS dead_letters ("
        "seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, trigger TEXT NOT NULL, "
        "status TEXT NOT NULL, at INTEGER NOT NULL, record TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS dead_letters_at ON dead_letters (at, seq)",
        "CREATE INDEX IF NOT EXISTS dead_letters_status ON dead_letters (status, at, seq)",
        "CREATE TABLE IF NOT EXISTS schedules (trigger_name TEXT NOT NULL, name TEXT NOT NULL, "
        "config TEXT NOT NULL, paused INTEGER NOT NULL, removed INTEGER NOT NULL, "
        "revision INTEGER NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (trigger_name, name))",
        "CREATE INDEX IF NOT EXISTS schedules_revision ON schedules (revision)",
    ],
}
"""Statements that bring the layout from version ``n - 1`` to ``n``, keyed by ``n``."""

_COLUMNS = (
    "id, job_type, queue_name, payload, priority, metadata, status, attempts, max_retries, "
    "created_at, scheduled_at, started_at, completed_at, idempotency_key, result, error"
)
_INSERT = (
    f"INSERT INTO jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT DO NOTHING"
)
_DUE = ("pending", "scheduled")
_FIELDS = tuple(_COLUMNS.split(", "))  # every Job field, in row order
_STATUS = {status.value: status for status in JobStatus}
_RECLAIM_LIMIT = 100

_CLOSE = object()
_JSON = json.JSONEncoder(separators=(",", ":"))  # json.dumps(separators=...) builds one per call
_RESULT_JSON = json.JSONEncoder(allow_nan=False)  # a job's result: strict JSON, one encoder
_DECODER = json.JSONDecoder()
_FIELDS_SET: set[str] = set(_FIELDS)  # shared by every Job read (frozen: copied to change)


def _loads(text: str) -> Any:
    """``json.loads`` of a column this module wrote (compact JSON): the decoder's scanner
    at once (``json.loads`` adds two whitespace matches per call); any other text takes
    ``json.loads``, with its errors."""
    try:
        value, end = _DECODER.raw_decode(text)
    except ValueError:
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def _to_micros(value: datetime | None) -> int | None:
    return None if value is None else _micros(value)


def _micros(value: datetime) -> int:
    """``value`` as integer microseconds since the epoch (naive: taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _from_micros(value: int | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value / 1_000_000, UTC)


def _row(job: Job) -> tuple[Any, ...]:
    """The 16 values of ``job``'s row, in ``_COLUMNS`` order (one per ``create_job``:
    read from the model's field dict, the times unset on a new job skipped)."""
    fields = fields_of(job)
    encode = _JSON.encode
    result = fields["result"]
    started, completed = fields["started_at"], fields["completed_at"]
    return (
        str(fields["id"]),
        fields["job_type"],
        fields["queue_name"],
        encode(fields["payload"]),
        fields["priority"],
        encode(fields["metadata"]),
        fields["status"].value,
        fields["attempts"],
        fields["max_retries"],
        _to_micros(fields["created_at"]),
        _to_micros(fields["scheduled_at"]),
        None if started is None else _to_micros(started),
        None if completed is None else _to_micros(completed),
        fields["idempotency_key"],
        None if result is None else json.dumps(result),
        fields["error"],
    )


def _job(row: Sequence[Any], job_id: UUID | None = None) -> Job:
    """The Job a row holds (``_COLUMNS`` order; ``job_id``: its id, when the caller has
    it as a UUID already)."""
    return trusted(
        Job,
        {
            "id": UUID(row[0]) if job_id is None else job_id,
            "job_type": row[1],
            "queue_name": row[2],
            "payload": _loads(row[3]),
            "priority": row[4],
            "metadata": _loads(row[5]),
            "status": _STATUS[row[6]],
            "attempts": row[7],
            "max_retries": row[8],
            "created_at": _from_micros(row[9]),
            "scheduled_at": _from_micros(row[10]),
            "started_at": _from_micros(row[11]),
            "completed_at": _from_micros(row[12]),
            "idempotency_key": row[13],
            "result": None if row[14] is None else _loads(row[14]),
            "error": row[15],
        },
        _FIELDS_SET,
    )


def _insert(conn: sqlite3.Connection, job: Job, row: tuple[Any, ...]) -> tuple[Job, bool]:
    """``INSERT … ON CONFLICT DO NOTHING``, then the row holding the key (or the id)."""
    cursor = conn.execute(_INSERT, row)
    if cursor.rowcount == 1:
        return job, True
    if job.idempotency_key is not None:
        found = conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE idempotency_key = ?",
            (job.idempotency_key,),
        ).fetchone()
        if found is not None:
            return _job(found), False
    found = conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (str(job.id),)).fetchone()
    return _job(found), False


Outcome = tuple[bool, Any]  # (True, value) or (False, the error raised)


class _Joinable(Protocol):
    """An operation of the writer thread that may run with the like operations next to
    it in the same transaction, as one statement (or a few) for all of them.

    Called alone (``operation(conn)``) it is an ordinary operation. The group commit runs
    a run of two or more with the same ``join_key`` (``None``: never joined) by
    ``run_joined``, which gives each one the outcome it would have had alone, in order
    (where the joined statement cannot tell, by calling that one alone).
    """

    join_key: Any

    def __call__(self, conn: sqlite3.Connection) -> Any: ...

    @classmethod
    def run_joined(
        cls, conn: sqlite3.Connection, operations: Sequence[Any]
    ) -> builtins.list[Outcome]:
        """The outcome of each of ``operations``, in order. Raising fails the whole
        transaction (the group commit rolls it back)."""
        ...


def _alone(conn: sqlite3.Connection, operation: Any) -> Outcome:
    """The outcome of ``operation`` run alone, inside a joined run (an error that ended
    the transaction is raised: it fails the whole transaction)."""
    try:
        return True, operation(conn)
    except Exception as exc:
        if not conn.in_transaction:
            raise
        return False, exc


class _Insert:
    """``enqueue``: one row; joined, one ``executemany`` for every row of the run."""

    __slots__ = ("job", "row")
    join_key = _INSERT

    def __init__(self, job: Job, row: tuple[Any, ...]) -> None:
        self.job = job
        self.row = row

    def __call__(self, conn: sqlite3.Connection) -> tuple[Job, bool]:
        return _insert(conn, self.job, self.row)

    @classmethod
    def run_joined(
        cls, conn: sqlite3.Connection, operations: Sequence[Any]
    ) -> builtins.list[Outcome]:
        (before,) = conn.execute("SELECT coalesce(max(seq), 0) FROM jobs").fetchone()
        try:
            cursor = conn.executemany(_INSERT, [operation.row for operation in operations])
        except Exception:
            if not conn.in_transaction:
                raise
            written = -1  # stopped at a row SQLite refused: the rows before it are in
        else:
            written = cursor.rowcount
        if written == len(operations):  # every row written: every job created
            return [(True, (operation.job, True)) for operation in operations]
        # A key or id was taken (or a row refused): the rows this statement wrote are
        # the new seqs (the write lock is held); every other job runs alone, in order,
        # as it would have, and finds the row that holds its key or id, or its error.
        inserted = {
            job_id for (job_id,) in conn.execute("SELECT id FROM jobs WHERE seq > ?", (before,))
        }
        outcomes: builtins.list[Outcome] = []
        for operation in operations:
            job_id = operation.row[0]
            if job_id in inserted:
                inserted.discard(job_id)  # the same job twice: only the first created it
                outcomes.append((True, (operation.job, True)))
            else:
                outcomes.append(_alone(conn, operation))
        return outcomes


class _Claim:
    """``dequeue``: claim the next due job (after reclaiming expired leases when asked or
    when none is due); joined, one ``UPDATE … LIMIT n`` claims the run's ``n`` jobs."""

    __slots__ = (
        "claim_args",
        "join_key",
        "lease",
        "reclaim_args",
        "started",
        "statements",
        "sweep",
    )

    def __init__(
        self,
        statements: tuple[str, str, str],
        names: tuple[str, ...],
        started: int,
        lease: int | None,
        due: int,
        sweep: bool,
        *,
        joinable: bool,
    ) -> None:
        self.statements = statements
        self.join_key = (statements, lease is None) if joinable else None
        self.started = started
        self.lease = lease
        self.sweep = sweep
        self.claim_args = (started, lease, *names, due)
        self.reclaim_args = (*names, started)

    def __call__(self, conn: sqlite3.Connection) -> tuple[Sequence[Any] | None, int]:
        claim_sql, reclaim_sql, _ = self.statements
        reclaimed = conn.execute(reclaim_sql, self.reclaim_args).rowcount if self.sweep else 0
        found = conn.execute(claim_sql, self.claim_args).fetchone()
        if found is None and self.lease is not None and not self.sweep:
            reclaimed = conn.execute(reclaim_sql, self.reclaim_args).rowcount
            if reclaimed:
                found = conn.execute(claim_sql, self.claim_args).fetchone()
        return found, reclaimed  # the row: made a Job on the loop (see _update)

    @classmethod
    def run_joined(
        cls, conn: sqlite3.Connection, operations: Sequence[Any]
    ) -> builtins.list[Outcome]:
        # Every operation of the run asks for the same queues at "now" (no ``now=``):
        # the run claims as the latest of them, as each would have claimed alone.
        last = max(operations, key=lambda operation: operation.started)
        _, reclaim_sql, many_sql = last.statements
        sweep = any(operation.sweep for operation in operations)
        wanted = len(operations)
        reclaimed = conn.execute(reclaim_sql, last.reclaim_args).rowcount if sweep else 0
        rows = conn.execute(many_sql, (*last.claim_args, wanted)).fetchall()
        if len(rows) < wanted and last.lease is not None and not sweep:
            reclaimed = conn.execute(reclaim_sql, last.reclaim_args).rowcount
            if reclaimed:
                rows += conn.execute(many_sql, (*last.claim_args, wanted - len(rows))).fetchall()
        # RETURNING has no order: hand them out in the claim's order (seq is last)
        rows.sort(key=lambda row: (-row[4], row[9], row[-1]))
        found: builtins.list[Sequence[Any] | None] = [*rows, *[None] * (wanted - len(rows))]
        return [(True, (row, reclaimed if n == 0 else 0)) for n, row in enumerate(found)]


class _Update:
    """``complete``/``fail``: ``UPDATE … WHERE id = ? RETURNING`` one job; joined (the
    same ``SET`` for every job of the run, distinct ids), one ``executemany`` and one
    ``SELECT`` of the updated rows."""

    __slots__ = ("args", "job_id", "join_key", "path", "sets")

    def __init__(self, sets: str, args: tuple[Any, ...], job_id: UUID, path: str) -> None:
        self.join_key = sets
        self.sets = sets
        self.args = (*args, str(job_id))
        self.job_id = job_id
        self.path = path

    def __call__(self, conn: sqlite3.Connection) -> Sequence[Any]:
        found: Sequence[Any] | None = conn.execute(
            f"UPDATE jobs SET {self.sets} WHERE id = ? RETURNING {_COLUMNS}", self.args
        ).fetchone()
        if found is None:
            raise JobNotFoundError(f"no job with id {self.job_id} in {self.path!r}")
        return found  # made a Job on the loop, while the thread commits the next group

    @classmethod
    def run_joined(
        cls, conn: sqlite3.Connection, operations: Sequence[Any]
    ) -> builtins.list[Outcome]:
        ids = [operation.args[-1] for operation in operations]
        if len(set(ids)) != len(ids):  # the same job twice: each update alone, in order
            return [_alone(conn, operation) for operation in operations]
        conn.executemany(
            f"UPDATE jobs SET {operations[0].sets} WHERE id = ?",
            [operation.args for operation in operations],
        )
        rows = {
            row[0]: row
            for row in conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE id IN ({', '.join('?' for _ in ids)})", ids
            )
        }
        # an id not in the file updated nothing: its own error, as alone
        return [
            (True, rows[job_id]) if job_id in rows else _alone(conn, operation)
            for job_id, operation in zip(ids, operations, strict=True)
        ]


class SQLiteJobQueue(JobQueue, DeadLetterStore, ScheduleStore):
    """A JobQueue in one SQLite file: durable, no server, safe for several processes.

    Also the :class:`~portico_rx.ports.dead_letter_store.DeadLetterStore` of its
    file (table ``dead_letters``): a trigger's dead letters survive its restart.

    Every process (trigger service, workers, ``portico-rx jobs``) may open the same file.
    Opening creates the file and its schema, or migrates a file written by an older
    portico_rx; a file written by a newer portico_rx is refused. Keep the file on a local
    disk: SQLite's locking is not reliable over NFS.

    Args:
        path: the database file (default ``"portico.db"``, relative to the working
            directory). ``":memory:"`` gives a private, non-durable store.
        busy_timeout: seconds to wait for another process's write lock before a call
            fails with ``QueueUnavailableError`` (default 30).
        synchronous: SQLite's ``synchronous`` setting (default ``"FULL"``: a job that
            ``enqueue`` returned survives a power cut; ``"NORMAL"`` survives a process
            crash only, and is faster when calls do not come in bursts).
        max_batch: most calls run in one transaction by the group commit (default 512).
        poll_interval: most seconds ``wait_for_jobs`` waits before workers look again
            for jobs written by other processes (default 0.5). Jobs enqueued by this
            process wake waiting workers at once.
        visibility_timeout: seconds a claimed job stays invisible to other workers; when a
            worker dies without ``complete``/``fail``, the job is claimed again after it
            (default 300; ``None`` never reclaims). Set it above your longest job.

    Raises:
        ConfigurationError: an argument is out of range (at construction).

    Example:
        >>> queue = SQLiteJobQueue("jobs.db")  # doctest: +SKIP
        >>> service = JobService(job_queue=queue)  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | Path = "portico.db",
        *,
        busy_timeout: float = 30.0,
        synchronous: Literal["FULL", "NORMAL", "OFF"] = "FULL",
        max_batch: int = 512,
        poll_interval: float = 0.5,
        visibility_timeout: float | None = 300.0,
    ) -> None:
        if busy_timeout < 0:
            raise ConfigurationError(f"busy_timeout={busy_timeout!r}: use 0 or more seconds")
        if synchronous not in ("FULL", "NORMAL", "OFF"):
            raise ConfigurationError(
                f"synchronous={synchronous!r}: use 'FULL' (default), 'NORMAL' or 'OFF'"
            )
        if max_batch < 1:
            raise ConfigurationError(f"max_batch={max_batch!r}: use 1 or more")
        if poll_interval <= 0:
            raise ConfigurationError(f"poll_interval={poll_interval!r}: use a positive number")
        if visibility_timeout is not None and visibility_timeout <= 0:
            raise ConfigurationError(
                f"visibility_timeout={visibility_timeout!r}: use a positive number of seconds "
                "or None to never reclaim"
            )
        self.path = str(path)
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous
        self.max_batch = max_batch
        self.poll_interval = poll_interval
        self.visibility_timeout = visibility_timeout
        self._next_sweep = utcnow()
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._outbox: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        self._open_lock: asyncio.Lock | None = None
        self._new_work: asyncio.Event | None = None
        self._claim_sql: dict[tuple[str, ...], tuple[str, str, str]] = {}

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"SQLiteJobQueue(path={self.path!r}, {state})"

    @property
    def is_open(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self.is_open:
                return
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            loop = asyncio.get_running_loop()
            self._calls = queue.SimpleQueue()
            self._new_work = asyncio.Event()
            thread = threading.Thread(
                target=self._run,
                args=(self._calls, loop, ready),
                name=f"portico-sqlite:{Path(self.path).name}",
                daemon=True,
            )
            thread.start()
            try:
                await ready
            except BaseException:
                await asyncio.to_thread(thread.join)
                raise
            self._thread = thread
            logger.debug("sqlite_queue_opened", path=self.path)

    async def close(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._thread = None
        for loop in list(self._outbox):
            self._flush(loop)
        self._calls.put(_CLOSE)
        await asyncio.to_thread(thread.join)
        logger.debug("sqlite_queue_closed", path=self.path)

    async def __aenter__(self) -> SQLiteJobQueue:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the database thread ---------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        fix = (
            "check that the directory exists and is writable by this user, "
            "or pass another path to SQLiteJobQueue(path=...)"
        )
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise QueueUnavailableError(
                f"cannot open the SQLite job queue {self.path!r} ({exc}): {fix}"
            ) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._migrate(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except SchemaVersionError:
            conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            conn.close()
            text = str(exc)
            if "not a database" in text or "malformed" in text or "corrupt" in text:
                raise QueueUnavailableError(
                    f"the SQLite job queue {self.path!r} is not a valid database ({text}): "
                    "restore it from a backup, or move it away and let portico_rx create a "
                    "new one"
                ) from exc
            raise QueueUnavailableError(
                f"cannot write the SQLite job queue {self.path!r} ({text}): {fix}"
            ) from exc
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        version = None
        if exists:
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            version = row[0] if row else None
        if version is not None and version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"the SQLite job queue {self.path!r} has schema version {version}, newer than "
                f"this portico_rx understands ({SCHEMA_VERSION}): upgrade portico_rx, or "
                "use another file"
            )
        if version == SCHEMA_VERSION:
            return
        current = version or 0
        for step in range(current + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[step]:
                conn.execute(statement)
        leased = 0
        if current == 1 and self.visibility_timeout is not None:
            # Jobs left RUNNING by a version-1 worker had no lease: one that died would
            # never come back. Give them one from now, so they are claimable again after
            # one visibility_timeout (a worker still running them finishes normally).
            expires = _to_micros(utcnow() + timedelta(seconds=self.visibility_timeout))
            leased = conn.execute(
                "UPDATE jobs SET lease_expires_at = ? "
                "WHERE status = 'running' AND lease_expires_at IS NULL",
                (expires,),
            ).rowcount
        conn.execute("DELETE FROM schema_version")
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        if current == 0:
            logger.info("sqlite_queue_schema_created", path=self.path, version=SCHEMA_VERSION)
        else:
            logger.info(
                "sqlite_queue_schema_migrated",
                path=self.path,
                from_version=current,
                version=SCHEMA_VERSION,
                running_jobs_leased=leased,
            )

    def _run(
        self,
        calls: queue.SimpleQueue[Any],
        loop: asyncio.AbstractEventLoop,
        ready: asyncio.Future[None],
    ) -> None:
        try:
            conn = self._connect()
        except Exception as exc:
            error = exc
            loop.call_soon_threadsafe(_set_exception, ready, error)
            return
        loop.call_soon_threadsafe(_set_result, ready, None)
        try:
            closing = False
            while not closing:
                item = calls.get()
                if item is _CLOSE:
                    break
                waiting = list(item)
                while True:  # take every call waiting now: one transaction for all
                    try:
                        item = calls.get_nowait()
                    except queue.Empty:
                        break
                    if item is _CLOSE:
                        closing = True
                        break
                    waiting.extend(item)
                for start in range(0, len(waiting), self.max_batch):
                    self._run_batch(conn, waiting[start : start + self.max_batch])
        finally:
            conn.close()

    def _run_batch(
        self,
        conn: sqlite3.Connection,
        batch: list[tuple[Operation, asyncio.Future[Any], asyncio.AbstractEventLoop]],
    ) -> None:
        outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            error = self._unavailable(exc)
            self._resolve(batch, [(future, False, error) for _, future, _ in batch])
            return
        start, size = 0, len(batch)
        while start < size:
            operation = batch[start][0]
            key = getattr(operation, "join_key", None)
            end = start + 1
            if key is not None:
                while end < size and getattr(batch[end][0], "join_key", None) == key:
                    end += 1
            if end - start > 1:
                run = batch[start:end]
                try:
                    joined = cast(_Joinable, operation).run_joined(conn, [op for op, _, _ in run])
                except Exception as exc:  # the whole transaction fails: nothing half-done
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    outcomes += [(future, False, self._translate(exc)) for _, future, _ in run]
                    break
                outcomes += [
                    (future, ok, value if ok else self._translate(value))
                    for (_, future, _), (ok, value) in zip(run, joined, strict=True)
                ]
                if not conn.in_transaction:
                    break
                start = end
                continue
            for operation, future, _loop in batch[start:end]:  # one at a time
                try:
                    outcomes.append((future, True, operation(conn)))
                except Exception as exc:
                    outcomes.append((future, False, self._translate(exc)))
                    if not conn.in_transaction:  # SQLite rolled the whole transaction back
                        break
            if not conn.in_transaction:
                break
            start = end
        try:
            if not conn.in_transaction:
                raise sqlite3.OperationalError("the transaction was rolled back")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            error = self._unavailable(exc)
            outcomes = [(future, False, error) for _, future, _ in batch]
        else:
            done = len(outcomes)
            if done < len(batch):  # cut short by a rollback: nothing after it ran
                outcomes += [(future, False, outcomes[-1][2]) for _, future, _ in batch[done:]]
        self._resolve(batch, outcomes)

    def _resolve(
        self,
        batch: list[tuple[Operation, asyncio.Future[Any], asyncio.AbstractEventLoop]],
        outcomes: list[tuple[asyncio.Future[Any], bool, Any]],
    ) -> None:
        loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for (_, _, loop), outcome in zip(batch, outcomes, strict=True):
            loops.setdefault(loop, []).append(outcome)
        for loop, items in loops.items():
            with contextlib.suppress(RuntimeError):  # the loop was closed meanwhile
                loop.call_soon_threadsafe(_settle_all, items)

    def _unavailable(self, exc: BaseException) -> QueueUnavailableError:
        return QueueUnavailableError(
            f"the SQLite job queue {self.path!r} failed ({exc}); if another process holds "
            f"the lock longer than busy_timeout={self.busy_timeout}s, raise busy_timeout"
        )

    def _translate(self, exc: Exception) -> Exception:
        if isinstance(exc, sqlite3.Error):
            return self._unavailable(exc)
        return exc

    async def _call(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        outbox = self._outbox.get(loop)
        if outbox is None:  # the first call of this loop iteration: hand over at its end
            if not self.is_open:  # checked once per iteration: the calls after it join it
                await self.open()
                outbox = self._outbox.get(loop)  # another call may have started one since
            if outbox is None:
                outbox = self._outbox[loop] = []
                loop.call_soon(self._flush, loop)
        future: asyncio.Future[T] = loop.create_future()
        outbox.append((operation, future, loop))
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand the calls made during one loop iteration to the thread as one item, so
        the thread wakes once and commits them together."""
        calls = self._outbox.pop(loop, None)
        if calls:
            self._calls.put(calls)

    def _signal_new_work(self) -> None:
        if self._new_work is not None:
            self._new_work.set()

    # -- JobQueue --------------------------------------------------------------------

    async def enqueue(self, job: Job) -> tuple[Job, bool]:
        row = _row(job)
        stored, created = await self._call(_Insert(job, row))
        if created and stored.status in DUE_STATUSES:
            self._signal_new_work()
        return stored, created

    async def enqueue_many(self, jobs: Sequence[Job]) -> list[tuple[Job, bool]]:
        """Every job in one operation of the writer thread, so in one transaction (and
        one fsync) — whatever else the group commit adds to it."""
        if not jobs:
            return []
        rows = [(job, _row(job)) for job in jobs]

        def insert_all(conn: sqlite3.Connection) -> list[tuple[Job, bool]]:
            return [_insert(conn, job, row) for job, row in rows]

        outcomes = await self._call(insert_all)
        if any(created and stored.status in DUE_STATUSES for stored, created in outcomes):
            self._signal_new_work()
        return outcomes

    def _claim_statements(self, names: tuple[str, ...]) -> tuple[str, str, str]:
        """The claim, reclaim and claim-``n`` statements of ``dequeue`` for ``names``
        (built once per set of queue names: a worker asks for the same ones every time)."""
        # every queue (None): no queue clause at all
        in_queues = f"queue_name IN ({', '.join('?' for _ in names)}) AND " if names else ""
        claim_sql = (
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ?, "
            "lease_expires_at = ? "
            "WHERE seq = (SELECT seq FROM jobs "
            f"WHERE {in_queues}status IN ('pending', 'scheduled') "
            "AND (scheduled_at IS NULL OR scheduled_at <= ?) "
            "ORDER BY priority DESC, created_at, seq LIMIT 1) "
            f"RETURNING {_COLUMNS}"
        )
        # Expired leases back to 'pending' (attempts are counted when claimed again). A
        # separate statement, so the claim itself keeps walking the due index in order.
        reclaim_sql = (
            "UPDATE jobs SET status = 'pending', lease_expires_at = NULL "
            "WHERE seq IN (SELECT seq FROM jobs "
            f"WHERE {in_queues}status = 'running' AND lease_expires_at <= ? "
            f"LIMIT {_RECLAIM_LIMIT})"
        )
        # The claims of several workers in one group commit: the next n due jobs at once
        # (seq returned last, to hand them out in the claim's order).
        many_sql = (
            claim_sql.replace("WHERE seq = (", "WHERE seq IN (", 1).replace(
                "LIMIT 1)", "LIMIT ?)", 1
            )
            + ", seq"
        )
        statements = claim_sql, reclaim_sql, many_sql
        if len(self._claim_sql) < 64:  # a bounded cache: callers may vary the names
            self._claim_sql[names] = statements
        return statements

    async def dequeue(
        self, queue_names: Sequence[str] | None, *, now: datetime | None = None
    ) -> Job | None:
        names = check_queue_names(queue_names) or ()
        statements = self._claim_sql.get(names) or self._claim_statements(names)
        started = utcnow()
        started_micros = _micros(started)
        lease = (
            None
            if self.visibility_timeout is None
            else started_micros + round(self.visibility_timeout * 1_000_000)
        )
        # Reclaim when the queue looks empty, and now and then while it is busy, so an
        # expired job never waits behind a long backlog.
        sweep = lease is not None and started >= self._next_sweep
        claim = _Claim(
            statements,
            names,
            started_micros,
            lease,
            started_micros if now is None else _micros(now),
            sweep,
            joinable=now is None,  # the claims of other workers at "now" join this one
        )
        if sweep and self.visibility_timeout is not None:
            self._next_sweep = started + timedelta(seconds=min(5.0, self.visibility_timeout / 2))
        found, reclaimed = await self._call(claim)
        job = None if found is None else _job(found)
        if reclaimed:
            logger.warning(
                "sqlite_queue_leases_expired",
                path=self.path,
                queue_names=list(names) or "every queue",
                jobs_reclaimed=reclaimed,
            )
        if job is None and self._new_work is not None:
            self._new_work.clear()
        return job

    async def _update(self, job_id: UUID, sets: str, args: tuple[Any, ...]) -> Job:
        found = await self._call(_Update(sets, args, job_id, self.path))
        return _job(found, job_id if type(job_id) is UUID else None)

    async def complete(self, job_id: UUID, result: Any = None) -> Job:
        try:
            text = None if result is None else _RESULT_JSON.encode(result)
        except (TypeError, ValueError) as exc:
            raise InvalidJobError(
                "result", result, f"it must be JSON-serialisable ({exc}); return plain values"
            ) from None
        return await self._update(
            job_id,
            "status = 'completed', result = ?, error = NULL, completed_at = ?, "
            "lease_expires_at = NULL",
            (text, _to_micros(utcnow())),
        )

    async def fail(self, job_id: UUID, error: str, *, retry_at: datetime | None = None) -> Job:
        if retry_at is None:
            return await self._update(
                job_id,
                "status = 'failed', error = ?, completed_at = ?, lease_expires_at = NULL",
                (error, _to_micros(utcnow())),
            )
        job = await self._update(
            job_id,
            "status = 'scheduled', error = ?, scheduled_at = ?, lease_expires_at = NULL",
            (error, _to_micros(retry_at)),
        )
        self._signal_new_work()
        return job

    async def cancel(self, job_id: UUID) -> Job:
        sql = (
            "UPDATE jobs SET status = 'cancelled', completed_at = ?, lease_expires_at = NULL "
            f"WHERE id = ? AND status IN ('pending', 'scheduled') RETURNING {_COLUMNS}"
        )
        now = _to_micros(utcnow())

        def update(conn: sqlite3.Connection) -> Job:
            found = conn.execute(sql, (now, str(job_id))).fetchone()
            if found is None:  # same transaction: the status seen is the one refused
                current = conn.execute(
                    f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (str(job_id),)
                ).fetchone()
                raise cancel_refused(
                    job_id, None if current is None else _job(current), repr(self.path)
                )
            return _job(found)

        return await self._call(update)

    async def get(self, job_id: UUID) -> Job | None:
        def select(conn: sqlite3.Connection) -> Job | None:
            found = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (str(job_id),)
            ).fetchone()
            return None if found is None else _job(found)

        return await self._call(select)

    async def get_by_key(self, idempotency_key: str) -> Job | None:
        def select(conn: sqlite3.Connection) -> Job | None:
            found = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
            return None if found is None else _job(found)

        return await self._call(select)

    async def greatest_keys(self, prefixes: Sequence[str]) -> dict[str, str]:
        """One call to the store's thread: a seek in the key index per prefix."""
        wanted = check_prefixes(prefixes)
        if not wanted:
            return {}

        def select(conn: sqlite3.Connection) -> dict[str, str]:
            # BINARY collation compares UTF-8 bytes: code-point order, as the port says.
            # One statement for every prefix (a seek in the key index each), where the
            # library has JSON (SQLite 3.38+ always does); else one statement per prefix.
            try:
                rows = conn.execute(
                    "SELECT p.value, (SELECT max(idempotency_key) FROM jobs "
                    "WHERE idempotency_key >= p.value "
                    "AND idempotency_key < p.value || char(1114111)) FROM json_each(?) AS p",
                    (json.dumps(wanted),),
                ).fetchall()
            except sqlite3.OperationalError:  # no JSON functions in this SQLite build
                rows = [
                    (
                        prefix,
                        conn.execute(
                            "SELECT max(idempotency_key) FROM jobs "
                            "WHERE idempotency_key >= ? AND idempotency_key < ?",
                            (prefix, prefix + KEY_CEILING),
                        ).fetchone()[0],
                    )
                    for prefix in wanted
                ]
            return {prefix: key for prefix, key in rows if key is not None}

        return await self._call(select)

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
        where: list[str] = []
        args: list[Any] = []
        if status is not None:
            where.append("status = ?")
            args.append(JobStatus(status).value)
        if job_type is not None:
            where.append("job_type = ?")
            args.append(job_type)
        if queue_name is not None:
            where.append("queue_name = ?")
            args.append(queue_name)
        if key_prefix is not None:
            # substr() instead of LIKE: keys may contain '%' and '_'.
            where.append("idempotency_key IS NOT NULL AND substr(idempotency_key, 1, ?) = ?")
            args += [len(key_prefix), key_prefix]
        order = (
            "idempotency_key DESC" if order_by == "idempotency_key" else "created_at DESC, seq DESC"
        )
        sql = f"SELECT {_COLUMNS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {order} LIMIT ?"
        args.append(limit)

        def select(conn: sqlite3.Connection) -> list[Job]:
            return [_job(found) for found in conn.execute(sql, args).fetchall()]

        return await self._call(select)

    async def count(self, *, status: JobStatus | None = None) -> int:
        """How many jobs the file holds (with ``status``, only those)."""

        def select(conn: sqlite3.Connection) -> int:
            if status is None:
                return int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0])
            return int(
                conn.execute(
                    "SELECT count(*) FROM jobs WHERE status = ?", (JobStatus(status).value,)
                ).fetchone()[0]
            )

        return await self._call(select)

    async def wait_for_jobs(self, timeout: float) -> None:
        """Wait until this process enqueues a due job, or ``min(timeout, poll_interval)``
        seconds pass (jobs written by other processes are seen on the next poll)."""
        if self._new_work is None:
            self._new_work = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._new_work.wait(), min(timeout, self.poll_interval))

    # -- DeadLetterStore -----------------------------------------------------------

    async def add_dead_letter(self, record: DeadLetterRecord) -> DeadLetterRecord:
        [stored] = await self.add_dead_letters([record])
        return stored

    async def add_dead_letters(
        self, records: Sequence[DeadLetterRecord]
    ) -> builtins.list[DeadLetterRecord]:
        """One writer call (one transaction) for all of ``records``."""
        rows = [
            (str(record.id), record.trigger, record.status, _to_micros(record.at), record)
            for record in records
        ]

        def insert(conn: sqlite3.Connection) -> builtins.list[DeadLetterRecord]:
            stored = []
            for ident, trigger, status, at, record in rows:
                cursor = conn.execute(
                    "INSERT INTO dead_letters (id, trigger, status, at, record) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (ident, trigger, status, at, record.model_dump_json()),
                )
                if cursor.rowcount == 1:
                    stored.append(record)
                else:
                    stored.append(_dead_letter(conn, record.id) or record)
            return stored

        return await self._call(insert) if rows else []

    async def get_dead_letter(self, letter_id: UUID) -> DeadLetterRecord | None:
        return await self._call(lambda conn: _dead_letter(conn, letter_id))

    async def list_dead_letters(
        self, *, trigger: str | None = None, status: str | None = "open", limit: int = 100
    ) -> builtins.list[DeadLetterRecord]:
        check_dead_letter_query(status, limit)
        where: builtins.list[str] = []
        args: builtins.list[Any] = []
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if trigger is not None:
            where.append("trigger = ?")
            args.append(trigger)
        sql = "SELECT record FROM dead_letters"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY at DESC, seq DESC LIMIT ?"
        args.append(limit)

        def select(conn: sqlite3.Connection) -> builtins.list[DeadLetterRecord]:
            return [
                DeadLetterRecord.model_validate_json(text)
                for (text,) in conn.execute(sql, args).fetchall()
            ]

        return await self._call(select)

    async def resolve_dead_letter(
        self, letter_id: UUID, status: str, job_id: UUID | None = None
    ) -> DeadLetterRecord:
        def update(conn: sqlite3.Connection) -> DeadLetterRecord:
            # one transaction under the write lock (BEGIN IMMEDIATE): the status read is
            # the one replaced
            current = _dead_letter(conn, letter_id)
            check_resolution(current, status, letter_id)
            assert current is not None
            resolved = current.resolved(status, job_id)
            conn.execute(
                "UPDATE dead_letters SET status = ?, record = ? WHERE id = ?",
                (resolved.status, resolved.model_dump_json(), str(letter_id)),
            )
            return resolved

        return await self._call(update)

    async def save_schedule(
        self, trigger: str, name: str, config: Mapping[str, Any], *, paused: bool | None = None
    ) -> StoredSchedule:
        check_schedule_id(trigger, name)
        text = _JSON.encode(dict(config))
        now = _to_micros(utcnow())

        def upsert(conn: sqlite3.Connection) -> StoredSchedule:
            old = conn.execute(
                "SELECT paused, removed FROM schedules WHERE trigger_name = ? AND name = ?",
                (trigger, name),
            ).fetchone()
            flag = paused if paused is not None else bool(old and not old[1] and old[0])
            conn.execute(
                "INSERT INTO schedules (trigger_name, name, config, paused, removed, revision, "
                "updated_at) VALUES (?, ?, ?, ?, 0, "
                "(SELECT coalesce(max(revision), 0) + 1 FROM schedules), ?) "
                "ON CONFLICT (trigger_name, name) DO UPDATE SET config = excluded.config, "
                "paused = excluded.paused, removed = 0, revision = excluded.revision, "
                "updated_at = excluded.updated_at",
                (trigger, name, text, int(flag), now),
            )
            return _read_schedule(conn, trigger, name)

        return await self._call(upsert)

    async def save_schedules(
        self, trigger: str, entries: Sequence[tuple[str, Mapping[str, Any], bool | None]]
    ) -> builtins.list[StoredSchedule]:
        """One transaction for all of ``entries``: one read of the trigger's rows, one
        ``executemany`` (revisions taken in order under the write lock)."""
        check_schedule_id(trigger)
        prepared = []
        for name, config, paused in entries:
            check_schedule_id(trigger, name)
            prepared.append((name, dict(config), _JSON.encode(dict(config)), paused))
        now = utcnow()
        micros = _to_micros(now)

        def upsert_all(conn: sqlite3.Connection) -> builtins.list[StoredSchedule]:
            old = {
                name: bool(paused) and not removed
                for name, paused, removed in conn.execute(
                    "SELECT name, paused, removed FROM schedules WHERE trigger_name = ?",
                    (trigger,),
                )
            }
            (base,) = conn.execute("SELECT coalesce(max(revision), 0) FROM schedules").fetchone()
            rows, written = [], []
            for revision, (name, config, text, paused) in enumerate(prepared, base + 1):
                flag = paused if paused is not None else old.get(name, False)
                old[name] = flag
                rows.append((trigger, name, text, int(flag), revision, micros))
                written.append(StoredSchedule(trigger, name, config, flag, revision, now))
            conn.executemany(
                "INSERT INTO schedules (trigger_name, name, config, paused, removed, revision, "
                "updated_at) VALUES (?, ?, ?, ?, 0, ?, ?) "
                "ON CONFLICT (trigger_name, name) DO UPDATE SET config = excluded.config, "
                "paused = excluded.paused, removed = 0, revision = excluded.revision, "
                "updated_at = excluded.updated_at",
                rows,
            )
            return written

        return await self._call(upsert_all) if prepared else []

    async def set_schedule_paused(
        self, trigger: str, name: str, paused: bool
    ) -> StoredSchedule | None:
        check_schedule_id(trigger, name)
        return await self._call(
            lambda conn: _update_schedule(conn, trigger, name, "paused = ?", int(bool(paused)))
        )

    async def delete_schedule(self, trigger: str, name: str) -> bool:
        check_schedule_id(trigger, name)
        row = await self._call(lambda conn: _update_schedule(conn, trigger, name, "removed = ?", 1))
        return row is not None

    async def list_schedules(
        self, trigger: str | None = None, *, since: int | None = None
    ) -> builtins.list[StoredSchedule]:
        if trigger is not None:
            check_schedule_id(trigger)
        where = ["removed = 0"] if since is None else ["revision > ?"]
        args: builtins.list[Any] = [] if since is None else [since]
        if trigger is not None:
            where.append("trigger_name = ?")
            args.append(trigger)
        order = "trigger_name, name" if since is None else "revision"
        sql = (
            f"SELECT {_SCHEDULE_COLUMNS} FROM schedules "
            f"WHERE {' AND '.join(where)} ORDER BY {order}"
        )
        rows = await self._call(lambda conn: conn.execute(sql, args).fetchall())
        return [_schedule(row) for row in rows]


def _dead_letter(conn: sqlite3.Connection, letter_id: UUID) -> DeadLetterRecord | None:
    found = conn.execute(
        "SELECT record FROM dead_letters WHERE id = ?", (str(letter_id),)
    ).fetchone()
    return None if found is None else DeadLetterRecord.model_validate_json(found[0])
    # -- ScheduleStore: one row per (trigger, name); every write in the writer thread --


def _set_result(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def _settle_all(items: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in items:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


_SCHEDULE_COLUMNS = "trigger_name, name, config, paused, revision, updated_at, removed"


def _schedule(row: Sequence[Any]) -> StoredSchedule:
    updated = _from_micros(row[5])
    assert updated is not None
    return StoredSchedule(
        trigger=row[0],
        name=row[1],
        config=json.loads(row[2]),
        paused=bool(row[3]),
        revision=row[4],
        updated_at=updated,
        removed=bool(row[6]),
    )


def _read_schedule(conn: sqlite3.Connection, trigger: str, name: str) -> StoredSchedule:
    row = conn.execute(
        f"SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE trigger_name = ? AND name = ?",
        (trigger, name),
    ).fetchone()
    return _schedule(row)


def _update_schedule(
    conn: sqlite3.Connection, trigger: str, name: str, assignment: str, value: int
) -> StoredSchedule | None:
    """Set one column of a live schedule with a new revision; ``None``: no such schedule."""
    changed = conn.execute(
        f"UPDATE schedules SET {assignment}, "
        "revision = (SELECT max(revision) + 1 FROM schedules), updated_at = ? "
        "WHERE trigger_name = ? AND name = ? AND removed = 0",
        (value, _to_micros(utcnow()), trigger, name),
    ).rowcount
    return _read_schedule(conn, trigger, name) if changed else None
