"""``portico-rx`` as a user runs it: a real subprocess, a real SQLite file, real signals."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

import portico_rx as prx
from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.cli import main
from portico_rx.cli.app_file import load_app_file
from portico_rx.models import JobStatus

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.py"
CLI = [sys.executable, "-m", "portico_rx.cli"]


@pytest.fixture(autouse=True)
def _restore_structlog() -> Any:
    """main() configures structlog for a console; put the test configuration back."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


async def jobs_in(db: Path, **filters: Any) -> list[prx.Job]:
    async with SQLiteJobQueue(db) as queue:
        return await queue.list(limit=1000, **filters)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port() -> str:
    """A free port for the quickstart's webhook routes (8000 may be taken)."""
    return str(free_port())


def write(path: Path, code: str) -> Path:
    path.write_text(textwrap.dedent(code))
    return path


def test_quickstart_runs_for_a_duration_and_its_jobs_are_in_the_file(tmp_path: Path) -> None:
    """The README's command: jobs are created by the trigger and processed by the handler."""
    portico_rx_command = shutil.which("portico-rx")
    assert portico_rx_command is not None, "the portico-rx entry point is not installed"
    done = subprocess.run(
        [portico_rx_command, "run", str(QUICKSTART), "--duration", "3.5", "--port", port()],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "welcome-emails" in done.stdout  # the final status table
    assert "trigger_stopped" in done.stderr and "worker_stopped" in done.stderr
    jobs = asyncio.run(jobs_in(tmp_path / "portico.db"))
    assert jobs, done.stderr
    # Sign-ups tick every second; the 5-second heartbeat schedule may fire once too.
    assert "email.welcome" in {j.job_type for j in jobs}
    assert {j.job_type for j in jobs} <= {"email.welcome", "health.check"}
    welcome = [j for j in jobs if j.job_type == "email.welcome"]
    assert all(j.metadata["trigger"] == "welcome-emails" for j in welcome)
    completed = [j for j in welcome if j.status is JobStatus.COMPLETED]
    assert completed and all(j.result == {"sent_to": j.payload["email"]} for j in completed)

    listing = cli("jobs", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert f"{len(jobs)} of {len(jobs)} jobs in portico.db" in listing.stdout
    assert "email.welcome" in listing.stdout and "completed" in listing.stdout
    for job in jobs:
        assert str(job.id)[:8] in listing.stdout

    as_json = cli(
        "jobs", "--json", "--status", "completed", "--type", "email.welcome", cwd=tmp_path
    )
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert {row["id"] for row in rows} == {str(j.id) for j in completed}
    nothing = cli("jobs", "--status", "failed", cwd=tmp_path)
    assert f"0 of {len(jobs)} jobs" in nothing.stdout


def signal_when(
    args: list[str], ready: Any, sig: int, cwd: Path, poll: float = 0.02
) -> subprocess.CompletedProcess[str]:
    """Run ``portico-rx *args``, send ``sig`` once ``ready()`` is true, wait for the exit."""
    process = subprocess.Popen(
        [*CLI, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        for _ in range(int(30 / poll)):
            if ready():
                break
            assert process.poll() is None, process.communicate()[1]
            asyncio.run(asyncio.sleep(poll))
        process.send_signal(sig)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_sigterm_stops_gracefully(tmp_path: Path) -> None:
    db = tmp_path / "signal.db"
    done = signal_when(
        ["run", str(QUICKSTART), "--db", str(db), "--port", port()],
        lambda: db.exists() and asyncio.run(jobs_in(db)),
        signal.SIGTERM,
        tmp_path,
        poll=0.05,
    )
    err = done.stderr
    assert done.returncode == 0, err
    assert "shutdown_requested" in err and "signal=SIGTERM" in err
    assert "trigger_stopped" in err and "portico_stopped" in err
    assert "Traceback" not in err
    assert asyncio.run(jobs_in(db))


def test_a_signal_during_start_up_stops_gracefully_once_started(tmp_path: Path) -> None:
    """Ctrl-C while the app file is still loading: no traceback, triggers stopped, exit 0."""
    db = tmp_path / "early.db"
    loading = tmp_path / "loading"
    app = write(
        tmp_path / "slow_app.py",
        f"""
        import time
        from pathlib import Path

        from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger

        Path({str(loading)!r}).touch()
        time.sleep(1.5)  # a slow import; the signal arrives now

        def build(service):
            return [ScheduleTrigger(service, [ScheduleConfig(cron="0 0 1 1 *", job_type="yearly")])]
        """,
    )
    done = signal_when(["run", str(app), "--db", str(db)], loading.exists, signal.SIGINT, tmp_path)
    err = done.stderr
    assert done.returncode == 0, err
    assert "shutdown_requested" in err and "signal=SIGINT" in err
    assert "trigger_started" in err and "trigger_stopped" in err
    assert "Traceback" not in err


def test_worker_command_processes_jobs_already_in_the_file(tmp_path: Path) -> None:
    db = tmp_path / "work.db"

    async def create() -> None:
        async with prx.JobService(SQLiteJobQueue(db)) as service:
            for n in range(5):
                await service.create_job("math.square", {"n": n}, queue_name="math")
            await service.create_job("unknown.type", {}, queue_name="math")

    asyncio.run(create())
    app = write(
        tmp_path / "handlers_app.py",
        """
        async def square(job):
            return job.payload["n"] ** 2

        handlers = {"math.square": square}
        queue_names = ["math"]
        """,
    )
    done = cli("worker", str(app), "--db", str(db), "--duration", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    jobs = asyncio.run(jobs_in(db))
    squares = sorted(j.result for j in jobs if j.job_type == "math.square")
    assert squares == [0, 1, 4, 9, 16]
    [unknown] = [j for j in jobs if j.job_type == "unknown.type"]
    assert unknown.status is JobStatus.FAILED and "no handler" in (unknown.error or "")


def test_triggers_with_routes_are_served(tmp_path: Path) -> None:
    """A WebhookTrigger in the app file: POSTs become jobs in the SQLite file."""
    db = tmp_path / "web.db"
    port = free_port()
    app = write(
        tmp_path / "web_app.py",
        """
        from portico_rx.adapters.job_trigger.webhook_trigger import WebhookTrigger

        def build(service):
            return [WebhookTrigger(job_creator=service, name="intake")]
        """,
    )
    process = subprocess.Popen(
        [*CLI, "run", str(app), "--db", str(db), "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        response = None
        for _ in range(400):
            assert process.poll() is None, process.communicate()[1]
            try:
                response = httpx.post(
                    f"http://127.0.0.1:{port}/webhooks/jobs",
                    json={"job_type": "report.build", "payload": {"day": "2025-01-01"}},
                    timeout=5,
                )
                break
            except httpx.TransportError:
                asyncio.run(asyncio.sleep(0.05))
        assert response is not None and response.status_code == 201, response
        health = httpx.get(f"http://127.0.0.1:{port}/health/triggers", timeout=5)
        assert health.json()["triggers"]["intake"]["is_running"] is True
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    [job] = asyncio.run(jobs_in(db))
    assert (job.job_type, job.payload) == ("report.build", {"day": "2025-01-01"})
    assert str(job.id) == response.json()["job_id"]


@pytest.mark.parametrize(
    "setup, args, message",
    [
        ("none", ["run", "missing.py"], "does not exist"),
        ("empty", ["run", "empty.py"], "defines no triggers and no handlers"),
        ("corrupt", ["run", str(QUICKSTART), "--db", "corrupt.db"], "not a valid database"),
        ("none", ["jobs", "--db", "nowhere.db"], "no job queue at 'nowhere.db'"),
        ("empty", ["worker", "empty.py", "--duration", "1"], "defines no handlers"),
    ],
)
def test_bad_input_is_one_clear_line_not_a_traceback(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    setup: str,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    if setup == "empty":
        write(tmp_path / "empty.py", "x = 1\n")
    if setup == "corrupt":
        (tmp_path / "corrupt.db").write_bytes(b"garbage" * 500)
    assert main(["--log-level", "error", *args]) == 1
    err = capsys.readouterr().err
    assert message in err and err.startswith("error:")
    assert "Traceback" not in err
    assert not (tmp_path / "nowhere.db").exists()


def test_bad_input_from_the_real_command_is_one_line(tmp_path: Path) -> None:
    done = cli("run", "missing.py", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("error: app file 'missing.py' does not exist")
    assert len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "portico.db").exists()


def test_a_taken_port_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = str(taken.getsockname()[1])
        code = main(["--log-level", "error", "run", str(QUICKSTART), "--port", busy])
    assert code == 1
    err = capsys.readouterr().err
    assert f"127.0.0.1:{busy} did not start" in err and "--port" in err


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(QUICKSTART), "--duration", "-1"])
    assert exit_info.value.code == 2
    assert "positive" in capsys.readouterr().err


async def test_app_file_conventions(tmp_path: Path) -> None:
    """build(service) (sync or async), a triggers list, or module-level triggers."""
    service = prx.JobService(SQLiteJobQueue(tmp_path / "conv.db"))
    files = {
        "async_build.py": """
            import reactivex, portico_rx as prx
            async def build(service):
                return prx.PipelineTrigger(reactivex.never(), job_creator=service, name="a")
            """,
        "listed.py": """
            import reactivex, portico_rx as prx
            from portico_rx.testing import RecordingJobCreator
            triggers = [prx.PipelineTrigger(reactivex.never(), RecordingJobCreator(), name="b")]
            """,
        "module_level.py": """
            import reactivex, portico_rx as prx
            from portico_rx.testing import RecordingJobCreator
            one = prx.PipelineTrigger(reactivex.never(), RecordingJobCreator(), name="c")
            two = prx.PipelineTrigger(reactivex.never(), RecordingJobCreator(), name="d")
            """,
    }
    names = {}
    for file, code in files.items():
        loaded = await load_app_file(write(tmp_path / file, code), service)
        names[file] = [getattr(t, "name", "") for t in loaded.triggers]
    assert names == {"async_build.py": ["a"], "listed.py": ["b"], "module_level.py": ["c", "d"]}
    built = await load_app_file(write(tmp_path / "built.py", files["async_build.py"]), service)
    assert built.triggers[0].job_creator is service  # type: ignore[attr-defined]

    bad = write(tmp_path / "bad.py", "triggers = [42]\nhandlers = {'a.b': 3}\n")
    with pytest.raises(prx.ConfigurationError, match="not a JobTrigger"):
        await load_app_file(bad, service)


def test_help_lists_the_commands_and_the_db_default_from_env(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("run", "worker", "jobs"):
        assert command in out
    monkeypatch.setenv("PORTICO_DB", "from-env.db")
    with pytest.raises(SystemExit):
        main(["jobs", "--help"])
    assert "from-env.db" in capsys.readouterr().out


def test_corrupt_queue_file_is_left_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "keep.db"
    db.write_bytes(b"not sqlite" * 100)
    before = db.read_bytes()
    assert main(["--log-level", "error", "run", str(QUICKSTART), "--db", str(db)]) == 1
    assert db.read_bytes() == before
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(db).execute("SELECT 1 FROM jobs")


def test_worker_visibility_timeout_sets_the_lease_its_jobs_get(tmp_path: Path) -> None:
    """``portico-rx worker --visibility-timeout 2`` is SIGKILLed in a blocking handler:
    two seconds later another worker may claim the job; bad values are refused."""
    db = tmp_path / "lease.db"
    blocked = tmp_path / "blocked"
    app = write(
        tmp_path / "blocking_app.py",
        f"""
        import asyncio
        from pathlib import Path

        async def hang(job):
            Path({str(blocked)!r}).touch()
            await asyncio.Event().wait()

        handlers = {{"hang": hang}}
        """,
    )

    async def enqueue() -> None:
        async with SQLiteJobQueue(db) as queue:
            await prx.JobService(queue).create_job("hang", {})

    asyncio.run(enqueue())
    signal_when(
        ["worker", str(app), "--db", str(db), "--visibility-timeout", "2", "--no-live"],
        blocked.exists,
        signal.SIGKILL,  # no complete, no fail
        tmp_path,
    )

    async def claim_after(seconds: float) -> prx.Job | None:
        await asyncio.sleep(seconds)
        async with SQLiteJobQueue(db) as queue:
            return await queue.dequeue(["default"])

    assert asyncio.run(claim_after(0)) is None  # its lease is still running
    again = asyncio.run(claim_after(2.2))
    assert again is not None and again.job_type == "hang" and again.attempts == 2
    refused = cli("worker", str(app), "--db", str(db), "--visibility-timeout", "0", cwd=tmp_path)
    assert refused.returncode == 2 and "'0': use a positive number of seconds" in refused.stderr


def test_run_consumes_the_queues_its_triggers_create_into(tmp_path: Path) -> None:
    """``portico-rx run`` with a FileTrigger (default queue ``file_processing``) and no
    ``--queue``: the file's job is processed, not left pending."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "report.csv").write_text("a,b\n")
    app = write(
        tmp_path / "files_app.py",
        f"""
        from portico_rx.adapters.job_trigger.file_trigger import FileTrigger

        def build(service):
            return FileTrigger(service, {str(inbox)!r}, settle=0.01, include_existing=True)

        async def process(job):
            return {{"processed": job.payload["file_path"]}}

        handlers = {{"file.process": process}}
        """,
    )
    done = cli("run", str(app), "--duration", "2", "--port", port(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [job] = asyncio.run(jobs_in(tmp_path / "portico.db"))
    assert job.queue_name == "file_processing"
    assert job.status is JobStatus.COMPLETED, job
    assert job.result == {"processed": str((inbox / "report.csv").resolve())}
