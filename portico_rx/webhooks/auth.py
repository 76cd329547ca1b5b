"""Authenticating webhook senders: signatures (Standard Webhooks, GitHub, Stripe) and tokens.

Every scheme is a small frozen pydantic model with one job: :meth:`WebhookAuth.verify`
accepts the request's headers and raw body, or raises :class:`WebhookAuthError` (the
HTTP layer answers 401 and creates nothing).

* :class:`StandardWebhooksAuth` — ``webhook-id``, ``webhook-timestamp`` and
  ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``
  (https://www.standardwebhooks.com), several secrets at once for rotation, a timestamp
  tolerance against replays (default 5 minutes).
* :class:`GitHubAuth` — ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``.
* :class:`StripeAuth` — ``Stripe-Signature: t=<ts>,v1=<hex HMAC-SHA256 of "ts.body">``.
* :class:`BearerAuth` / :class:`ApiKeyAuth` — a shared token in ``Authorization: Bearer``
  or in a header of your choice.

Signatures are computed with the standard library's :mod:`hmac` and compared with
:func:`hmac.compare_digest` (constant time). The ``sign_*`` functions produce the
headers a sender would send, for tests and for your own outgoing webhooks.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from portico_rx.errors import ConfigurationError, PorticoError

__all__ = [
    "ApiKeyAuth",
    "BearerAuth",
    "GitHubAuth",
    "Secrets",
    "StandardWebhooksAuth",
    "StripeAuth",
    "WebhookAuth",
    "WebhookAuthError",
    "sign_github",
    "sign_standard_webhook",
    "sign_stripe",
]

_MAX_SIGNATURES = 16
"""At most this many signatures in one header are tried (bounds the work per request)."""


class WebhookAuthError(PorticoError, PermissionError):
    """A webhook request failed authentication; the message says why (never the secret)."""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """``headers[name]`` in any case (``name`` is lower case).

    Case-insensitive mappings (Starlette's, httpx's) answer the first lookup; plain dicts
    with other spellings are scanned.
    """
    value = headers.get(name)
    if value is None:
        for key, item in headers.items():
            if key.lower() == name:
                return item
    return value


def _require(headers: Mapping[str, str], name: str) -> str:
    value = _header(headers, name)
    if not value:
        raise WebhookAuthError(f"missing {name} header")
    return value


def _check_timestamp(raw: str, now: datetime, tolerance: float, header: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        raise WebhookAuthError(f"{header} must be whole seconds since the epoch")
    stamp = int(raw)
    age = now.timestamp() - stamp
    if age > tolerance:
        raise WebhookAuthError(f"{header} is older than the {tolerance:g} s tolerance")
    if age < -tolerance:
        raise WebhookAuthError(f"{header} is more than {tolerance:g} s in the future")
    return stamp


def _keyed(keys: list[bytes]) -> list[hmac.HMAC]:
    """An HMAC-SHA256 state per key, copied for each message: the key is hashed once, not
    on every request (``hmac.digest(key, ...)`` looks the algorithm up and hashes the key
    each time: several times slower with OpenSSL 3)."""
    return [hmac.new(key, digestmod=hashlib.sha256) for key in keys]


def _digests(macs: list[hmac.HMAC], message: bytes) -> list[bytes]:
    """HMAC-SHA256 of ``message`` under each keyed state."""
    digests = []
    for mac in macs:
        copy = mac.copy()
        copy.update(message)
        digests.append(copy.digest())
    return digests


Secrets: TypeAlias = str | SecretStr | Sequence[str | SecretStr]
"""What a ``secrets``/``tokens``/``keys`` argument accepts: one secret or a sequence of them
(several for rotation), each a plain ``str`` or a :class:`pydantic.SecretStr`. The field
itself always holds ``list[SecretStr]`` (the ``__init__`` signatures below say so to type
checkers; the validators do the conversion at runtime)."""


def _secret_list(value: object, argument: str) -> list[SecretStr]:
    items = [value] if isinstance(value, str | SecretStr) else value
    if not isinstance(items, Sequence) or isinstance(items, bytes | bytearray) or not items:
        raise ConfigurationError(
            f"{argument}={value!r}: give one secret or a list of secrets (several for rotation)"
        )
    secrets: list[SecretStr] = []
    for item in items:
        secret = item if isinstance(item, SecretStr) else SecretStr(str(item))
        if not secret.get_secret_value():
            raise ConfigurationError(f"{argument}: a secret cannot be empty")
        secrets.append(secret)
    return secrets


class WebhookAuth(BaseModel, ABC):
    """How a webhook route authenticates its sender.

    Subclass it for a scheme of your own: implement :meth:`verify`, set ``needs_body``
    to ``False`` if headers suffice (checked before the body is read), and override
    :meth:`delivery_id` if the scheme carries a unique delivery id (used as the
    idempotency key when the request has no ``Idempotency-Key`` header).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    needs_body: ClassVar[bool] = True

    @abstractmethod
    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        """Accept the request or raise.

        Args:
            headers: the request headers (any case).
            body: the raw request body, exactly as received.
            now: the current time (timestamps are checked against it).

        Raises:
            WebhookAuthError: the request is not authentic; answer 401.
        """

    def delivery_id(self, headers: Mapping[str, str]) -> str | None:
        """The sender's unique id for this delivery, if the scheme has one (it need not
        be signed: it is used only when :meth:`signed_id` gives none)."""
        return None

    def signed_id(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """An id of this delivery that the verified signature covers, if the scheme has one.

        Called only after :meth:`verify` accepted the request. A signed id is the
        request's idempotency key and wins over any unsigned header
        (``Idempotency-Key``, ``X-GitHub-Delivery``): a captured request replayed with new
        headers keeps its key, so it never creates a second job. Default ``None``.
        """
        return None


class StandardWebhooksAuth(WebhookAuth):
    """Standard Webhooks signatures (``webhook-id``/``-timestamp``/``-signature``).

    Args:
        secrets: one secret or several (rotation: any of them may sign), each
            ``"whsec_<base64>"`` or plain base64, as the sender shows it.
        tolerance_seconds: how far ``webhook-timestamp`` may be from now, either way
            (default 300 = 5 minutes); older requests are replays and get 401.

    Example:
        >>> auth = StandardWebhooksAuth(secrets=["whsec_c2VjcmV0LWtleS0x"])
        >>> auth.tolerance_seconds
        300.0
    """

    secrets: list[SecretStr]
    tolerance_seconds: float = Field(default=300.0, gt=0)

    @field_validator("secrets", mode="before")
    @classmethod
    def _secrets(cls, value: object) -> list[SecretStr]:
        secrets = _secret_list(value, "secrets")
        for secret in secrets:
            _standard_key(secret.get_secret_value())
        return secrets

    if TYPE_CHECKING:  # the accepted input; the field holds list[SecretStr]

        def __init__(self, *, secrets: Secrets, tolerance_seconds: float = 300.0) -> None: ...

    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        get = headers.get  # the lower-case names first: what every caller here passes
        msg_id = get("webhook-id") or _require(headers, "webhook-id")
        raw_stamp = get("webhook-timestamp") or _require(headers, "webhook-timestamp")
        signatures = get("webhook-signature") or _require(headers, "webhook-signature")
        _check_timestamp(raw_stamp, now, self.tolerance_seconds, "webhook-timestamp")
        signed = b"%s.%s.%s" % (msg_id.encode(), raw_stamp.encode(), body)
        expected = _digests(self._macs, signed)
        encoded_expected = [binascii.b2a_base64(digest, newline=False) for digest in expected]
        for entry in signatures.split(" ")[:_MAX_SIGNATURES]:
            version, _, encoded = entry.partition(",")
            if version != "v1" or not encoded:
                continue
            raw = encoded.encode("latin-1", "replace")
            for want in encoded_expected:  # any of the secrets may have signed it
                if hmac.compare_digest(raw, want):
                    return
            try:  # the same signature, written in another base64 form
                given = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
            except (binascii.Error, ValueError):
                continue
            if any(hmac.compare_digest(given, digest) for digest in expected):
                return
        raise WebhookAuthError("no webhook-signature matches (wrong secret or altered body)")

    def delivery_id(self, headers: Mapping[str, str]) -> str | None:
        return _header(headers, "webhook-id")

    def signed_id(self, headers: Mapping[str, str], body: bytes) -> str | None:
        # "id.timestamp.body" is what is signed: the id cannot be changed on a replay.
        return _header(headers, "webhook-id")

    @functools.cached_property
    def _macs(self) -> list[hmac.HMAC]:
        return _keyed([_standard_key(secret.get_secret_value()) for secret in self.secrets])


def _standard_key(secret: str) -> bytes:
    raw = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(
            "secrets: a Standard Webhooks secret is 'whsec_' followed by base64; "
            "copy it exactly as the sender shows it"
        ) from None
    if not key:
        raise ConfigurationError("secrets: a Standard Webhooks secret cannot be empty")
    return key


class GitHubAuth(WebhookAuth):
    """GitHub webhook signatures (``X-Hub-Signature-256: sha256=<hex>``).

    Args:
        secrets: the webhook secret(s) configured on GitHub (several for rotation).

    The delivery id (``X-GitHub-Delivery``) is the idempotency key of a redelivery.
    GitHub signs only the body: neither a timestamp nor the delivery id is signed, so a
    captured request replayed with a new ``X-GitHub-Delivery`` cannot be told from a
    new delivery (see ``docs/webhooks.md``, "What each scheme prevents").
    """

    secrets: list[SecretStr]

    @field_validator("secrets", mode="before")
    @classmethod
    def _secrets(cls, value: object) -> list[SecretStr]:
        return _secret_list(value, "secrets")

    if TYPE_CHECKING:  # the accepted input; the field holds list[SecretStr]

        def __init__(self, *, secrets: Secrets) -> None: ...

    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        header = _require(headers, "x-hub-signature-256")
        scheme, _, given = header.partition("=")
        if scheme != "sha256" or not given.isascii():
            raise WebhookAuthError("x-hub-signature-256 must look like 'sha256=<hex digest>'")
        for digest in _digests(self._macs, body):
            if hmac.compare_digest(given.encode(), digest.hex().encode()):
                return
        raise WebhookAuthError("x-hub-signature-256 does not match (wrong secret or altered body)")

    def delivery_id(self, headers: Mapping[str, str]) -> str | None:
        return _header(headers, "x-github-delivery")

    @functools.cached_property
    def _macs(self) -> list[hmac.HMAC]:
        return _keyed([secret.get_secret_value().encode() for secret in self.secrets])


class StripeAuth(WebhookAuth):
    """Stripe webhook signatures (``Stripe-Signature: t=<ts>,v1=<hex>[,v1=<hex>]``).

    Args:
        secrets: the endpoint signing secret(s), ``"whsec_..."`` (several for rotation).
        tolerance_seconds: maximum age of ``t`` (default 300, Stripe's own default).

    Stripe signs ``"t.body"``; the delivery's key is the event's ``id`` in the signed
    body (Stripe's own advice: deduplicate on it; a retry by Stripe has a new ``t`` but
    the same event id). A body without a top-level string ``id`` is keyed by a digest of
    the signed ``t`` and body, so a replay within the tolerance has the same key.
    """

    secrets: list[SecretStr]
    tolerance_seconds: float = Field(default=300.0, gt=0)

    @field_validator("secrets", mode="before")
    @classmethod
    def _secrets(cls, value: object) -> list[SecretStr]:
        return _secret_list(value, "secrets")

    if TYPE_CHECKING:  # the accepted input; the field holds list[SecretStr]

        def __init__(self, *, secrets: Secrets, tolerance_seconds: float = 300.0) -> None: ...

    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        header = _require(headers, "stripe-signature")
        stamp: str | None = None
        given: list[str] = []
        for part in header.split(",")[: _MAX_SIGNATURES + 1]:
            key, _, value = part.strip().partition("=")
            if key == "t":
                stamp = value
            elif key == "v1" and value.isascii():
                given.append(value)
        if stamp is None or not given:
            raise WebhookAuthError("stripe-signature must hold t=<timestamp> and v1=<signature>")
        _check_timestamp(stamp, now, self.tolerance_seconds, "stripe-signature timestamp")
        signed = stamp.encode() + b"." + body
        for digest in _digests(self._macs, signed):
            expected = digest.hex().encode()
            if any(hmac.compare_digest(value.encode(), expected) for value in given):
                return
        raise WebhookAuthError("stripe-signature does not match (wrong secret or altered body)")

    @functools.cached_property
    def _macs(self) -> list[hmac.HMAC]:
        return _keyed([secret.get_secret_value().encode() for secret in self.secrets])

    def signed_id(self, headers: Mapping[str, str], body: bytes) -> str | None:
        event_id = _top_level_id(body)
        if event_id is not None:
            return event_id
        header = _header(headers, "stripe-signature") or ""
        stamp = next(
            (v for k, _, v in (p.strip().partition("=") for p in header.split(",")) if k == "t"),
            "",
        )
        return "sha256:" + hashlib.sha256(stamp.encode() + b"." + body).hexdigest()


def _top_level_id(body: bytes) -> str | None:
    """The string ``id`` of a JSON object body (a Stripe event's ``evt_...``), if any."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None
    event_id = document.get("id") if isinstance(document, dict) else None
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 200:
        return None
    return event_id if event_id.isascii() and event_id.isprintable() else None


class BearerAuth(WebhookAuth):
    """A shared token in ``Authorization: Bearer <token>`` (several tokens for rotation).

    Checked before the body is read, so unauthenticated senders cost no body I/O.
    """

    needs_body: ClassVar[bool] = False

    tokens: list[SecretStr]

    @field_validator("tokens", mode="before")
    @classmethod
    def _tokens(cls, value: object) -> list[SecretStr]:
        return _secret_list(value, "tokens")

    if TYPE_CHECKING:  # the accepted input; the field holds list[SecretStr]

        def __init__(self, *, tokens: Secrets) -> None: ...

    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        header = _require(headers, "authorization")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise WebhookAuthError("authorization must be 'Bearer <token>'")
        _match_token(token.strip(), self.tokens, "authorization")


class ApiKeyAuth(WebhookAuth):
    """A shared key in a header (default ``X-API-Key``; several keys for rotation)."""

    needs_body: ClassVar[bool] = False

    keys: list[SecretStr]
    header: str = Field(default="X-API-Key", min_length=1)

    @field_validator("keys", mode="before")
    @classmethod
    def _keys(cls, value: object) -> list[SecretStr]:
        return _secret_list(value, "keys")

    if TYPE_CHECKING:  # the accepted input; the field holds list[SecretStr]

        def __init__(self, *, keys: Secrets, header: str = "X-API-Key") -> None: ...

    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        name = self.header.lower()
        _match_token(_require(headers, name), self.keys, name)


def _match_token(given: str, accepted: list[SecretStr], header: str) -> None:
    raw = given.encode("utf-8", "surrogateescape")
    matched = False
    for secret in accepted:  # no early exit: the time does not tell which key matched
        matched |= hmac.compare_digest(raw, secret.get_secret_value().encode())
    if not matched:
        raise WebhookAuthError(f"{header} does not hold an accepted token")


# -- signing (what a sender does) ----------------------------------------------------


def sign_standard_webhook(
    secret: str, msg_id: str, body: bytes, timestamp: datetime | int | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body``.

    Args:
        secret: ``"whsec_<base64>"`` (or plain base64).
        msg_id: the delivery's unique id (``webhook-id``).
        body: the exact bytes that will be sent.
        timestamp: when it is sent (default: now, wall clock).

    Returns:
        ``{"webhook-id": ..., "webhook-timestamp": ..., "webhook-signature": "v1,..."}``
    """
    if timestamp is None:
        timestamp = datetime.now(UTC)
    stamp = str(int(timestamp.timestamp()) if isinstance(timestamp, datetime) else timestamp)
    signed = msg_id.encode() + b"." + stamp.encode() + b"." + body
    digest = hmac.new(_standard_key(secret), signed, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def sign_github(secret: str, body: bytes) -> dict[str, str]:
    """The ``X-Hub-Signature-256`` header GitHub would send for ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}"}


def sign_stripe(
    secret: str, body: bytes, timestamp: datetime | int | None = None
) -> dict[str, str]:
    """The ``Stripe-Signature`` header Stripe would send for ``body`` (default: now)."""
    if timestamp is None:
        timestamp = datetime.now(UTC)
    stamp = str(int(timestamp.timestamp()) if isinstance(timestamp, datetime) else timestamp)
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={stamp},v1={digest}"}
