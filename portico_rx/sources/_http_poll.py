"""``http_poll``: poll an HTTP resource and emit an ``HttpChange`` when it changes.

Polite by default: conditional requests (``If-None-Match`` from the last ``ETag``,
``If-Modified-Since`` from the last ``Last-Modified``), so an unchanged resource costs a
``304`` and no body; exponential backoff on network errors, 5xx and 429, honouring
``Retry-After``; one shared ``httpx.AsyncClient`` per host with a few connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import json
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import reactivex
from pydantic import BaseModel, ConfigDict
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from portico_rx.errors import ConfigurationError, require
from portico_rx.logs import get_logger
from portico_rx.pipeline import clock
from portico_rx.pipeline.delivery import Delivery, deliver
from portico_rx.pipeline.provenance import http_item_key, http_key
from portico_rx.pipeline.readiness import announce
from portico_rx.pipeline.retry import backoff
from portico_rx.url_redaction import redact_url

__all__ = [
    "ChangeDetector",
    "HttpChange",
    "HttpPollSource",
    "HttpPollStats",
    "check_interval",
    "check_url",
    "http_poll",
    "retry_after_seconds",
]

logger = get_logger("portico_rx.sources._http_poll")

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_CONNECTIONS_PER_HOST = 4
_MAX_RETRY_AFTER = 24 * 3600.0


class HttpChange(BaseModel):
    """A polled resource that changed (or, with ``items=``, one new item in it).

    Attributes:
        url: the polled URL.
        status_code: the response status.
        headers: the response headers (lower-case names).
        text: the response body as text.
        fingerprint: what identified this version: the body's SHA-256, the ``key=``
            value, or the new item's key.
        etag: the response ``ETag``, if any.
        last_modified: the response ``Last-Modified``, if any.
        item: with ``items=``: the new item; else ``None``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    status_code: int
    headers: dict[str, str]
    text: str
    fingerprint: str
    etag: str | None = None
    last_modified: str | None = None
    item: Any = None

    def json(self) -> Any:  # type: ignore[override]
        """The body parsed as JSON (raises ``ValueError`` if it is not JSON)."""
        return json.loads(self.text)


@dataclass
class HttpPollStats:
    """Counters of one poller, updated as it runs (read them for health and benchmarks)."""

    polls: int = 0
    completed: int = 0
    requests: int = 0
    not_modified: int = 0
    unchanged: int = 0
    changes: int = 0
    bytes_received: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_status: int | None = None
    last_error: str | None = None
    next_delay: float = 0.0


def check_url(url: object) -> str:
    """``url`` if it is an absolute http(s) URL with a host.

    Raises:
        ConfigurationError: naming the URL and the fix.
    """
    httpx = require("httpx", "http")
    if not isinstance(url, str):
        raise ConfigurationError(f"url={url!r}: use an http(s) URL string")
    try:
        parsed = httpx.URL(url)  # type: ignore[attr-defined]
    except Exception as exc:
        raise ConfigurationError(f"url={redact_url(url)!r} does not parse ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigurationError(
            f"url={redact_url(url)!r}: only http:// and https:// URLs with a host can be polled, "
            "e.g. 'https://api.example.com/items'"
        )
    return url


def check_interval(argument: str, value: object, minimum: float = 0.0) -> float:
    """Seconds from a number or ``timedelta``; must be finite and > ``minimum``.

    Raises:
        ConfigurationError: naming the argument, the value and the fix.
    """
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or seconds <= minimum
    ):
        raise ConfigurationError(
            f"{argument}={value!r}: use a finite number of seconds greater than {minimum:g} "
            "(or a timedelta), e.g. 30"
        )
    return float(seconds)


def retry_after_seconds(value: str | None, now_timestamp: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - now_timestamp
    if not math.isfinite(seconds):
        return None
    return min(_MAX_RETRY_AFTER, max(0.0, seconds))


class ChangeDetector:
    """Decides which responses are changes: the pure part of ``http_poll``.

    Whole-resource mode (``items`` is ``None``): ``seen(fingerprint)`` is a change when
    the fingerprint differs from the previous one. Items mode: each item whose key was
    not seen before is new; the memory of keys is bounded (``memory`` keys, oldest
    forgotten first).
    """

    def __init__(self, *, emit_initial: bool = True, memory: int = 10_000) -> None:
        self.emit_initial = emit_initial
        self.memory = memory
        self.last: str | None = None
        self._first = True
        self._keys: OrderedDict[str, None] = OrderedDict()

    def whole(self, fingerprint: str) -> bool:
        """``True`` when ``fingerprint`` is a change worth emitting."""
        first, self._first = self._first, False
        changed = fingerprint != self.last
        self.last = fingerprint
        return changed and (self.emit_initial or not first)

    def new_items(self, keys: Iterable[str]) -> list[str]:
        """The keys (in order, without repeats) that were not seen before."""
        first, self._first = self._first, False
        fresh: list[str] = []
        for key in keys:
            if key in self._keys:
                self._keys.move_to_end(key)
                continue
            self._keys[key] = None
            fresh.append(key)
            while len(self._keys) > self.memory:
                self._keys.popitem(last=False)
        return fresh if (self.emit_initial or not first) else []


class _ClientPool:
    """One ``httpx.AsyncClient`` per (event loop, origin), shared and reference counted."""

    def __init__(self) -> None:
        self._clients: dict[tuple[int, str], tuple[Any, int]] = {}

    def acquire(self, origin: str) -> Any:
        httpx: Any = require("httpx", "http")
        require("sniffio", "http")  # without it httpcore retries the import on every request
        key = (id(asyncio.get_running_loop()), origin)
        client, count = self._clients.get(key, (None, 0))
        if client is None or client.is_closed:
            client = httpx.AsyncClient(
                limits=httpx.Limits(
                    max_connections=_CONNECTIONS_PER_HOST,
                    max_keepalive_connections=_CONNECTIONS_PER_HOST,
                ),
                follow_redirects=True,
            )
            count = 0
        self._clients[key] = (client, count + 1)
        return client

    def release(self, origin: str, loop: asyncio.AbstractEventLoop) -> None:
        key = (id(loop), origin)
        client, count = self._clients.get(key, (None, 0))
        if client is None:
            return
        if count > 1:
            self._clients[key] = (client, count - 1)
            return
        del self._clients[key]
        if not loop.is_closed():
            task = loop.create_task(client.aclose())
            _closing.add(task)
            task.add_done_callback(_closing.discard)


_pool = _ClientPool()
_closing: set[asyncio.Task[Any]] = set()


def _default_item_key(item: Any) -> str:
    if isinstance(item, Mapping) and "id" in item:
        return str(item["id"])
    return hashlib.sha256(json.dumps(item, sort_keys=True, default=str).encode()).hexdigest()


def http_poll(
    url: str,
    every: float | timedelta,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
    auth: Any = None,
    timeout: float = 10.0,
    key: Callable[[Any], object] | None = None,
    items: Callable[[Any], Iterable[Any]] | None = None,
    item_key: Callable[[Any], object] = _default_item_key,
    emit_initial: bool = True,
    max_backoff: float = 300.0,
    stats: HttpPollStats | None = None,
    scheduler: abc.SchedulerBase | None = None,
) -> Observable[HttpChange]:
    """Poll ``url`` every ``every`` seconds; emit an :class:`HttpChange` when it changes.

    The first poll runs at subscribe. A response is a change when its fingerprint
    differs from the previous one: the SHA-256 of the body, or ``key(response)``. With
    ``items=`` the body is parsed as JSON and each item of ``items(body)`` whose
    ``item_key(item)`` was not seen before is emitted on its own (new entries of a feed
    since the last poll).

    Each event's delivery carries the idempotency key ``url:fingerprint`` (items:
    ``url:item:key``), so a restarted poller does not create a second job for a version
    (or item) it already handled. A body that returns to an earlier identical version
    has the same key and is deduplicated; give ``key=`` a version field if that matters.

    Failures never end the stream: network errors, 5xx and 429 are logged and counted in
    ``stats``, and the next poll waits ``every * 2**failures`` (at most
    ``max_backoff``), or the server's ``Retry-After`` if that is longer. The first
    success returns to ``every``.

    Args:
        url: an absolute http(s) URL.
        every: seconds (or a timedelta) between polls, > 0.
        method: HTTP method (default ``"GET"``).
        headers: request headers (default none).
        params: query parameters (default none).
        auth: anything ``httpx`` accepts as ``auth`` (default none).
        timeout: seconds per request (default 10).
        key: ``key(response) -> value``: the change fingerprint (default: body hash).
        items: ``items(json_body) -> iterable``: emit each new item (default: whole mode).
        item_key: ``item_key(item)``: identity of an item (default ``item["id"]``, else a
            hash of the item).
        emit_initial: emit the first response (or the first items) too (default ``True``).
        max_backoff: cap in seconds on the backoff after failures (default 300).
        stats: an :class:`HttpPollStats` to update (default: a private one).
        scheduler: scheduler for the intervals and event times (default the running loop).

    Returns:
        A cold observable of :class:`HttpChange`.

    Raises:
        ConfigurationError: at once, for a non-http(s) URL, a bad interval, timeout,
            backoff or method.

    Marble::

        polls:    --v1----v1(304)----v2----v2----v3--
        changes:  --A-----------------B-----------C---

    Example:
        >>> from portico_rx import sources, to_job
        >>> pipeline = sources.http_poll("https://api.example.com/status", every=30).pipe(
        ...     to_job("status.changed", payload=lambda c: {"fingerprint": c.fingerprint}))
    """
    url = check_url(url)
    interval = check_interval("every", every)
    timeout_s = check_interval("timeout", timeout)
    backoff_cap = check_interval("max_backoff", max_backoff)
    if backoff_cap < interval:
        raise ConfigurationError(
            f"max_backoff={max_backoff!r} is shorter than every={every!r}; "
            f"use at least {interval:g}"
        )
    request = _HttpRequest(
        url=url,
        verb=_check_method(method),
        headers=dict(headers or {}),
        params=dict(params or {}),
        auth=auth,
        timeout=timeout_s,
        origin=_origin_of(url),
    )
    detection = _Detection(key=key, items=items, item_key=item_key, emit_initial=emit_initial)
    return HttpPollSource(
        request,
        detection,
        interval=interval,
        backoff_cap=backoff_cap,
        stats=stats,
        scheduler=scheduler,
    )


def _check_method(method: object) -> str:
    """``method`` upper-cased; raises ConfigurationError unless it is an HTTP method."""
    verb = method.upper() if isinstance(method, str) else method
    if verb not in _METHODS:
        raise ConfigurationError(f"method={method!r}: use one of {', '.join(sorted(_METHODS))}")
    assert isinstance(verb, str)
    return verb


def _origin_of(url: str) -> str:
    """``scheme://host[:port]/``: the key of the client shared by the pollers of a host."""
    httpx: Any = require("httpx", "http")
    return str(httpx.URL(url).copy_with(path="/", query=None, fragment=None))


@dataclass(frozen=True)
class _HttpRequest:
    """The validated request of :func:`http_poll`."""

    url: str
    verb: str
    headers: dict[str, str]
    params: dict[str, Any]
    auth: Any
    timeout: float
    origin: str

    @property
    def shown(self) -> str:
        """The URL with its credentials hidden (for logs)."""
        return redact_url(self.url)


@dataclass(frozen=True)
class _Detection:
    """How :func:`http_poll` tells a change: ``key``, ``items``/``item_key``, ``emit_initial``."""

    key: Callable[[Any], object] | None
    items: Callable[[Any], Iterable[Any]] | None
    item_key: Callable[[Any], object]
    emit_initial: bool


class HttpPollSource(reactivex.Observable[HttpChange]):
    """What :func:`http_poll` returns: a cold observable of :class:`HttpChange`; each
    subscription runs one :class:`_HttpPoller`."""

    def __init__(
        self,
        request: _HttpRequest,
        detection: _Detection,
        *,
        interval: float,
        backoff_cap: float,
        stats: HttpPollStats | None,
        scheduler: abc.SchedulerBase | None,
    ) -> None:
        super().__init__(self._subscribe_poller)
        self.request = request
        self.detection = detection
        self.interval = interval
        self.backoff_cap = backoff_cap
        self.stats = stats
        self._scheduler = scheduler

    def __repr__(self) -> str:
        return f"HttpPollSource({self.request.shown!r}, every={self.interval:g})"

    def _subscribe_poller(
        self, observer: abc.ObserverBase[HttpChange], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        announce(self)  # an I/O source (pipeline.readiness)
        poller = _HttpPoller(self, observer, clock.resolve_scheduler(self._scheduler or scheduler))
        return Disposable(poller.dispose)


class _HttpPoller:
    """One subscription of an :class:`HttpPollSource`: a poll task with its own
    validators (``ETag`` / ``Last-Modified``), change detector and (unless ``stats=``
    was given) counters, on a client shared per origin."""

    def __init__(
        self,
        source: HttpPollSource,
        observer: abc.ObserverBase[HttpChange],
        scheduler: abc.SchedulerBase,
    ) -> None:
        self.source = source
        self.request = source.request
        self.detection = source.detection
        self.observer = observer
        self.scheduler = scheduler
        self.loop = asyncio.get_running_loop()
        self.counters = source.stats if source.stats is not None else HttpPollStats()
        self.client = _pool.acquire(self.request.origin)
        self.detector = ChangeDetector(emit_initial=self.detection.emit_initial)
        self.validators: dict[str, str] = {}
        self.shown = self.request.shown
        self._task = self.loop.create_task(self._run())
        self._task.add_done_callback(self._done)
        logger.info("http_poll_started", url=self.shown, every_s=source.interval)

    # -- responses -----------------------------------------------------------------------

    def _emit(self, response: Any, fingerprint: str, idempotency_key: str, item: Any) -> None:
        url = self.request.url
        change = HttpChange(
            url=url,
            status_code=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            text=response.text,
            fingerprint=fingerprint,
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            item=item,
        )
        self.counters.changes += 1
        delivery = Delivery(
            source=f"http:{url}",
            seen_at=clock.now(self.scheduler),
            event_id=fingerprint,
            idempotency_key=idempotency_key,
            attributes={"url": url, "status_code": response.status_code},
        )
        deliver(self.observer, change, delivery)

    def _handle(self, response: Any) -> None:
        if response.status_code == 304:
            self.counters.not_modified += 1
            return
        for header, validator in (
            ("etag", "If-None-Match"),
            ("last-modified", "If-Modified-Since"),
        ):
            value = response.headers.get(header)
            if value is not None:
                self.validators[validator] = value
        if self.detection.items is not None:
            self._handle_items(response, self.detection.items)
        else:
            self._handle_whole(response)

    def _handle_items(self, response: Any, items: Callable[[Any], Iterable[Any]]) -> None:
        url, item_key = self.request.url, self.detection.item_key
        entries = list(items(response.json()))
        keyed = {str(item_key(entry)): entry for entry in entries}
        fresh = self.detector.new_items(keyed)
        if not fresh:
            self.counters.unchanged += 1
        for entry_key in fresh:
            self._emit(response, entry_key, http_item_key(url, entry_key), keyed[entry_key])

    def _handle_whole(self, response: Any) -> None:
        key = self.detection.key
        if key is not None:
            value = key(response)
            fingerprint = value if isinstance(value, str) else repr(value)
        else:
            fingerprint = hashlib.sha256(response.content).hexdigest()
        if self.detector.whole(fingerprint):
            self._emit(response, fingerprint, http_key(self.request.url, fingerprint), None)
        else:
            self.counters.unchanged += 1

    # -- the poll task -------------------------------------------------------------------

    async def _poll_once(self) -> float:
        """One request; returns the delay before the next."""
        counters, request = self.counters, self.request
        counters.polls += 1
        try:
            response = await self.client.request(
                request.verb,
                request.url,
                headers={**request.headers, **self.validators},
                params=request.params or None,
                auth=request.auth,
                timeout=request.timeout,
            )
            counters.requests += 1
            counters.bytes_received += len(response.content)
            counters.last_status = response.status_code
            if response.status_code >= 400:  # 4xx (429 included) and 5xx
                wait = retry_after_seconds(
                    response.headers.get("retry-after"), clock.now(self.scheduler).timestamp()
                )
                return self._fail(f"HTTP {response.status_code}", wait)
            self._handle(response)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return self._fail(f"{type(exc).__name__}: {exc}", None)
        if counters.consecutive_failures:
            logger.info("http_poll_recovered", url=self.shown, after=counters.consecutive_failures)
        counters.consecutive_failures = 0
        counters.last_error = None
        return self.source.interval

    def _fail(self, error: str, retry_after: float | None) -> float:
        counters = self.counters
        counters.failures += 1
        counters.consecutive_failures += 1
        counters.last_error = error
        delay = backoff(
            counters.consecutive_failures, 2 * self.source.interval, self.source.backoff_cap
        )
        if retry_after is not None:
            delay = max(delay, retry_after)
        logger.warning(
            "http_poll_failed",
            url=self.shown,
            error=error,
            consecutive_failures=counters.consecutive_failures,
            retry_in_s=delay,
        )
        return delay

    async def _run(self) -> None:
        counters = self.counters
        while True:
            delay = await self._poll_once()
            counters.next_delay = delay
            counters.completed += 1
            await clock.sleep(self.scheduler, delay)

    def _done(self, finished: asyncio.Task[None]) -> None:
        if finished.cancelled():
            return
        error = finished.exception()
        if isinstance(error, Exception):  # unexpected: end this subscription, it restarts
            self.observer.on_error(error)

    def dispose(self) -> None:
        """Stop polling and release the shared client."""
        self._task.cancel()
        _pool.release(self.request.origin, self.loop)
        logger.info("http_poll_stopped", url=self.shown)


async def close_idle_clients() -> None:
    """Wait for clients released by disposed pollers to finish closing."""
    with contextlib.suppress(Exception):
        await asyncio.gather(*list(_closing), return_exceptions=True)
