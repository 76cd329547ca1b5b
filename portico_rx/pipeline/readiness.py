"""Sources with I/O announce themselves when subscribed: what a trigger awaits.

A source that opens a connection (a broker consumer) or a watcher (a folder) calls
:func:`announce` at the start of its subscribe function. Whoever subscribes inside
:func:`collect` learns which such sources its pipeline holds:

* a :class:`~portico_rx.pipeline.PipelineTrigger` awaits each announced source that
  offers ``wait_ready(timeout)`` before ``start()`` returns (a broker source connects
  and declares its queue, group or subscription first, so a wrong URL fails ``start()``
  and a message published right after it is not lost), and awaits ``wait_closed`` at
  ``stop()`` (the connection is closed before ``stop()`` returns);
* ``simulate()`` refuses them (``refuse=``): I/O cannot run in virtual time.

One mechanism for every trigger: the named queue triggers use it as a bare
``PipelineTrigger(sources.rabbitmq(...) ...)`` does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Protocol, runtime_checkable

from portico_rx.errors import ConfigurationError

__all__ = ["ConnectedSource", "announce", "collect"]


@runtime_checkable
class ConnectedSource(Protocol):
    """A source whose subscription connects before it can deliver."""

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until the latest subscription is connected and set up, or has failed
        (it then errors its observer); ``False`` when neither happened in ``timeout``."""

    async def wait_closed(self, timeout: float | None = None) -> Any:
        """Wait until every disposed subscription has closed its connection."""


class _Collecting:
    def __init__(self, refuse: str | None) -> None:
        self.sources: list[Any] = []
        self.refuse = refuse


_current: ContextVar[_Collecting | None] = ContextVar("portico_rx_announced", default=None)


def announce(source: Any) -> None:
    """Called by an I/O source when it is subscribed (before it starts any I/O).

    Raises:
        ConfigurationError: the subscriber refuses I/O sources (``simulate()``).
    """
    collecting = _current.get()
    if collecting is None:
        return
    if all(known is not source for known in collecting.sources):
        collecting.sources.append(source)
    if collecting.refuse is not None:
        raise ConfigurationError(f"{source!r} does I/O: {collecting.refuse}")


@contextlib.contextmanager
def collect(refuse: str | None = None) -> Iterator[list[Any]]:
    """Collect the sources announced while subscribing inside this block.

    Args:
        refuse: if given, :func:`announce` raises ``ConfigurationError`` with this advice.
    """
    collecting = _Collecting(refuse)
    token = _current.set(collecting)
    try:
        yield collecting.sources
    finally:
        _current.reset(token)
