"""``portico-rx dead-letters list|show|redrive|discard``: the stored dead letters of a
job store (see ``docs/dead-letters.md``), through ``JobService``'s dead letter API."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from portico_rx.cli.store import job_queue_for, parse_store
from portico_rx.cli.tables import listing
from portico_rx.errors import DeadLetterNotFoundError
from portico_rx.kits.job.job_service import JobService
from portico_rx.ports.dead_letter_store import DeadLetterRecord

__all__ = ["discard_dead_letter", "list_dead_letters", "redrive_dead_letter", "show_dead_letter"]

ALL = "all"
"""``--status all``: every status."""


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _service(store: str) -> tuple[JobService, str]:
    where = parse_store(store)
    return JobService(job_queue_for(where, must_exist=True)), where.label


def _table(records: Sequence[DeadLetterRecord], title: str) -> Table:
    columns = ("id", "trigger", "stage", "at", "tries", "status", "event id", "key")
    table = listing(title, columns, "error")
    for record in records:
        table.add_row(
            str(record.id),
            record.trigger,
            record.stage,
            record.at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            str(record.attempts),
            record.status,
            record.event_id or "",
            record.idempotency_key or "",
            record.error,
        )
    return table


async def list_dead_letters(
    *,
    store: str = "portico.db",
    trigger: str | None = None,
    status: str = "open",
    limit: int = 50,
    as_json: bool = False,
) -> int:
    """``portico-rx dead-letters list``: the newest stored dead letters, as a table (or
    JSON lines with ``as_json``); ``status`` ``"all"`` lists every status.

    Returns:
        The exit code (0).

    Raises:
        ConfigurationError: a SQLite file that does not exist, a bad filter.
        QueueUnavailableError: the store cannot be read.
    """
    service, label = _service(store)
    async with service:
        records = await service.list_dead_letters(
            trigger=trigger, status=None if status == ALL else status, limit=limit
        )
    if as_json:
        for record in records:
            sys.stdout.write(record.model_dump_json() + "\n")
        return 0
    which = "" if status == ALL else f"{status} "
    of = f" of trigger {trigger!r}" if trigger else ""
    title = f"{len(records)} {which}dead letters{of} in {label} (newest first)"
    _console().print(_table(records, title))
    return 0


async def show_dead_letter(letter_id: str, *, store: str = "portico.db") -> int:
    """``portico-rx dead-letters show ID``: one dead letter, every field, as JSON.

    Returns:
        The exit code (0).

    Raises:
        DeadLetterNotFoundError: the store holds no dead letter with this id.
        ConfigurationError: not a UUID; a SQLite file that does not exist.
    """
    service, label = _service(store)
    async with service:
        record = await service.get_dead_letter(letter_id)
    if record is None:
        raise DeadLetterNotFoundError(
            f"no dead letter with id {letter_id} in {label}: list them with "
            f"`portico-rx dead-letters list --store {label}`"
        )
    sys.stdout.write(json.dumps(record.model_dump(mode="json"), indent=2) + "\n")
    return 0


async def redrive_dead_letter(
    letter_id: str, *, store: str = "portico.db", as_json: bool = False
) -> int:
    """``portico-rx dead-letters redrive ID``: create the letter's job with its original
    idempotency key (once however often it is redriven) and mark it ``redriven``.

    Returns:
        The exit code (0).

    Raises:
        DeadLetterNotFoundError: the store holds no dead letter with this id.
        ConfigurationError: not a UUID; the letter was discarded or has no job request;
            a SQLite file that does not exist.
    """
    service, label = _service(store)
    async with service:
        job = await service.redrive_dead_letter(letter_id)
    if as_json:
        sys.stdout.write(job.model_dump_json() + "\n")
    else:
        _console().print(
            f"redrove dead letter {letter_id} as job {job.id} ({job.job_type}, key "
            f"{job.idempotency_key}) in {label}"
        )
    return 0


async def discard_dead_letter(
    letter_id: str, *, store: str = "portico.db", as_json: bool = False
) -> int:
    """``portico-rx dead-letters discard ID``: mark an open dead letter ``discarded``.

    Returns:
        The exit code (0).

    Raises:
        DeadLetterNotFoundError: the store holds no dead letter with this id.
        ConfigurationError: not a UUID; the letter is not open; a SQLite file that does
            not exist.
    """
    service, label = _service(store)
    async with service:
        record = await service.discard_dead_letter(letter_id)
    if as_json:
        sys.stdout.write(record.model_dump_json() + "\n")
    else:
        _console().print(f"discarded dead letter {record.id} ({record.trigger}) in {label}")
    return 0
