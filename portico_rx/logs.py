"""The library's loggers: standard ``logging`` by default, the user's structlog when set up.

Every module logs through ``logger = get_logger("portico_rx.<area>")`` and calls it the
structlog way: ``logger.info("job_created", job_id=..., queue_name=...)``,
``logger.bind(trigger=name)``.

Where an event goes is decided at each call, so configuring after ``import portico_rx``
works:

* **structlog configured** (``structlog.configure(...)`` was called — the ``portico-rx``
  command does, for its console): the event goes to ``structlog.get_logger(name)`` and
  obeys that configuration (processors, renderer, level filter, logger factory).
* **otherwise** the event is a record of the standard logger of the same name
  (``logging.getLogger("portico_rx.pipeline.sink")``): level, handlers, filters,
  propagation and formatters are the application's ``logging`` configuration. Left
  unconfigured, Python drops info and debug and writes warnings and errors to stderr;
  nothing ever goes to stdout. The record's message reads ``event key=value ...``; the
  event name and each field are also record attributes (``record.event``,
  ``record.job_id``), so JSON formatters can emit them as fields (``docs/logging.md``).

structlog is not imported here: ``import structlog`` loads rich (for its console
tracebacks) when rich is installed, and ``import portico_rx`` must stay free of console and
UI libraries. An application that configures structlog has imported it already.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

__all__ = ["Logger", "get_logger"]

# LogRecord's own attributes: a field with one of these names is stored as ``<name>_``.
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}
_BARE = re.compile(r"[^\s=\"']+")
_PLAIN_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
}


def _configured_structlog() -> Any:
    """The structlog module if the application configured it, else ``None``."""
    module = sys.modules.get("structlog")
    if module is not None and module.is_configured():
        return module
    return None


def _text(value: Any) -> str:
    if isinstance(value, str) and _BARE.fullmatch(value):
        return value
    return repr(value)


def render(event: str, fields: dict[str, Any]) -> str:
    """``event key=value ...``: the message of a standard-logging record."""
    if not fields:
        return event
    return event + "".join(f" {key}={_text(value)}" for key, value in fields.items())


class Logger:
    """A structlog-style logger over the standard logger ``name`` (see the module doc)."""

    __slots__ = ("_context", "_name", "_std", "_structlog")

    def __init__(self, name: str, context: dict[str, Any] | None = None) -> None:
        self._name = name
        self._context: dict[str, Any] = context or {}
        self._std = logging.getLogger(name)
        self._structlog: Any = None  # structlog.get_logger(name, **context), made on first use

    @property
    def name(self) -> str:
        return self._name

    def bind(self, **values: Any) -> Logger:
        """A logger that adds ``values`` to every event (the structlog ``bind``)."""
        return Logger(self._name, {**self._context, **values})

    def is_enabled_for(self, level: int) -> bool:
        """Whether an event at ``level`` (a ``logging`` level number) would be kept."""
        module = _configured_structlog()
        if module is None:
            return self._std.isEnabledFor(level)
        check = getattr(self._via_structlog(module), "is_enabled_for", None)
        return True if check is None else bool(check(level))

    def debug(self, event: str, **fields: Any) -> None:
        self._emit("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, fields)

    warn = warning

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """An error with the exception being handled (``exc_info=True`` by default)."""
        fields.setdefault("exc_info", True)
        self._emit("exception", event, fields)

    def critical(self, event: str, **fields: Any) -> None:
        self._emit("critical", event, fields)

    def _via_structlog(self, module: Any) -> Any:
        proxy = self._structlog
        if proxy is None:
            proxy = self._structlog = module.get_logger(self._name, **self._context)
        return proxy

    def _emit(self, method: str, event: str, fields: dict[str, Any]) -> None:
        module = _configured_structlog()
        if module is not None:
            getattr(self._via_structlog(module), method)(event, **fields)
            return
        level = _PLAIN_LEVELS[method]
        std = self._std
        if not std.isEnabledFor(level):
            return
        if self._context:
            fields = {**self._context, **fields}
        exc_info = fields.pop("exc_info", None)
        stack_info = bool(fields.pop("stack_info", False))
        extra = {(f"{key}_" if key in _RESERVED else key): value for key, value in fields.items()}
        extra["event"] = event
        # stacklevel 3: the record names the library function that logged, not this module.
        std.log(
            level,
            render(event, fields),
            exc_info=exc_info,
            stack_info=stack_info,
            stacklevel=3,
            extra=extra,
        )


def get_logger(name: str) -> Logger:
    """The logger for ``name`` (``"portico_rx.<area>"``); see the module doc for routing."""
    return Logger(name)
