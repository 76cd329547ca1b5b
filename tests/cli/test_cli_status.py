"""The live status table: what an operator sees while ``portico-rx run`` runs."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest
import reactivex
from rich.console import Console

import portico_rx as prx
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.cli import commands
from portico_rx.cli.status import status_table
from portico_rx.kits.job.worker import JobWorker

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"


def render(table: object) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(table)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output


async def test_status_table_shows_trigger_and_worker_rows() -> None:
    queue = MemoryJobQueue()
    service = prx.JobService(queue)
    subject: reactivex.Subject[int] = reactivex.Subject()

    def payload(n: int) -> dict[str, int]:
        if n == 3:
            raise ValueError("three is bad")
        return {"n": n}

    trigger = prx.PipelineTrigger(
        subject.pipe(prx.to_job("count.up", payload=payload)), job_creator=service, name="counter"
    )

    async def handle(job: prx.Job) -> None:
        return None

    worker = JobWorker(queue, {"count.up": handle}, poll_interval=0.01)
    await trigger.start()
    await worker.start()
    for n in (1, 2, 3):
        subject.on_next(n)
    await trigger.stop()
    await worker.run_until_idle()
    text = render(status_table([trigger], [worker], title="demo"))
    await worker.stop()
    [trigger_row] = [line for line in text.splitlines() if "counter" in line]
    assert "PipelineTrigger" in trigger_row and "stopped" in trigger_row
    assert "count.up" in trigger_row  # the last job
    assert "three is bad" in trigger_row  # the last error
    cells = [cell.strip() for cell in trigger_row.split("│") if cell.strip()]
    assert cells[3:7] == ["3", "2", "1", "1"]  # events, jobs, errors, dead letters
    [worker_row] = [line for line in text.splitlines() if "JobWorker" in line]
    assert "2 done" in worker_row and "0 failed" in worker_row


async def test_run_with_a_live_display_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal, run keeps a live table on screen and prints the final one at exit."""
    screen = io.StringIO()
    monkeypatch.setattr(
        commands, "_console", lambda: Console(file=screen, force_terminal=True, width=160)
    )
    db = tmp_path / "live.db"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    code = await commands.run_app(
        str(QUICKSTART), store=str(db), duration=3.5, live=True, port=port
    )
    assert code == 0
    output = screen.getvalue()
    assert "welcome-emails" in output and "JobWorker" in output
    assert "\x1b[" in output  # drawn with terminal control codes
    async with SQLiteJobQueue(db) as queue:
        assert await queue.count() >= 1
