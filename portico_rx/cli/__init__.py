"""The ``portico-rx`` command.

::

    portico-rx run FILE.py [--db portico.db] [--duration S] [--host H] [--port P]
    portico-rx worker FILE.py [--db portico.db] [--queue NAME ...] [--concurrency N]
                              [--visibility-timeout S]
    portico-rx jobs [--db portico.db] [--status S] [--type T] [--queue Q] [--limit N]
    portico-rx schedules backfill FILE.py --schedule NAME --start ISO --end ISO [--dry-run]
    portico-rx outcomes [--url http://127.0.0.1:8000] [--trigger NAME] [--outcome KIND]
                        [--limit N] [--json]

``run`` loads FILE.py (see :mod:`portico_rx.cli.app_file` for what it may define), runs
its triggers against the embedded SQLite job queue, processes its ``handlers`` in the
same process, serves trigger routes (webhooks) with uvicorn, shows a live status table,
and stops gracefully on Ctrl-C / SIGTERM or after ``--duration`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence
from typing import Any

from rich.console import Console

from portico_rx.cli.console_logging import LEVELS, configure_console_logging
from portico_rx.errors import PorticoError
from portico_rx.models import JobStatus

__all__ = ["build_parser", "main"]


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``portico-rx`` (subcommands ``run``, ``worker``, ``jobs``)."""
    default_db = os.environ.get("PORTICO_DB", "portico.db")
    parser = argparse.ArgumentParser(
        prog="portico-rx", description="Turn external events into background jobs."
    )
    parser.add_argument(
        "--log-level", choices=LEVELS, default="info", help="least severe log level shown"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--db", default=default_db, help=f"SQLite job queue file (default {default_db})"
        )

    def running(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("file", metavar="FILE.py", help="the app file to load")
        common(sub)
        sub.add_argument(
            "--duration", type=_positive, default=None, help="stop by itself after SECONDS"
        )
        sub.add_argument(
            "--queue",
            action="append",
            dest="queue_names",
            help="queue the worker takes jobs from (repeatable; default: the file's "
            "queue_names, else every queue, so the queues the file's triggers create into)",
        )
        sub.add_argument("--concurrency", type=_count, default=4, help="jobs run at once")
        sub.add_argument(
            "--visibility-timeout",
            type=_positive,
            default=300.0,
            metavar="SECONDS",
            help="a job whose worker died is run again after this long (default 300); "
            "set it above your longest job",
        )
        sub.add_argument("--no-live", action="store_true", help="no live status table")

    run = commands.add_parser("run", help="run the triggers (and handlers) of FILE.py")
    running(run)
    run.add_argument("--host", default="127.0.0.1", help="address for webhook routes")
    run.add_argument("--port", type=int, default=8000, help="port for webhook routes")
    run.add_argument("--no-worker", action="store_true", help="do not run the file's handlers here")

    worker = commands.add_parser("worker", help="process jobs with the handlers of FILE.py")
    running(worker)

    jobs = commands.add_parser("jobs", help="list the jobs in the queue")
    common(jobs)
    jobs.add_argument("--status", choices=[s.value for s in JobStatus])
    jobs.add_argument("--type", dest="job_type")
    jobs.add_argument("--queue", dest="queue_name")
    jobs.add_argument("--limit", type=_count, default=50)
    jobs.add_argument("--json", action="store_true", help="one JSON job per line")
    _schedules_parser(commands, common)
    _outcomes_parser(commands)
    return parser


def _schedules_parser(commands: Any, common: Any) -> None:
    """``portico-rx schedules backfill`` (see :mod:`portico_rx.cli.schedules`)."""
    from portico_rx.cli.schedules import parse_time

    schedules = commands.add_parser("schedules", help="work with the schedules of FILE.py")
    actions = schedules.add_subparsers(dest="action", required=True, metavar="ACTION")
    backfill = actions.add_parser("backfill", help="create the runs of a past window")
    backfill.add_argument("file", metavar="FILE.py", help="the app file to load")
    common(backfill)
    backfill.add_argument("--schedule", required=True, help="the schedule's name")
    backfill.add_argument("--start", type=parse_time, required=True, help="window start (ISO)")
    backfill.add_argument("--end", type=parse_time, required=True, help="window end (ISO)")
    backfill.add_argument("--trigger", help="the ScheduleTrigger's name, if several have it")
    backfill.add_argument("--dry-run", action="store_true", help="only show the preview")
    backfill.add_argument("--max-runs", type=_count, default=10_000)


def _outcomes_parser(commands: Any) -> None:
    """``portico-rx outcomes``: what became of a running app's recent events."""
    from portico_rx.pipeline.outcomes import OUTCOME_KINDS

    outcomes = commands.add_parser(
        "outcomes", help="what became of the recent events of a running app's triggers"
    )
    outcomes.add_argument(
        "--url",
        default=os.environ.get("PORTICO_URL", "http://127.0.0.1:8000"),
        help="the running app (portico-rx run serves GET /outcomes there)",
    )
    outcomes.add_argument("--trigger", help="only this trigger")
    outcomes.add_argument("--outcome", choices=OUTCOME_KINDS, help="only this outcome")
    outcomes.add_argument("--limit", type=_count, default=50, help="the last N per trigger")
    outcomes.add_argument("--json", action="store_true", help="one JSON outcome per line")


async def _dispatch(args: argparse.Namespace) -> int:
    from portico_rx.cli import commands

    if args.command == "outcomes":
        from portico_rx.cli.outcomes import show_outcomes

        return await show_outcomes(
            url=args.url,
            trigger=args.trigger,
            outcome=args.outcome,
            limit=args.limit,
            as_json=args.json,
        )
    if args.command == "jobs":
        return await commands.list_jobs(
            db=args.db,
            status=args.status,
            job_type=args.job_type,
            queue_name=args.queue_name,
            limit=args.limit,
            as_json=args.json,
        )
    if args.command == "schedules":
        from portico_rx.cli import schedules

        return await schedules.backfill(
            args.file,
            schedule=args.schedule,
            start=args.start,
            end=args.end,
            trigger=args.trigger,
            db=args.db,
            dry_run=args.dry_run,
            max_runs=args.max_runs,
        )
    if args.command == "worker":
        return await commands.run_worker(
            args.file,
            db=args.db,
            duration=args.duration,
            live=not args.no_live,
            queue_names=args.queue_names,
            concurrency=args.concurrency,
            visibility_timeout=args.visibility_timeout,
        )
    return await commands.run_app(
        args.file,
        db=args.db,
        duration=args.duration,
        host=args.host,
        port=args.port,
        live=not args.no_live,
        worker=not args.no_worker,
        queue_names=args.queue_names,
        concurrency=args.concurrency,
        visibility_timeout=args.visibility_timeout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``portico-rx`` with ``argv`` (default: the command line).

    Returns:
        The exit code: 0 on success, 1 when something failed (the message says what and
        how to fix it), 2 for bad arguments, 130 when forced to stop with a second Ctrl-C.
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
