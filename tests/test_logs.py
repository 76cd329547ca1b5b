"""The library's logging (portico_rx/logs.py): standard ``logging`` unless structlog is set up.

A user's program that configures nothing sees nothing on stdout; ``logging`` configuration
routes and quiets every portico_rx logger; a structlog configuration is obeyed.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from reactivex.subject import Subject
from structlog.testing import capture_logs

import portico_rx as prx
from portico_rx.logs import get_logger
from portico_rx.testing import RecordingJobCreator

ROOT = Path(__file__).resolve().parent.parent

USER_PROGRAM = """
import asyncio, logging, sys
from reactivex.subject import Subject
import portico_rx as prx
from portico_rx.testing import RecordingJobCreator

{setup}

async def main():
    signups = Subject()
    creator = RecordingJobCreator()
    trigger = prx.PipelineTrigger(
        signups.pipe(prx.to_job("email.welcome", payload=lambda e: {{"user": e["id"]}})),
        job_creator=creator,
        name="welcome",
    )
    await trigger.start()
    for n in range(20):
        signups.on_next({{"id": n}})
    signups.on_next({{"no id": 1}})  # fails in to_job: an error and a dead letter
    await asyncio.sleep(0.05)
    await trigger.stop()
    assert len(creator.jobs) == 20, creator.jobs

asyncio.run(main())
"""


def run_user_program(setup: str = "") -> subprocess.CompletedProcess[str]:
    source = USER_PROGRAM.format(setup=textwrap.dedent(setup))
    return subprocess.run(
        [sys.executable, "-c", source],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def test_an_unconfigured_program_gets_nothing_on_stdout_and_only_problems_on_stderr() -> None:
    done = run_user_program()
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    # Python's last-resort handler: warnings and errors only, no per-job info lines.
    assert "pipeline_event_failed" in done.stderr
    assert "event_dead_lettered" in done.stderr
    assert "job_created" not in done.stderr
    assert "trigger_started" not in done.stderr


def test_basic_config_routes_every_event_with_its_fields() -> None:
    done = run_user_program(
        """
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(levelname)s|%(name)s|%(funcName)s|%(message)s")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    started = [line for line in lines if "trigger_started" in line]
    assert started == [
        "INFO|portico_rx.pipeline|_on_running|trigger_started trigger=welcome is_running=True"
    ]
    failed = [line for line in lines if "pipeline_event_failed" in line]
    assert failed and failed[0].startswith("ERROR|portico_rx.pipeline.sink|")
    created = [line for line in lines if "job_created" in line or "jobs_created" in line]
    assert created, lines


def test_the_portico_rx_logger_level_quiets_even_errors() -> None:
    done = run_user_program(
        """
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        logging.getLogger("portico_rx").setLevel(logging.CRITICAL)
        logging.getLogger("asyncio").info("the root handler works")
        """
    )
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "INFO:asyncio:the root handler works\n")


def test_the_command_line_keeps_its_console_lines_on_stderr() -> None:
    done = run_user_program(
        """
        from portico_rx.cli.console_logging import configure_console_logging
        configure_console_logging("info")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "trigger_started" in done.stderr


@pytest.fixture
def portico_records() -> Iterator[list[logging.LogRecord]]:
    """Records of every portico_rx logger at DEBUG and above, kept off the root."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    top = logging.getLogger("portico_rx")
    saved = top.level
    top.addHandler(handler)
    top.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        top.removeHandler(handler)
        top.setLevel(saved)


async def run_trigger(events: int) -> RecordingJobCreator:
    signups: Subject[dict[str, int]] = Subject()
    creator = RecordingJobCreator()
    trigger = prx.PipelineTrigger(
        signups.pipe(prx.to_job("email.welcome", payload=lambda e: {"user": e["id"]})),
        job_creator=creator,
        name="welcome",
    )
    await trigger.start()
    for n in range(events):
        signups.on_next({"id": n})
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    await trigger.stop()
    return creator


async def test_records_carry_the_event_and_fields_as_attributes(
    portico_records: list[logging.LogRecord],
) -> None:
    creator = await run_trigger(1)
    [job] = creator.jobs
    [record] = [r for r in portico_records if getattr(r, "event", None) == "job_created"]
    assert record.name == "portico_rx.pipeline.sink"
    assert record.levelno == logging.INFO
    assert record.__dict__["trigger"] == "welcome"
    assert record.__dict__["job_id"] == str(job.id)
    assert record.__dict__["job_type"] == "email.welcome"
    assert record.getMessage() == (
        f"job_created trigger=welcome job_id={job.id} job_type=email.welcome "
        "queue_name=default attempt=1"
    )
    assert record.funcName == "_flush_job_log"  # the library's function, not logs.py


def test_fields_named_like_record_attributes_keep_their_values(
    portico_records: list[logging.LogRecord],
) -> None:
    get_logger("portico_rx.test").warning("odd", name="a b", module=3, message="%s")
    [record] = portico_records
    assert record.name == "portico_rx.test"
    assert (record.__dict__["name_"], record.__dict__["module_"]) == ("a b", 3)
    assert record.getMessage() == "odd name='a b' module=3 message=%s"


def test_exception_attaches_the_traceback(portico_records: list[logging.LogRecord]) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        get_logger("portico_rx.test").bind(step="x").exception("failed", n=1)
    [record] = portico_records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[0] is ValueError
    assert record.getMessage() == "failed step=x n=1"


async def test_a_filtered_level_skips_the_per_job_lines(
    portico_records: list[logging.LogRecord],
) -> None:
    logging.getLogger("portico_rx.pipeline.sink").setLevel(logging.WARNING)
    try:
        assert not get_logger("portico_rx.pipeline.sink").is_enabled_for(logging.INFO)
        creator = await run_trigger(5)
    finally:
        logging.getLogger("portico_rx.pipeline.sink").setLevel(logging.NOTSET)
    assert len(creator.jobs) == 5
    assert not [r for r in portico_records if r.name == "portico_rx.pipeline.sink"]
    assert [r for r in portico_records if r.name == "portico_rx.pipeline"]  # others still log


async def test_a_structlog_configuration_is_obeyed(
    portico_records: list[logging.LogRecord],
) -> None:
    out = io.StringIO()
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(file=out),
    )
    await run_trigger(1)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    events = {line["event"] for line in lines}
    assert {"trigger_started", "job_created", "trigger_stopped"} <= events
    [created] = [line for line in lines if line["event"] == "job_created"]
    assert (created["level"], created["trigger"]) == ("info", "welcome")
    assert portico_records == []  # not also sent to the standard logging


async def test_capture_logs_sees_the_library_events() -> None:
    with capture_logs() as logs:
        await run_trigger(1)
    assert {"event": "job_created", "log_level": "info"}.items() <= next(
        e for e in logs if e["event"] == "job_created"
    ).items()


def test_configuring_after_the_logger_exists_takes_effect(
    portico_records: list[logging.LogRecord],
) -> None:
    log = get_logger("portico_rx.test").bind(stage="late")
    log.info("before")
    structlog.configure(
        processors=[structlog.processors.JSONRenderer()],
        logger_factory=structlog.ReturnLoggerFactory(),
    )
    log.info("after")  # goes to structlog now
    structlog.reset_defaults()
    log.info("again")
    assert [r.getMessage() for r in portico_records] == ["before stage=late", "again stage=late"]


def test_the_library_logs_only_through_portico_rx_logs() -> None:
    """A module calling ``structlog.get_logger`` itself would print to stdout with
    structlog's defaults; only the command line configures structlog (for its console)."""
    package = Path(prx.__file__).resolve().parent
    allowed = {"cli/console_logging.py"}
    offenders = [
        path.relative_to(package).as_posix()
        for path in sorted(package.rglob("*.py"))
        if path.relative_to(package).as_posix() not in allowed
        and re.search(r"^\s*(import structlog|from structlog)", path.read_text(), re.M)
    ]
    assert offenders == []
