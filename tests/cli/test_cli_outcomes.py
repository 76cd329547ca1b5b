"""``portico-rx outcomes`` against a running ``portico-rx run``: real processes, real HTTP."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from portico_rx.cli import main

CLI = [sys.executable, "-m", "portico_rx.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_outcomes_tells_created_from_duplicate_for_a_running_app(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
            from portico_rx.adapters.job_trigger.webhook_trigger import WebhookTrigger

            def build(service):
                return [WebhookTrigger(job_creator=service, name="intake")]
            """
        )
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [*CLI, "run", str(app), "--db", str(tmp_path / "o.db"), "--port", str(port), "--no-live"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        body = {"job_type": "report.build", "payload": {"day": 1}}
        for _ in range(400):
            assert process.poll() is None, process.communicate()[1]
            try:
                first = httpx.post(
                    f"{url}/webhooks/jobs", json=body, headers={"Idempotency-Key": "d-1"}
                )
                break
            except httpx.TransportError:
                time.sleep(0.05)
        again = httpx.post(f"{url}/webhooks/jobs", json=body, headers={"Idempotency-Key": "d-1"})
        assert first.json()["job_id"] == again.json()["job_id"]
        as_json = subprocess.run(
            [*CLI, "outcomes", "--url", url, "--json"], capture_output=True, text=True, check=True
        )
        records = [json.loads(line) for line in as_json.stdout.splitlines()]
        assert [(r["trigger"], r["outcome"], r["event_id"]) for r in records] == [
            ("intake", "created", "d-1"),
            ("intake", "duplicate", "d-1"),
        ]
        assert records[0]["job_id"] == records[1]["job_id"] == first.json()["job_id"]
        table = subprocess.run(
            [*CLI, "outcomes", "--url", url, "--outcome", "duplicate"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "intake: created 1, duplicate 1" in table.stdout
        assert "duplicate" in table.stdout and "d-1" in table.stdout
        unknown = subprocess.run(
            [*CLI, "outcomes", "--url", url, "--trigger", "nope"], capture_output=True, text=True
        )
        assert unknown.returncode == 1 and "no trigger 'nope'" in unknown.stderr
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err


def test_a_schedule_only_app_run_with_serve_answers_outcomes(tmp_path: Path) -> None:
    """No trigger has routes: ``run --serve`` still serves ``/outcomes`` (and health)."""
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
            from portico_rx.adapters.job_trigger.schedule_trigger import (
                ScheduleConfig, ScheduleTrigger,
            )

            def build(service):
                every = ScheduleConfig(name="tick", every=1, job_type="tick.run")
                return [ScheduleTrigger(service, [every], name="clock")]
            """
        )
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [*CLI, "run", str(app), "--db", str(tmp_path / "s.db"), "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--no-live", "--serve"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        records: list[dict[str, str]] = []
        for _ in range(400):
            assert process.poll() is None, process.communicate()[1]
            shown = subprocess.run(
                [*CLI, "outcomes", "--url", url, "--json"], capture_output=True, text=True
            )
            records = [json.loads(line) for line in shown.stdout.splitlines()]
            if records:
                break
            time.sleep(0.05)
        assert records and {(r["trigger"], r["outcome"]) for r in records} == {("clock", "created")}
        assert httpx.get(f"{url}/health/triggers").json()["status"] == "ok"
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err


def test_outcomes_without_a_running_app_is_one_clear_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["outcomes", "--url", f"http://127.0.0.1:{free_port()}"])
    assert code == 1
    err = capsys.readouterr().err
    assert "no app answers at" in err and "portico-rx run" in err
