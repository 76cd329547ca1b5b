"""``pg_notify``: PostgreSQL ``LISTEN`` on a channel, one ``Notification`` per ``NOTIFY``."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from typing import Any

import reactivex
from pydantic import BaseModel, ConfigDict
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from portico_rx.errors import ConfigurationError, TriggerStartError, require
from portico_rx.logs import get_logger
from portico_rx.pipeline import clock
from portico_rx.pipeline.delivery import Delivery, deliver
from portico_rx.pipeline.readiness import announce
from portico_rx.url_redaction import redact_url

__all__ = ["Notification", "NotifySource", "asyncpg_dsn", "pg_notify"]

logger = get_logger("portico_rx.sources._pg_notify")

_CHANNEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")


class Notification(BaseModel):
    """One ``NOTIFY``.

    Attributes:
        channel: the channel.
        payload: the payload string ('' when none was given).
        pid: the server process id of the notifying session.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    channel: str
    payload: str
    pid: int


def asyncpg_dsn(dsn: object) -> str:
    """A ``postgresql://`` DSN for asyncpg from a DSN or an SQLAlchemy URL / engine.

    Raises:
        ConfigurationError: not a PostgreSQL DSN.
    """
    url = getattr(dsn, "url", dsn)
    if not isinstance(url, str):
        render = getattr(url, "render_as_string", None)
        if render is None:
            raise ConfigurationError(
                f"dsn={dsn!r}: use a PostgreSQL DSN such as 'postgresql://user@host/db'"
            )
        url = render(hide_password=False)
    assert isinstance(url, str)
    scheme, _, rest = url.partition("://")
    if not rest or scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise ConfigurationError(
            f"dsn={redact_url(url)!r}: LISTEN/NOTIFY needs PostgreSQL; use a DSN such as "
            "'postgresql://user@host/db'"
        )
    return f"postgresql://{rest}"


def pg_notify(
    dsn: Any, channel: str, scheduler: abc.SchedulerBase | None = None
) -> Observable[Notification]:
    """Listen on a PostgreSQL channel and emit a :class:`Notification` per ``NOTIFY``.

    Notifications are not durable (a ``NOTIFY`` sent while nobody listens is gone), so
    use them to wake a poller early (``DatabasePollingTrigger(notify_channel=...)``), not
    as the only record of work. The connection is opened on subscribe (in the
    background) and closed on dispose; losing it ends the stream with an error, so a
    trigger restarts it with backoff.

    Args:
        dsn: a PostgreSQL DSN, an SQLAlchemy URL such as ``postgresql+asyncpg://...``, or
            an engine.
        channel: the channel name (a plain identifier).
        scheduler: scheduler for event times (default the running loop).

    Returns:
        A cold observable of :class:`Notification`.

    Raises:
        ConfigurationError: at once, for a DSN that is not PostgreSQL or a bad channel.
        MissingDependencyError: at once, when asyncpg is not installed (extra ``db``).

    Marble::

        NOTIFY:   --n1---n2------
        emitted:  --A----B-------

    Example:
        >>> from portico_rx import sources
        >>> wake = sources.pg_notify("postgresql://postgres@127.0.0.1/test", "items_pending")
    """
    require("asyncpg", "db")  # a missing extra fails here, not on subscribe
    target = asyncpg_dsn(dsn)
    if not isinstance(channel, str) or not _CHANNEL.match(channel):
        raise ConfigurationError(
            f"channel={channel!r}: use a plain identifier (letters, digits, '_'), e.g. 'jobs'"
        )

    return NotifySource(target, channel, scheduler)


class NotifySource(reactivex.Observable[Notification]):
    """What :func:`pg_notify` returns: a cold observable of :class:`Notification`; each
    subscription runs one :class:`_Listener` on its own connection."""

    def __init__(self, dsn: str, channel: str, scheduler: abc.SchedulerBase | None) -> None:
        super().__init__(self._subscribe_listener)
        self.dsn = dsn
        self.channel = channel
        self._scheduler = scheduler

    def __repr__(self) -> str:
        return f"NotifySource({redact_url(self.dsn)!r}, channel={self.channel!r})"

    def _subscribe_listener(
        self, observer: abc.ObserverBase[Notification], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        announce(self)  # an I/O source (pipeline.readiness)
        listener = _Listener(self, observer, scheduler)
        return Disposable(listener.dispose)


class _Listener:
    """One subscription of a :class:`NotifySource`: a connection opened in the background
    that runs ``LISTEN`` on the channel until disposed (then closed, also in the background)."""

    def __init__(
        self,
        source: NotifySource,
        observer: abc.ObserverBase[Notification],
        scheduler: abc.SchedulerBase | None,
    ) -> None:
        self.asyncpg: Any = require("asyncpg", "db")
        self.dsn = source.dsn
        self.channel = source.channel
        self.observer = observer
        self.scheduler = clock.resolve_scheduler(source._scheduler or scheduler)
        self.loop = asyncio.get_running_loop()
        self.counter = itertools.count(1)
        self.connection: Any = None
        self.disposed = False
        # one bound method each, so the listener removed is the one added
        self._notify_callback = self._on_notify
        self._lost_callback = self._on_lost
        self._task = self.loop.create_task(self._connect())
        self._task.add_done_callback(self._connected)

    def _on_notify(self, _connection: Any, pid: int, name: str, payload: str) -> None:
        if self.disposed:
            return
        number = next(self.counter)
        delivery = Delivery(
            source=f"pg_notify:{name}",
            seen_at=clock.now(self.scheduler),
            event_id=f"{pid}:{number}",
            attributes={"channel": name},
        )
        deliver(self.observer, Notification(channel=name, payload=payload, pid=pid), delivery)

    def _on_lost(self, _connection: Any) -> None:
        if not self.disposed:
            self.observer.on_error(
                ConnectionError(f"LISTEN connection for {self.channel!r} was lost")
            )

    async def _connect(self) -> None:
        try:
            connection = await self.asyncpg.connect(self.dsn)
        except Exception as exc:
            raise TriggerStartError(
                f"cannot LISTEN on {self.channel!r}: PostgreSQL at "
                f"{redact_url(self.dsn)!r} is not reachable ({type(exc).__name__}: {exc})"
            ) from exc
        if self.disposed:
            await connection.close()
            return
        self.connection = connection
        connection.add_termination_listener(self._lost_callback)
        await connection.add_listener(self.channel, self._notify_callback)
        logger.info("pg_listen_started", channel=self.channel)

    def _connected(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self.disposed:
            return
        error = task.exception()
        if isinstance(error, Exception):
            self.observer.on_error(error)

    async def _close(self) -> None:
        with contextlib.suppress(BaseException):
            await self._task
        connection = self.connection
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.remove_termination_listener(self._lost_callback)
                await connection.remove_listener(self.channel, self._notify_callback)
            with contextlib.suppress(Exception):
                await connection.close(timeout=5)

    def dispose(self) -> None:
        """Stop emitting at once; unlisten and close the connection in the background."""
        self.disposed = True
        closing = self.loop.create_task(self._close())
        _closing.add(closing)
        closing.add_done_callback(_closing.discard)
        logger.info("pg_listen_stopped", channel=self.channel)


_closing: set[asyncio.Task[None]] = set()
