"""The ``portico-rx`` command.

::

    portico-rx [--version] [--log-level L] COMMAND ...
    portico-rx run FILE.py [--store URL] [--duration S] [--host H] [--port P]
    portico-rx worker FILE.py [--store URL] [--queue NAME ...] [--concurrency N]
                              [--visibility-timeout S]
    portico-rx jobs [--store URL] [--status S] [--type T] [--queue Q] [--limit N] [--json]
    portico-rx jobs cancel JOB_ID [--store URL] [--json]
    portico-rx dead-letters list [--store URL] [--trigger NAME] [--status S] [--limit N] [--json]
    portico-rx dead-letters show|redrive|discard ID [--store URL] [--json]
    portico-rx schedules backfill FILE.py --schedule NAME --start ISO --end ISO [--dry-run]
    portico-rx schedules list|add|pause|resume|remove ... [--trigger NAME] [--store URL]
    portico-rx outcomes [--url http://127.0.0.1:8000] [--trigger NAME] [--outcome KIND]
                        [--limit N] [--json]
    portico-rx preview FILE.py [--days N] [--start ISO] [--limit N] [--json]

``--store`` (alias ``--db``) is a job store URL: ``sqlite:///path``, a plain SQLite path,
``postgresql://…`` or ``redis://…`` (:mod:`portico_rx.cli.store`, the one place it is
read). ``run`` loads FILE.py (see :mod:`portico_rx.cli.app_file` for what it may
define), runs its triggers against that store, processes its ``handlers`` in the same
process, serves trigger routes (webhooks) with uvicorn, shows a live status table, and
stops gracefully on Ctrl-C / SIGTERM or after ``--duration`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import textwrap
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from rich.console import Console

from portico_rx._version import __version__
from portico_rx.cli.console_logging import LEVELS, configure_console_logging
from portico_rx.errors import PorticoError
from portico_rx.models import JobStatus

__all__ = ["EXIT_CODES", "build_parser", "main"]

EXIT_CODES = {
    0: "success (run/worker: stopped gracefully by Ctrl-C, SIGTERM or --duration)",
    1: "failure, explained in one line on stderr: bad app file, unreachable or corrupt "
    "store, unknown job or dead letter id, a job that cannot be cancelled, a dead letter "
    "that cannot be redriven or discarded (discarded, already resolved, no job request), "
    "a failed backfill run, the web server ended by itself",
    2: "bad command-line arguments (usage on stderr)",
    130: "forced to stop by a second Ctrl-C",
}

EPILOG = (
    "job stores (--store, alias --db; default $PORTICO_STORE, else $PORTICO_DB, else "
    "portico.db):\n"
    "  sqlite:///relative.db  sqlite:////absolute.db  or a plain path   SQLite file\n"
    "  postgresql://user@host:5432/db?schema=S&table=T                  PostgreSQL\n"
    "  redis://host:6379/0?prefix=P                                     Redis\n"
    "\nexit codes:\n"
    + "".join(
        textwrap.fill(text, 88, initial_indent=f"  {code:<4} ", subsequent_indent=" " * 7) + "\n"
        for code, text in EXIT_CODES.items()
    )
)


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: use a positive number of seconds")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: use 1 or more")
    return value


def _default_store() -> str:
    return os.environ.get("PORTICO_STORE") or os.environ.get("PORTICO_DB") or "portico.db"


def _store_option(sub: argparse.ArgumentParser, *, inherited: bool = False) -> None:
    """``--store`` (alias ``--db``). ``inherited``: a nested parser (``jobs cancel``) that
    must not reset a ``--store`` given before its name."""
    default = _default_store()
    sub.add_argument(
        "--store",
        "--db",
        dest="store",
        metavar="URL",
        default=argparse.SUPPRESS if inherited else default,
        help=f"job store: sqlite:///PATH, a SQLite file path, postgresql://..., redis://... "
        f"(default {default}; $PORTICO_STORE or $PORTICO_DB)",
    )


def _parser(commands: Any, name: str, text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=text,
        description=text,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``portico-rx`` (``run``, ``worker``, ``jobs``, ``schedules``)."""
    parser = argparse.ArgumentParser(
        prog="portico-rx",
        description="Turn external events into background jobs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"portico-rx {__version__}", help="show the version"
    )
    parser.add_argument(
        "--log-level", choices=LEVELS, default="info", help="least severe log level shown"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def running(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("file", metavar="FILE.py", help="the app file to load")
        _store_option(sub)
        sub.add_argument(
            "--duration",
            type=_positive,
            default=None,
            metavar="SECONDS",
            help="stop by itself after SECONDS (default: run until Ctrl-C or SIGTERM)",
        )
        sub.add_argument(
            "--queue",
            action="append",
            dest="queue_names",
            metavar="NAME",
            help="queue the worker takes jobs from (repeatable; default: the file's "
            "queue_names, else every queue, so the queues the file's triggers create into)",
        )
        sub.add_argument(
            "--concurrency",
            type=_count,
            default=4,
            metavar="N",
            help="jobs run at once (default 4)",
        )
        sub.add_argument(
            "--visibility-timeout",
            type=_positive,
            default=300.0,
            metavar="SECONDS",
            help="a job whose worker died is run again after this long (default 300); "
            "set it above your longest job",
        )
        sub.add_argument("--no-live", action="store_true", help="no live status table")

    run = _parser(commands, "run", "run the triggers (and handlers) of FILE.py")
    running(run)
    run.add_argument(
        "--host", default="127.0.0.1", help="address for webhook routes (default 127.0.0.1)"
    )
    run.add_argument(
        "--port", type=int, default=8000, help="port for webhook routes (default 8000)"
    )
    run.add_argument("--no-worker", action="store_true", help="do not run the file's handlers here")
    run.add_argument(
        "--serve",
        action="store_true",
        help="serve /health/triggers and /outcomes on --host/--port even when no trigger "
        "has routes (a file with webhooks always serves them)",
    )

    worker = _parser(commands, "worker", "process jobs with the handlers of FILE.py")
    running(worker)
    _jobs_parser(commands)
    _schedules_parser(commands)
    _preview_parser(commands)
    _outcomes_parser(commands)
    _dead_letters_parser(commands)
    return parser


def _dead_letters_parser(commands: Any) -> None:
    """``portico-rx dead-letters list|show|redrive|discard``."""
    from portico_rx.ports.dead_letter_store import DEAD_LETTER_STATUSES

    letters = _parser(
        commands,
        "dead-letters",
        "list, inspect, redrive or discard the dead letters stored in the job store",
    )
    _store_option(letters)
    actions = letters.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = _parser(actions, "list", "the newest stored dead letters, with their full ids")
    _store_option(listing, inherited=True)
    listing.add_argument("--trigger", metavar="NAME", help="only this trigger's dead letters")
    listing.add_argument(
        "--status",
        choices=[*DEAD_LETTER_STATUSES, "all"],
        default="open",
        help="only dead letters with this status (default open; all: every status)",
    )
    listing.add_argument(
        "--limit", type=_count, default=50, metavar="N", help="show at most N (default 50)"
    )
    listing.add_argument("--json", action="store_true", help="one JSON dead letter per line")
    for name, text, json_help in (
        ("show", "one dead letter with every field (event, error, provenance) as JSON", None),
        (
            "redrive",
            "create the dead letter's job with its original idempotency key (redriving "
            "twice makes one job) and mark it redriven",
            "print the job as JSON",
        ),
        ("discard", "mark an open dead letter discarded: no job is created", "print it as JSON"),
    ):
        action = _parser(actions, name, text)
        action.add_argument(
            "letter_id", metavar="ID", help="the dead letter's full id (see `dead-letters list`)"
        )
        _store_option(action, inherited=True)
        if json_help is not None:
            action.add_argument("--json", action="store_true", help=json_help)


def _jobs_parser(commands: Any) -> None:
    """``portico-rx jobs`` (list) and ``portico-rx jobs cancel JOB_ID``."""
    jobs = _parser(commands, "jobs", "list the jobs in the store, or cancel one")
    _store_option(jobs)
    jobs.add_argument(
        "--status", choices=[s.value for s in JobStatus], help="only jobs with this status"
    )
    jobs.add_argument("--type", dest="job_type", metavar="TYPE", help="only jobs of this job type")
    jobs.add_argument("--queue", dest="queue_name", metavar="NAME", help="only jobs of this queue")
    jobs.add_argument(
        "--limit", type=_count, default=50, metavar="N", help="show at most N jobs (default 50)"
    )
    jobs.add_argument("--json", action="store_true", help="one JSON job per line")
    actions = jobs.add_subparsers(dest="action", metavar="ACTION")
    cancel = _parser(actions, "cancel", "cancel a pending or scheduled job: no worker will run it")
    cancel.add_argument(
        "job_id", metavar="JOB_ID", help="the job's full id (see `portico-rx jobs`)"
    )
    _store_option(cancel, inherited=True)
    cancel.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the job as JSON"
    )


def _schedules_parser(commands: Any) -> None:
    """``portico-rx schedules ...`` (see :mod:`portico_rx.cli.schedules`)."""
    from portico_rx.cli.schedules import parse_time

    schedules = _parser(
        commands, "schedules", "the schedules kept in the job store, and backfills of FILE.py"
    )
    actions = schedules.add_subparsers(dest="action", required=True, metavar="ACTION")
    trigger_help = "the ScheduleTrigger's name (default: schedules, the trigger's default)"
    listing = _parser(actions, "list", "list the schedules in the store")
    _store_option(listing)
    listing.add_argument("--trigger", help="only this trigger's schedules (default: all)")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add = _parser(actions, "add", "add (or with --replace change) a schedule in the store")
    add.add_argument("name", metavar="NAME", help="the schedule's name (no ':')")
    _store_option(add)
    add.add_argument("--trigger", default="schedules", help=trigger_help)
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help="a cron expression, e.g. '0 9 * * MON-FRI'")
    when.add_argument("--every", type=float, metavar="S", help="a fixed period in seconds")
    when.add_argument("--at", type=parse_time, metavar="ISO", help="one fire time (ISO)")
    add.add_argument("--job-type", required=True, help="the job type to create at each run")
    add.add_argument("--payload", metavar="JSON", help="the jobs' payload, a JSON object")
    add.add_argument("--queue", dest="queue_name", default="default", help="queue (default)")
    add.add_argument("--priority", type=int, default=0, help="job priority (default 0)")
    add.add_argument("--tz", help="time zone of --cron (default: the trigger's)")
    add.add_argument("--paused", action="store_true", help="store it paused")
    add.add_argument("--replace", action="store_true", help="change an existing schedule")
    for action, text in (
        ("pause", "pause a stored schedule on every replica"),
        ("resume", "resume a paused stored schedule on every replica"),
        ("remove", "remove a schedule from the store (every replica stops it)"),
    ):
        sub = _parser(actions, action, text)
        sub.add_argument("name", metavar="NAME", help="the schedule's name")
        _store_option(sub)
        sub.add_argument("--trigger", default="schedules", help=trigger_help)
    backfill = _parser(actions, "backfill", "create the runs of a past window")
    backfill.add_argument("file", metavar="FILE.py", help="the app file to load")
    _store_option(backfill)
    backfill.add_argument("--schedule", required=True, help="the schedule's name")
    backfill.add_argument("--start", type=parse_time, required=True, help="window start (ISO)")
    backfill.add_argument("--end", type=parse_time, required=True, help="window end (ISO)")
    backfill.add_argument("--trigger", help="the ScheduleTrigger's name, if several have it")
    backfill.add_argument("--dry-run", action="store_true", help="only show the preview")
    backfill.add_argument(
        "--max-runs",
        type=_count,
        default=10_000,
        metavar="N",
        help="refuse a window of more than N runs (default 10000)",
    )


def _days(text: str) -> float:
    value = float(text)
    if not 0 < value <= 36_600:
        raise argparse.ArgumentTypeError(f"{text!r}: use a number of days above 0, at most 36600")
    return value


def _preview_parser(commands: Any) -> None:
    """``portico-rx preview`` (see :mod:`portico_rx.cli.preview`)."""
    from portico_rx.cli.schedules import parse_time

    preview = _parser(
        commands, "preview", "show the runs the schedules of FILE.py would make; creates nothing"
    )
    preview.add_argument("file", metavar="FILE.py", help="the app file to load")
    preview.add_argument(
        "--days", type=_days, default=7.0, metavar="N", help="length of the window (default 7)"
    )
    preview.add_argument(
        "--start",
        type=parse_time,
        default=None,
        metavar="ISO",
        help="window start, with its time zone (default now)",
    )
    preview.add_argument(
        "--limit", type=_count, default=50, metavar="N", help="runs shown in the table (default 50)"
    )
    preview.add_argument("--json", action="store_true", help="every run as one JSON line")


def _outcomes_parser(commands: Any) -> None:
    """``portico-rx outcomes``: what became of a running app's recent events."""
    from portico_rx.pipeline.outcomes import OUTCOME_KINDS

    outcomes = _parser(
        commands, "outcomes", "what became of the recent events of a running app's triggers"
    )
    outcomes.add_argument(
        "--url",
        default=os.environ.get("PORTICO_URL", "http://127.0.0.1:8000"),
        help="the running app (portico-rx run serves GET /outcomes there)",
    )
    outcomes.add_argument("--trigger", metavar="NAME", help="only this trigger")
    outcomes.add_argument("--outcome", choices=OUTCOME_KINDS, help="only this outcome")
    outcomes.add_argument("--limit", type=_count, default=50, help="the last N per trigger")
    outcomes.add_argument("--json", action="store_true", help="one JSON outcome per line")


async def _outcomes(args: argparse.Namespace) -> int:
    from portico_rx.cli.outcomes import show_outcomes

    return await show_outcomes(
        url=args.url,
        trigger=args.trigger,
        outcome=args.outcome,
        limit=args.limit,
        as_json=args.json,
    )


async def _dead_letters(args: argparse.Namespace) -> int:
    from portico_rx.cli import dead_letters

    if args.action == "list":
        return await dead_letters.list_dead_letters(
            store=args.store,
            trigger=args.trigger,
            status=args.status,
            limit=args.limit,
            as_json=args.json,
        )
    if args.action == "show":
        return await dead_letters.show_dead_letter(args.letter_id, store=args.store)
    resolve = (
        dead_letters.redrive_dead_letter
        if args.action == "redrive"
        else dead_letters.discard_dead_letter
    )
    return await resolve(args.letter_id, store=args.store, as_json=args.json)


async def _jobs(args: argparse.Namespace) -> int:
    from portico_rx.cli import commands

    if args.action == "cancel":
        return await commands.cancel_job(args.job_id, store=args.store, as_json=args.json)
    return await commands.list_jobs(
        store=args.store,
        status=args.status,
        job_type=args.job_type,
        queue_name=args.queue_name,
        limit=args.limit,
        as_json=args.json,
    )


async def _preview(args: argparse.Namespace) -> int:
    from portico_rx.cli import preview

    return await preview.preview(
        args.file, days=args.days, start=args.start, limit=args.limit, as_json=args.json
    )


async def _schedules(args: argparse.Namespace) -> int:
    from portico_rx.cli import schedules

    if args.action == "list":
        return await schedules.list_schedules(
            store=args.store, trigger=args.trigger, as_json=args.json
        )
    if args.action == "add":
        return await schedules.add_schedule(
            args.name,
            store=args.store,
            trigger=args.trigger,
            cron=args.cron,
            every=args.every,
            at=args.at,
            job_type=args.job_type,
            payload=args.payload,
            queue_name=args.queue_name,
            priority=args.priority,
            tz=args.tz,
            paused=args.paused,
            replace=args.replace,
        )
    if args.action in ("pause", "resume"):
        return await schedules.set_paused(
            args.name, store=args.store, trigger=args.trigger, paused=args.action == "pause"
        )
    if args.action == "remove":
        return await schedules.remove_schedule(args.name, store=args.store, trigger=args.trigger)
    return await schedules.backfill(
        args.file,
        schedule=args.schedule,
        start=args.start,
        end=args.end,
        trigger=args.trigger,
        store=args.store,
        dry_run=args.dry_run,
        max_runs=args.max_runs,
    )


async def _run_or_work(args: argparse.Namespace) -> int:
    from portico_rx.cli import commands

    running = {
        "store": args.store,
        "duration": args.duration,
        "live": not args.no_live,
        "queue_names": args.queue_names,
        "concurrency": args.concurrency,
        "visibility_timeout": args.visibility_timeout,
    }
    if args.command == "worker":
        return await commands.run_worker(args.file, **running)
    return await commands.run_app(
        args.file,
        host=args.host,
        port=args.port,
        worker=not args.no_worker,
        serve=args.serve,
        **running,
    )


_COMMANDS: dict[str, Callable[[argparse.Namespace], Awaitable[int]]] = {
    "outcomes": _outcomes,
    "dead-letters": _dead_letters,
    "jobs": _jobs,
    "preview": _preview,
    "schedules": _schedules,
}
"""Each command's handler (``run`` and ``worker``: :func:`_run_or_work`)."""


async def _dispatch(args: argparse.Namespace) -> int:
    return await _COMMANDS.get(args.command, _run_or_work)(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``portico-rx`` with ``argv`` (default: the command line).

    Returns:
        The exit code (:data:`EXIT_CODES`): 0 on success, 1 when something failed (the
        message says what and how to fix it), 2 for bad arguments, 130 when forced to
        stop with a second Ctrl-C.
    """
    args = build_parser().parse_args(argv)
    configure_console_logging(args.log_level)
    try:
        return asyncio.run(_dispatch(args))
    except PorticoError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        Console(stderr=True).print("[yellow]forced to stop[/]")
        return 130
