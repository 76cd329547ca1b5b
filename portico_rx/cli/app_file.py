"""Loading a user's app file: the Python file ``portico-rx run`` / ``worker`` is given.

The conventions, checked in this order (the first that applies wins):

* ``build(service)`` — a function (sync or ``async``) called with the CLI's
  :class:`~portico_rx.kits.job.job_service.JobService` (over the ``--store`` job store);
  it returns a trigger or a list of triggers. Use this form: the triggers then create
  jobs in the CLI's queue.
* ``triggers`` — a module-level list of triggers.
* otherwise every module-level :class:`~portico_rx.ports.job_trigger.JobTrigger` object.

and, independently of the triggers:

* ``handlers`` — a dict ``{job_type: handler}`` run by a
  :class:`~portico_rx.kits.job.worker.JobWorker` (``run`` starts one in the same process
  unless ``--no-worker``; ``worker`` runs only this);
* ``routers`` — extra FastAPI routers to serve (e.g. ``webhook(...)`` sources used in
  pipelines); triggers with a ``router`` attribute are served automatically.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from portico_rx.errors import ConfigurationError
from portico_rx.kits.job.job_service import JobService
from portico_rx.ports.job_handler import JobHandler
from portico_rx.ports.job_trigger import JobTrigger

__all__ = ["AppFile", "check_app_path", "load_app_file"]


@dataclass
class AppFile:
    """What a loaded app file defines."""

    path: Path
    module: ModuleType
    triggers: list[JobTrigger] = field(default_factory=list)
    handlers: dict[str, Any] = field(default_factory=dict)
    routers: list[Any] = field(default_factory=list)


def check_app_path(path: str | Path) -> Path:
    """``path`` as a Path, if it names an existing ``.py`` file.

    Raises:
        ConfigurationError: it does not exist or is not a ``.py`` file.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(
            f"app file {str(path)!r} does not exist: pass the path of a Python file that "
            "defines build(service), a triggers list or handlers"
        )
    if path.suffix != ".py":
        raise ConfigurationError(f"app file {str(path)!r} is not a .py file")
    return path


def _import(path: Path) -> ModuleType:
    check_app_path(path)
    name = f"portico_app_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - .py files always have one
        raise ConfigurationError(f"app file {str(path)!r} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)  # let the file import its neighbours
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _as_triggers(value: Any, where: str) -> list[JobTrigger]:
    items = [value] if isinstance(value, JobTrigger) else value
    if not isinstance(items, Iterable) or isinstance(items, str | bytes | Mapping):
        raise ConfigurationError(
            f"{where} returned {value!r}: return a JobTrigger or a list of JobTriggers"
        )
    triggers = list(items)
    for item in triggers:
        if not isinstance(item, JobTrigger):
            raise ConfigurationError(
                f"{where} holds {item!r}, which is not a JobTrigger: use PipelineTrigger, "
                "ScheduleTrigger, WebhookTrigger … objects"
            )
    return triggers


def _handlers(module: ModuleType, path: Path) -> dict[str, Any]:
    handlers = getattr(module, "handlers", None)
    if handlers is None:
        return {}
    if not isinstance(handlers, Mapping):
        raise ConfigurationError(
            f"handlers in {str(path)!r} is {type(handlers).__name__}: use a dict "
            "{job_type: async function or JobHandler}"
        )
    for job_type, handler in handlers.items():
        if not (isinstance(handler, JobHandler) or callable(handler)):
            raise ConfigurationError(
                f"handlers[{job_type!r}] in {str(path)!r} is {handler!r}: use an async "
                "function taking the job, or a JobHandler"
            )
    return dict(handlers)


async def load_app_file(path: str | Path, service: JobService) -> AppFile:
    """Import ``path`` and collect its triggers, handlers and routers.

    Args:
        path: the Python file.
        service: passed to the file's ``build(service)``, if it has one.

    Returns:
        The :class:`AppFile`.

    Raises:
        ConfigurationError: the file is missing, or defines something of the wrong kind.
        Exception: whatever the file itself raises while importing or building.
    """
    file = Path(path)
    module = _import(file)
    build = getattr(module, "build", None)
    if callable(build):
        built = build(service)
        if inspect.isawaitable(built):
            built = await built
        triggers = _as_triggers(built if built is not None else [], f"build() in {file}")
    elif hasattr(module, "triggers"):
        triggers = _as_triggers(module.triggers, f"triggers in {file}")
    else:
        triggers = [value for value in vars(module).values() if isinstance(value, JobTrigger)]
    routers = list(getattr(module, "routers", None) or [])
    return AppFile(
        path=file,
        module=module,
        triggers=triggers,
        handlers=_handlers(module, file),
        routers=routers,
    )
