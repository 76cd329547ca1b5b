"""The webhook benchmark runs (tiny) and prints its ratio lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_webhooks.py"


def run(*options: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", *options],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_bench_webhooks_quick_prints_ratios() -> None:
    out = run()
    for mode in ("trigger", "trigger+sqlite"):
        assert f"paired median throughput ratio {mode}/bare:" in out
        assert f"paired median p99 ratio {mode}/bare:" in out
        assert f"paired median CPU ratio {mode}/bare:" in out


def test_bench_webhooks_profile_prints_where_the_time_goes() -> None:
    out = run("--profile")
    assert "tottime" in out and "webhook_trigger.py" in out
    assert "where the CPU goes" in out and "HMAC signature check" in out


def test_bench_webhooks_served_profile_includes_the_http_server() -> None:
    out = run("--profile-served")
    assert "served trigger:" in out and "where the CPU goes" in out
    assert "uvicorn/h11 HTTP parsing and protocol" in out


def test_bench_webhooks_in_process_prints_the_paired_cpu_ratio() -> None:
    out = run("--in-process")
    assert "paired median in-process CPU ratio bare/trigger:" in out
    assert "trigger    CPU us/request: median" in out
