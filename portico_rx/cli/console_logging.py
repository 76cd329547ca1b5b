"""structlog set-up for the command line: readable lines on stderr, filtered by level."""

from __future__ import annotations

import logging
import sys

import structlog

from portico_rx.errors import ConfigurationError

__all__ = ["LEVELS", "configure_console_logging"]

LEVELS = ("debug", "info", "warning", "error")


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is *now* (rich's live display swaps it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_console_logging(level: str = "info") -> None:
    """Route portico_rx's structlog events to stderr as ``time level event key=value``.

    Args:
        level: the least severe level shown: ``debug``, ``info`` (default), ``warning``
            or ``error``.

    Raises:
        ConfigurationError: ``level`` is not one of those.
    """
    if level not in LEVELS:
        raise ConfigurationError(f"log level {level!r}: use one of {', '.join(LEVELS)}")
    stream = _CurrentStderr()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
            structlog.dev.ConsoleRenderer(colors=stream.isatty()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
