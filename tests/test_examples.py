"""examples/quickstart.py builds its triggers without writing into the current folder."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from types import ModuleType

import pytest

import portico_rx as prx
from portico_rx.adapters.job_trigger.file_trigger import FileTrigger

QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart.py"


def load_quickstart() -> ModuleType:
    spec = importlib.util.spec_from_file_location("quickstart_under_test", QUICKSTART)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def inbox_of(triggers: list[prx.JobTrigger]) -> Path:
    [uploads] = [t for t in triggers if isinstance(t, FileTrigger)]
    return uploads.watch_path


def test_the_inbox_is_a_temporary_folder_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QUICKSTART_INBOX", raising=False)
    quickstart = load_quickstart()
    inbox = inbox_of(quickstart.build(prx.JobService(prx.MemoryJobQueue())))
    assert list(tmp_path.iterdir()) == []  # nothing written where it runs
    assert inbox.is_dir() and inbox.parent == Path(tempfile.gettempdir())
    assert inbox.name.startswith("portico-quickstart-inbox-")
    for folder in quickstart._temporary:
        folder.cleanup()
    assert not inbox.exists()


def test_quickstart_inbox_names_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUICKSTART_INBOX", str(tmp_path / "drop" / "here"))
    inbox = inbox_of(load_quickstart().build(prx.JobService(prx.MemoryJobQueue())))
    assert inbox == tmp_path / "drop" / "here" and inbox.is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["drop"]
