"""``portico-rx schedules backfill`` as a user runs it: a real subprocess, a real SQLite
file, the app file's own ScheduleTrigger."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue

CLI = [sys.executable, "-m", "portico_rx.cli", "--log-level", "error"]
APP = """
from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger

def build(service):
    return [ScheduleTrigger(job_creator=service, name="ops", schedules=[
        ScheduleConfig(cron="0 9 * * *", job_type="report.daily", queue_name="reports"),
        ScheduleConfig(cron="*/1 * * * *", job_type="tick"),
    ])]
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


async def keys_in(db: Path) -> list[str]:
    async with SQLiteJobQueue(db) as queue:
        return sorted(j.idempotency_key or "" for j in await queue.list(limit=1000))


async def test_backfill_previews_creates_and_twice_creates_nothing(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(APP))
    window = ["--schedule", "report.daily", "--start", "2025-03-01", "--end", "2025-03-04"]
    preview = cli("schedules", "backfill", str(app), *window, "--dry-run", cwd=tmp_path)
    assert preview.returncode == 0, preview.stderr
    assert "3 runs, 0 already in the store, would create 3" in preview.stdout
    assert not (tmp_path / "portico.db").exists() or await keys_in(tmp_path / "portico.db") == []

    done = cli("schedules", "backfill", str(app), *window, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "created 3, 0 failed" in done.stdout
    assert "3/3" in done.stdout  # the progress bar
    assert await keys_in(tmp_path / "portico.db") == [
        f"ops:report.daily:2025-03-0{d}T09:00:00Z" for d in (1, 2, 3)
    ]  # nothing of the every-minute schedule: it was paused during the backfill

    again = cli("schedules", "backfill", str(app), *window, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "3 runs, 3 already in the store, would create 0" in again.stdout
    assert len(await keys_in(tmp_path / "portico.db")) == 3


def test_an_unknown_schedule_names_the_schedules_there_are(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(APP))
    args = ["--schedule", "nope", "--start", "2025-03-01", "--end", "2025-03-02"]
    done = cli("schedules", "backfill", str(app), *args, cwd=tmp_path)
    assert done.returncode != 0
    assert "no schedule 'nope'" in done.stderr
    assert "ops:report.daily" in done.stderr
    bad = cli("schedules", "backfill", str(app), "--schedule", "tick", "--start", "soon",
              "--end", "2025-03-02", cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr
