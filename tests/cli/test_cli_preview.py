"""``portico-rx preview FILE.py --days N`` as a user runs it: the runs of the app's schedules,
checked against a minute-by-minute reading of the cron expressions; nothing created."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

COMMAND = str(Path(sys.executable).with_name("portico-rx"))
APP = """
from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger

def build(service):
    return [
        ScheduleTrigger(job_creator=service, name="ops", schedules=[
            ScheduleConfig(cron="30 9 * * 1-5", tz="Europe/Paris", name="morning",
                           job_type="report.daily", queue_name="reports"),
            ScheduleConfig(cron="0 */6 * * *", name="six", job_type="tick"),
        ]),
        ScheduleTrigger(job_creator=service, name="billing", schedules=[
            ScheduleConfig(cron="15 2 1 * *", tz="America/New_York", name="monthly",
                           job_type="invoice.run"),
        ]),
    ]
"""
START = datetime(2025, 3, 20, tzinfo=UTC)  # the window crosses the EU and US DST changes
PARIS, NEW_YORK = ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York")


def portico(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COMMAND, "--log-level", "warning", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def expected(days: int) -> list[tuple[datetime, str]]:
    """Every minute of the window, read by hand against the three expressions."""
    found = []
    minute = START
    while minute < START + timedelta(days=days):
        paris, new_york = minute.astimezone(PARIS), minute.astimezone(NEW_YORK)
        if paris.weekday() < 5 and (paris.hour, paris.minute) == (9, 30):
            found.append((minute, "ops:morning"))
        if minute.hour % 6 == 0 and minute.minute == 0:
            found.append((minute, "ops:six"))
        if (new_york.day, new_york.hour, new_york.minute) == (1, 2, 15):
            found.append((minute, "billing:monthly"))
        minute += timedelta(minutes=1)
    return sorted(found)


def app(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(textwrap.dedent(APP))
    return path


def test_preview_lists_every_run_of_every_schedule_in_time_order(tmp_path: Path) -> None:
    args = ("preview", str(app(tmp_path)), "--days", "45", "--start", START.isoformat())
    done = portico(*args, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    got = [
        (
            datetime.fromisoformat(r["scheduled_at"]).astimezone(UTC),
            f"{r['trigger']}:{r['schedule']}",
        )
        for r in rows
    ]
    assert got == expected(45)  # in time order, none lost or doubled
    kinds = {(r["schedule"], r["job_type"], r["queue_name"]) for r in rows}
    assert kinds == {
        ("morning", "report.daily", "reports"),
        ("six", "tick", "default"),
        ("monthly", "invoice.run", "default"),
    }
    paris_times = {r["scheduled_at"][-6:] for r in rows if r["schedule"] == "morning"}
    assert paris_times == {"+01:00", "+02:00"}  # shown in the schedule's own zone
    assert "100%" in done.stderr  # 45 days: a progress bar
    assert not list(tmp_path.glob("*.db"))  # a preview opens no store


def test_the_table_shows_the_first_runs_and_a_count_per_schedule(tmp_path: Path) -> None:
    args = ("preview", str(app(tmp_path)), "--days", "3", "--start", START.isoformat())
    done = portico(*args, "--limit", "4", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    runs = expected(3)
    assert f"first 4 of {len(runs)} runs from 2025-03-20 00:00 to 2025-03-23 00:00" in done.stdout
    lines = [line for line in done.stdout.splitlines() if "│ ops " in line or "│ billing " in line]
    table, summary = lines[:4], lines[4:]
    cells = [[cell.strip() for cell in line.split("│")] for line in table]
    assert [f"{c[2]}:{c[3]}" for c in cells] == [n for _, n in runs[:4]]
    counts = {line.split("│")[2].strip(): int(line.split("│")[3]) for line in summary}
    assert counts == {
        "morning": sum(1 for _, n in runs if n == "ops:morning"),
        "six": sum(1 for _, n in runs if n == "ops:six"),
        "monthly": 0,
    }
    assert "preview" not in done.stderr  # a short window: no progress bar


def test_preview_of_a_file_without_schedules_is_a_clear_error(tmp_path: Path) -> None:
    plain = tmp_path / "plain.py"
    plain.write_text("handlers = {}\n")
    done = portico("preview", str(plain), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: {plain} has no ScheduleTrigger")
    naive = portico("preview", str(app(tmp_path)), "--start", "2025-03-01", cwd=tmp_path)
    assert naive.returncode == 1 and "give a time zone" in naive.stderr
    assert portico("preview", str(app(tmp_path)), "--days", "0", cwd=tmp_path).returncode == 2


def test_dense_and_sparse_schedules_merge_across_many_chunks() -> None:
    """An every-minute schedule needs many ``upcoming`` chunks; the sparse one's runs
    between them are neither lost nor repeated."""
    import portico_rx as prx
    from portico_rx.adapters.job_queue.memory import MemoryJobQueue
    from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
    from portico_rx.cli.preview import runs_between

    trigger = ScheduleTrigger(
        job_creator=prx.JobService(MemoryJobQueue()),
        name="mix",
        schedules=[
            ScheduleConfig(cron="* * * * *", name="minute", job_type="tick"),
            ScheduleConfig(cron="7 */5 * * *", name="sparse", job_type="tock"),
        ],
    )
    start = START + timedelta(seconds=30)  # mid-minute: the first run is the next minute
    end = start + timedelta(days=2)
    horizons: list[datetime] = []
    got = [(r.at, r.schedule) for r in runs_between(trigger, start, end, horizons.append)]
    minutes = [START + timedelta(minutes=m) for m in range(1, 2 * 24 * 60 + 1)]
    want = sorted(
        [(m, "minute") for m in minutes]
        + [(m, "sparse") for m in minutes if m.hour % 5 == 0 and m.minute == 7]
    )
    assert got == want
    assert len(horizons) >= 5 and horizons == sorted(horizons)  # many chunks, moving forward
