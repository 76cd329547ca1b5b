"""Notebook helpers: live panels, DataFrames of jobs and events, plots, re-run safety.

Imported lazily: pandas, ipywidgets and matplotlib load only when a name that needs
them is used (a missing one raises ``MissingDependencyError`` naming the ``notebook``
extra).

==================  =====================================================
``jobs_frame``      any job store / creator / trigger -> DataFrame (async)
``jobs_to_frame``   a list of ``Job`` -> DataFrame
``record``          subscribe to a source, keep its raw events (async)
``panel``           a live ipywidgets panel for a trigger
``registry``        one running trigger per name (cell re-run safety)
``timeline``        plot events -> jobs, and upcoming fire times
``simulate``        jobs a pipeline would create, in virtual time
``diff``            jobs that appear / disappear / change between two pipelines
==================  =====================================================
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from portico_rx.notebook import controls as controls  # registers the presenter

if TYPE_CHECKING:  # what the lazy names are, for type checkers (the functions, where a
    # submodule has the same name: `from portico_rx.notebook import record` is the function)
    from portico_rx.frames import (
        JobHistory as JobHistory,
    )
    from portico_rx.frames import (
        jobs_frame as jobs_frame,
    )
    from portico_rx.frames import (
        jobs_to_frame as jobs_to_frame,
    )
    from portico_rx.notebook.plot import plot_upcoming as plot_upcoming
    from portico_rx.notebook.plot import timeline as timeline
    from portico_rx.notebook.record import record as record
    from portico_rx.notebook.registry import (
        TriggerRegistry as TriggerRegistry,
    )
    from portico_rx.notebook.registry import (
        in_notebook as in_notebook,
    )
    from portico_rx.notebook.registry import (
        registry as registry,
    )
    from portico_rx.notebook.simulate import diff as diff
    from portico_rx.notebook.simulate import simulate as simulate
    from portico_rx.notebook.widget import TriggerPanel as TriggerPanel
    from portico_rx.notebook.widget import panel as panel

_LAZY: dict[str, str] = {
    "JobHistory": "portico_rx.frames",
    "TriggerPanel": "portico_rx.notebook.widget",
    "TriggerRegistry": "portico_rx.notebook.registry",
    "diff": "portico_rx.notebook.simulate",
    "in_notebook": "portico_rx.notebook.registry",
    "jobs_frame": "portico_rx.frames",
    "jobs_to_frame": "portico_rx.frames",
    "panel": "portico_rx.notebook.widget",
    "plot_upcoming": "portico_rx.notebook.plot",
    "record": "portico_rx.notebook.record",
    "registry": "portico_rx.notebook.registry",
    "simulate": "portico_rx.notebook.simulate",
    "timeline": "portico_rx.notebook.plot",
}

__all__ = sorted(_LAZY)


_SAME_NAME = frozenset(name for name, module in _LAZY.items() if module == f"{__name__}.{name}")
"""Public names that are also a submodule's name (``record``, ``registry``, ``simulate``)."""


class _Package(types.ModuleType):
    """This package's module type: the import system sets each submodule it imports as
    an attribute of its package (``portico_rx.notebook.registry = <module>``), which
    would shadow the public name of the same name once any code imported the submodule
    (a started trigger imports ``registry``). A name in :data:`_SAME_NAME` keeps its
    public value, the submodule's object of that name (``from
    portico_rx.notebook.registry import TriggerRegistry`` still imports from the
    submodule: that goes through ``sys.modules``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SAME_NAME and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
for _name in _SAME_NAME:  # a submodule imported before the switch: the lazy name answers
    if isinstance(globals().get(_name), types.ModuleType):
        del globals()[_name]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'portico_rx.notebook' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
