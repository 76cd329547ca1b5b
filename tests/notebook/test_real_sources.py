"""record/replay with real components: a watched folder and a SQLite job store on disk."""

from __future__ import annotations

import asyncio
from pathlib import Path

from reactivex.scheduler import HistoricalScheduler

import portico_rx as prx
from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.notebook import jobs_frame, record
from portico_rx.notebook.simulate import simulate
from portico_rx.sources import files, replay
from portico_rx.testing import advance


async def test_record_real_files_then_replay_them_into_a_sqlite_store_once(
    tmp_path: Path,
) -> None:
    """Files written to a real folder are recorded; replaying the frame twice through a
    trigger into a SQLite file creates one job per file (keys from the recording)."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()

    async def write_files() -> None:
        await asyncio.sleep(0.05)
        for name in ("a.csv", "b.csv", "c.csv"):
            (inbox / name).write_text(f"rows for {name}\n")
            await asyncio.sleep(0.02)

    writer = asyncio.ensure_future(write_files())
    recorded = await record(files(inbox, patterns="*.csv", settle=0.05), count=3)
    await writer
    assert sorted(Path(p).name for p in recorded["path"]) == ["a.csv", "b.csv", "c.csv"]
    assert recorded["time"].is_monotonic_increasing
    for path, key, size in zip(recorded["path"], recorded["key"], recorded["size"], strict=True):
        assert key.startswith(f"{Path(path).name}:{size}:")  # relative path:size:mtime
    assert recorded["key"].is_unique

    queue = SQLiteJobQueue(tmp_path / "jobs.db")
    service = prx.JobService(job_queue=queue)
    for _ in range(2):  # the second replay finds every key in the store
        scheduler = HistoricalScheduler(initial_clock=recorded["time"].iloc[0].to_pydatetime())
        trigger = prx.PipelineTrigger(
            replay(recorded).pipe(
                prx.to_job("csv.import", payload=lambda e: {"file": Path(e.path).name})
            ),
            job_creator=service,
            name="imports",
            scheduler=scheduler,
            on_complete="stop",
        )
        await trigger.start()
        await advance(scheduler, by=5, step=0.5)
        await trigger.stop()
    frame = await jobs_frame(queue)
    await service.close()
    assert sorted(p["file"] for p in frame["payload"]) == ["a.csv", "b.csv", "c.csv"]
    assert frame["idempotency_key"].is_unique
    assert set(frame["idempotency_key"]) == {f"imports:csv.import:{k}" for k in recorded["key"]}
    expected = simulate(
        lambda ev: ev.pipe(prx.to_job("csv.import")), events=recorded, name="imports"
    )
    assert set(expected["idempotency_key"]) == set(frame["idempotency_key"])
