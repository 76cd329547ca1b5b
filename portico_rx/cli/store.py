"""``--store``: the one place a store URL of the CLI becomes a :class:`JobQueue`.

Accepted forms (the store is picked by the scheme)::

    sqlite:///portico.db                    SQLite file, relative to the working directory
    sqlite:////var/lib/portico/jobs.db      SQLite file, absolute path (four slashes)
    portico.db                              a plain path: a SQLite file (what --db took)
    postgresql://user:pw@host:5432/db       PostgreSQL (also postgres://);
        ?schema=NAME&table=NAME             its schema and table (default portico.jobs)
    redis://[:pw@]host:6379/0               Redis (also rediss:// for TLS);
        ?prefix=NAME                        the key prefix (default portico)

``schema``, ``table`` and ``prefix`` are read here and taken out of the URL; every other
query parameter goes to the driver unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from portico_rx.errors import ConfigurationError
from portico_rx.ports.job_queue import JobQueue
from portico_rx.url_redaction import redact_url

__all__ = ["STORE_FORMS", "Store", "job_queue_for", "parse_store"]

STORE_FORMS = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, a plain file path (SQLite), "
    "postgresql://user@host:5432/db[?schema=S&table=T], redis://host:6379/0[?prefix=P]"
)

_OWN_OPTIONS: dict[str, set[str]] = {
    "sqlite": set(),
    "postgresql": {"schema", "table"},
    "redis": {"prefix"},
}


@dataclass(frozen=True)
class Store:
    """A parsed ``--store``: which store, where, and its portico_rx options."""

    kind: str  # "sqlite", "postgresql" or "redis"
    target: str  # the SQLite path, or the server URL without portico_rx's options
    options: dict[str, str]
    label: str  # what the CLI shows: the path, or the URL with its password hidden


def _bad(store: str, why: str) -> ConfigurationError:
    return ConfigurationError(f"--store {redact_url(store)!r}: {why}; accepted: {STORE_FORMS}")


def parse_store(store: str) -> Store:
    """Read a ``--store`` value (see the module docstring for the forms).

    Raises:
        ConfigurationError: an empty value, an unknown scheme, a SQLite URL without a
            path, or an option the store does not take; the message names the value
            (password hidden) and the accepted forms.
    """
    if not isinstance(store, str) or not store.strip():
        raise _bad(str(store), "give a store")
    if "://" not in store:
        return Store("sqlite", store, {}, store)
    parts = urlsplit(store)
    scheme = parts.scheme.lower()
    kind = {"postgres": "postgresql", "rediss": "redis"}.get(scheme, scheme)
    if kind not in _OWN_OPTIONS:
        raise _bad(store, f"unknown scheme {parts.scheme!r}")
    if kind == "sqlite":
        if parts.netloc or not parts.path.startswith("/") or parts.path == "/":
            raise _bad(store, "a SQLite URL is sqlite:/// followed by the file's path")
        path = parts.path[1:]  # sqlite:///a.db -> a.db, sqlite:////abs.db -> /abs.db
        return Store("sqlite", path, {}, path)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = {name: value for name, value in query if name in _OWN_OPTIONS[kind]}
    foreign = sorted(({"schema", "table", "prefix"} - _OWN_OPTIONS[kind]) & dict(query).keys())
    if foreign:
        raise _bad(store, f"a {kind} store takes no {foreign[0]!r} option")
    rest = urlencode([(n, v) for n, v in query if n not in _OWN_OPTIONS[kind]])
    target = urlunsplit(parts._replace(query=rest))
    if kind == "postgresql" and scheme == "postgres":
        target = "postgresql" + target[len("postgres") :]
    return Store(kind, target, options, redact_url(store))


def job_queue_for(
    store: str | Store,
    *,
    visibility_timeout: float | None = 300.0,
    must_exist: bool = False,
) -> JobQueue:
    """The JobQueue (not yet open) of a ``--store`` value; every command gets its store
    here.

    ``must_exist`` refuses a SQLite path with no file (reading commands never create
    one).

    Raises:
        ConfigurationError: see :func:`parse_store`; or ``must_exist`` and no such file.
        MissingDependencyError: the store's extra is not installed.
    """
    parsed = store if isinstance(store, Store) else parse_store(store)
    if parsed.kind == "sqlite":
        from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue

        if must_exist and parsed.target != ":memory:" and not Path(parsed.target).exists():
            raise ConfigurationError(
                f"no job queue at {parsed.target!r}: run `portico-rx run FILE.py --store "
                f"{parsed.label}` first, or pass --store with an existing queue ({STORE_FORMS})"
            )
        return SQLiteJobQueue(parsed.target, visibility_timeout=visibility_timeout)
    if parsed.kind == "postgresql":
        from portico_rx.adapters.job_queue.postgres import PostgresJobQueue

        return PostgresJobQueue(
            parsed.target,
            schema=parsed.options.get("schema", "portico"),
            table=parsed.options.get("table", "jobs"),
            visibility_timeout=visibility_timeout,
        )
    from portico_rx.adapters.job_queue.redis import RedisJobQueue

    return RedisJobQueue(
        parsed.target,
        prefix=parsed.options.get("prefix", "portico"),
        visibility_timeout=visibility_timeout,
    )
