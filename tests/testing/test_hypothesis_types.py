"""``st.from_type`` for the public models, through hypothesis' entry point
(``_portico_rx_plugins.hypothesis_types``), and the strategies importable where the
README says."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import portico_rx.testing
from portico_rx import Job, JobRequest, TriggerHealth
from portico_rx.testing import strategies

RunPython = Callable[..., subprocess.CompletedProcess[str]]  # the run_python fixture

DRAW_EACH_MODEL = """
from hypothesis import strategies as st
import portico_rx
from portico_rx import Job, JobRequest, TriggerHealth

for model in (JobRequest, Job, TriggerHealth):
    value = st.from_type(model).example()
    assert type(value) is model, value
    assert model.model_validate(value.model_dump()) == value
"""


def test_the_entry_point_is_declared(entry_points: dict[str, dict[str, str]]) -> None:
    assert entry_points["hypothesis"] == {
        "portico_rx": "_portico_rx_plugins.hypothesis_types:_hypothesis_setup_hook"
    }


def test_hypothesis_first_then_portico_rx(run_python: RunPython, tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        import hypothesis
        from _portico_rx_plugins.hypothesis_types import _RegisterOnImport
        assert not [m for m in sys.modules if m.startswith(("portico_rx", "pydantic"))]
        assert any(isinstance(f, _RegisterOnImport) for f in sys.meta_path)
        import portico_rx.models
        # registered when the module ran; the import hook is gone, the loader is the real one
        assert not any(isinstance(f, _RegisterOnImport) for f in sys.meta_path)
        assert type(portico_rx.models.__loader__).__name__ != "_RegisterAfterRun"
        assert portico_rx.models.__spec__.loader is portico_rx.models.__loader__
        assert "portico_rx.testing.strategies" not in sys.modules  # deferred until a draw
        """
    )
    done = run_python(["-c", code + DRAW_EACH_MODEL], tmp_path)
    assert done.returncode == 0, done.stderr


def test_portico_rx_first_then_hypothesis(run_python: RunPython, tmp_path: Path) -> None:
    code = "import portico_rx\nimport hypothesis\n" + DRAW_EACH_MODEL
    done = run_python(["-c", code], tmp_path)
    assert done.returncode == 0, done.stderr


def test_without_the_entry_point_from_type_cannot_build_a_job(
    run_python: RunPython, tmp_path: Path
) -> None:
    """The control: hypothesis alone cannot infer these models."""
    code = (
        "import os; os.environ['HYPOTHESIS_NO_PLUGINS'] = '1'\n"
        "from hypothesis import strategies as st\nfrom portico_rx import JobRequest\n"
        "st.from_type(JobRequest).example()\n"
    )
    done = run_python(["-c", code], tmp_path)
    assert done.returncode != 0
    assert "Could not resolve typing.Any" in done.stderr


@settings(max_examples=50)
@given(st.from_type(JobRequest), st.from_type(Job), st.from_type(TriggerHealth))
def test_drawn_models_are_valid_values(
    request: JobRequest, job: Job, health: TriggerHealth
) -> None:
    assert JobRequest.model_validate(request.model_dump()) == request
    assert Job.model_validate_json(job.model_dump_json()) == job
    assert TriggerHealth.model_validate(health.model_dump()) == health
    assert job.created_at.tzinfo is not None and health.errors_count >= 0


@settings(max_examples=30)
@given(strategies.jobs(status=st.just(prx_status := Job.model_fields["status"].default)))
def test_jobs_takes_a_status_strategy(job: Job) -> None:
    assert job.status == prx_status


def test_the_strategies_are_importable_from_portico_rx_testing() -> None:
    from portico_rx.testing import cron_expressions, event_streams, job_requests, jobs

    assert cron_expressions is strategies.cron_expressions
    assert (event_streams, job_requests, jobs) == (
        strategies.event_streams,
        strategies.job_requests,
        strategies.jobs,
    )
    for name in portico_rx.testing.__all__:
        assert getattr(portico_rx.testing, name) is not None
