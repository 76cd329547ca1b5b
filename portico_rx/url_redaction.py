"""``redact_url``: a server URL or DSN with its password replaced by ``***``.

The one redactor for every URL portico_rx shows in logs, error messages and health
(broker URLs, database URLs, job-store DSNs). It reads the forms the drivers accept:

* URLs with credentials, any scheme: ``amqp://app:s3cret@mq/``, ``redis://:s3cret@cache``,
  ``postgresql+asyncpg://app:s3cret@db/jobs``;
* comma-separated server lists: ``nats://a:s3cret@n1:4222,nats://a:s3cret@n2:4222``;
* a NATS token in the user part: ``nats://s3cret@n1:4222``;
* ``password=`` keywords: libpq DSNs (``host=db password=s3cret``) and query strings
  (``redis://cache?password=s3cret``).

The user name, host, port, path and other parameters stay readable. When in doubt (an
``@`` in a path) it hides more, never less.
"""

from __future__ import annotations

import re
from typing import overload

__all__ = ["redact_url"]

MASK = "***"

_TOKEN_SCHEMES = frozenset({"nats", "tls", "ws", "wss"})  # nats://<token>@host

_PASSWORD_KEYWORD = re.compile(r"(password\s*=\s*)('[^']*'|[^\s&;]+)", re.IGNORECASE)
_SERVER = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)(\S*?)(?=,[A-Za-z][A-Za-z0-9+.-]*://|\s|$)")


def _redact_server(match: re.Match[str]) -> str:
    scheme, rest = match.group(1), match.group(2)
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        return match.group(0)
    user, colon, password = userinfo.partition(":")
    if not colon and scheme[:-3].lower() in _TOKEN_SCHEMES:
        return f"{scheme}{MASK}@{hostpart}"
    if not colon or not password:
        return match.group(0)
    return f"{scheme}{user}:{MASK}@{hostpart}"


@overload
def redact_url(url: str) -> str: ...


@overload
def redact_url(url: object) -> object: ...


def redact_url(url: object) -> object:
    """``url`` with every password replaced by ``***``, safe to log and to show.

    >>> redact_url("amqp://guest:guest@127.0.0.1:5672/")
    'amqp://guest:***@127.0.0.1:5672/'
    >>> redact_url("host=db user=app password=s3cret dbname=jobs")
    'host=db user=app password=*** dbname=jobs'
    >>> redact_url("redis://127.0.0.1:6379/0")
    'redis://127.0.0.1:6379/0'

    Args:
        url: a URL, a comma-separated list of URLs, or a ``key=value`` DSN; anything
            but a string is returned as it is (so a bad argument can be shown as given).

    Returns:
        The same text without any password (anything else unchanged).
    """
    if not isinstance(url, str):
        return url
    redacted = _PASSWORD_KEYWORD.sub(rf"\g<1>{MASK}", url)
    return _SERVER.sub(_redact_server, redacted)
