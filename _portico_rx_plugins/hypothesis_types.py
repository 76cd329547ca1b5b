"""Hypothesis entry point: ``st.from_type`` for portico_rx's public models.

``st.from_type(JobRequest)``, ``st.from_type(Job)`` and ``st.from_type(TriggerHealth)``
(and ``builds(...)`` / ``@given`` inference over annotations with those types) draw valid
values from :mod:`portico_rx.testing.strategies`.

Hypothesis calls :func:`_hypothesis_setup_hook` on ``import hypothesis`` in every
project where portico_rx is installed. The hook does not import portico_rx: if
``portico_rx.models`` is already imported, it registers the strategies at once; otherwise
it waits for that import (a one-shot import hook that registers right after the module
has run, then removes itself). The module that builds the strategies is imported
when hypothesis first resolves one of the types.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

__all__ = ["MODELS_MODULE", "register_strategies"]

MODELS_MODULE = "portico_rx.models"


def register_strategies(models: ModuleType) -> None:
    """Register the strategies for the models of ``models`` (``portico_rx.models``).

    Each is registered as a function that hypothesis calls when it first resolves the
    type, so registering imports nothing (a strategy object would be materialised at
    once, importing :mod:`portico_rx.testing.strategies` while portico_rx is still
    being imported).
    """
    from hypothesis import strategies as st

    def ours() -> Any:
        from portico_rx.testing import strategies

        return strategies

    st.register_type_strategy(models.JobRequest, lambda _: ours().job_requests())
    st.register_type_strategy(models.Job, lambda _: ours().jobs())
    st.register_type_strategy(models.TriggerHealth, lambda _: ours().trigger_healths())


class _RegisterAfterRun(importlib.abc.Loader):
    """Runs the real loader, then registers (the module's loader stays the real one)."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        module.__loader__ = self.loader
        self.loader.exec_module(module)
        register_strategies(module)


class _RegisterOnImport(importlib.abc.MetaPathFinder):
    """Finds ``portico_rx.models`` once, through the other finders, wrapping its loader."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname != MODELS_MODULE:
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec: ModuleSpec | None = None if find is None else find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _RegisterAfterRun(spec.loader)
        return spec


def _hypothesis_setup_hook() -> None:
    models = sys.modules.get(MODELS_MODULE)
    if models is not None:
        register_strategies(models)
    elif not any(isinstance(finder, _RegisterOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterOnImport())
