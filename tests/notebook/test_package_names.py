"""``portico_rx.notebook``'s public names stay the functions once a submodule of the same
name is imported (a started trigger imports ``portico_rx.notebook.registry``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHECK = textwrap.dedent(
    """
    import asyncio
    import types

    import reactivex

    import portico_rx as prx
    from portico_rx.testing import RecordingJobCreator

    async def start_one() -> None:
        trigger = prx.PipelineTrigger(
            reactivex.never().pipe(prx.to_job("t")), job_creator=RecordingJobCreator(), name="t"
        )
        await trigger.start()
        await trigger.stop()

    asyncio.run(start_one())  # imports portico_rx.notebook.registry
    import portico_rx.notebook.record
    import portico_rx.notebook.simulate
    from portico_rx.notebook import record, registry, simulate
    from portico_rx.notebook.registry import TriggerRegistry
    from portico_rx.notebook.simulate import diff

    assert not isinstance(record, types.ModuleType), record
    assert not isinstance(simulate, types.ModuleType), simulate
    assert isinstance(registry, TriggerRegistry), registry
    assert record.__name__ == "record" and simulate.__name__ == "simulate"
    assert callable(diff)
    import portico_rx.notebook as notebook
    assert notebook.registry is registry and notebook.simulate is simulate
    print("ok")
    """
)


def test_same_named_submodules_do_not_shadow_the_public_names() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
