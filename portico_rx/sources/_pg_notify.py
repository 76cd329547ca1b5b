"""``pg_notify``: PostgreSQL ``LISTEN`` on a channel, one ``Notification`` per ``NOTIFY``."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from typing import Any

import reactivex
import structlog
from pydantic import BaseModel, ConfigDict
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from portico_rx.errors import ConfigurationError, TriggerStartError, require
from portico_rx.pipeline import clock
from portico_rx.pipeline.delivery import Delivery, deliver
from portico_rx.url_redaction import redact_url

__all__ = ["Notification", "asyncpg_dsn", "pg_notify"]

logger = structlog.get_logger("portico_rx.sources._pg_notify")

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

    Marble::

        NOTIFY:   --n1---n2------
        emitted:  --A----B-------

    Example:
        >>> from portico_rx import sources
        >>> wake = sources.pg_notify("postgresql://postgres@127.0.0.1/test", "items_pending")
    """
    target = asyncpg_dsn(dsn)
    if not isinstance(channel, str) or not _CHANNEL.match(channel):
        raise ConfigurationError(
            f"channel={channel!r}: use a plain identifier (letters, digits, '_'), e.g. 'jobs'"
        )

    def subscribe(
        observer: abc.ObserverBase[Notification],
        subscribe_scheduler: abc.SchedulerBase | None = None,
    ) -> abc.DisposableBase:
        asyncpg: Any = require("asyncpg", "db")
        sched = clock.resolve_scheduler(scheduler or subscribe_scheduler)
        loop = asyncio.get_running_loop()
        counter = itertools.count(1)
        state: dict[str, Any] = {"connection": None, "disposed": False}

        def on_notify(_connection: Any, pid: int, name: str, payload: str) -> None:
            if state["disposed"]:
                return
            number = next(counter)
            delivery = Delivery(
                source=f"pg_notify:{name}",
                seen_at=clock.now(sched),
                event_id=f"{pid}:{number}",
                attributes={"channel": name},
            )
            deliver(observer, Notification(channel=name, payload=payload, pid=pid), delivery)

        def on_lost(_connection: Any) -> None:
            if not state["disposed"]:
                observer.on_error(ConnectionError(f"LISTEN connection for {channel!r} was lost"))

        async def connect() -> None:
            try:
                connection = await asyncpg.connect(target)
            except Exception as exc:
                raise TriggerStartError(
                    f"cannot LISTEN on {channel!r}: PostgreSQL at "
                    f"{redact_url(target)!r} is not reachable ({type(exc).__name__}: {exc})"
                ) from exc
            if state["disposed"]:
                await connection.close()
                return
            state["connection"] = connection
            connection.add_termination_listener(on_lost)
            await connection.add_listener(channel, on_notify)
            logger.info("pg_listen_started", channel=channel)

        def connected(task: asyncio.Task[None]) -> None:
            if task.cancelled() or state["disposed"]:
                return
            error = task.exception()
            if isinstance(error, Exception):
                observer.on_error(error)

        task = loop.create_task(connect())
        task.add_done_callback(connected)

        async def close() -> None:
            with contextlib.suppress(BaseException):
                await task
            connection = state["connection"]
            if connection is not None:
                with contextlib.suppress(Exception):
                    connection.remove_termination_listener(on_lost)
                    await connection.remove_listener(channel, on_notify)
                with contextlib.suppress(Exception):
                    await connection.close(timeout=5)

        def dispose() -> None:
            state["disposed"] = True
            closing = loop.create_task(close())
            _closing.add(closing)
            closing.add_done_callback(_closing.discard)
            logger.info("pg_listen_stopped", channel=channel)

        return Disposable(dispose)

    return reactivex.create(subscribe)


_closing: set[asyncio.Task[None]] = set()
