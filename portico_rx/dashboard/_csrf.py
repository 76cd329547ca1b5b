"""The dashboard's protection of its forms against cross-site requests.

Every action is a POST, and a POST is refused (403) unless all three hold:

* the browser did not call it cross-site: ``Sec-Fetch-Site``, when sent, is
  ``same-origin``; ``Origin``, when sent, names this server's host (the ``Host``
  header);
* it carries the dashboard's cookie (a random nonce, ``HttpOnly``,
  ``SameSite=Strict``: a browser never sends it with a request another site starts);
* its form's ``csrf`` field is the HMAC-SHA256 of that nonce under the dashboard's
  secret, which only a page the dashboard served contains. A cookie an attacker
  planted (from a sibling subdomain, say) has no matching token they can compute.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request

__all__ = ["COOKIE", "CsrfGuard"]

COOKIE = "portico_dashboard_csrf"


class CsrfGuard:
    """Issues the nonce cookie and form tokens; checks a POST (``refusal``)."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(32)

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_urlsafe(32)

    def token(self, nonce: str) -> str:
        return hmac.new(self._secret, nonce.encode(), hashlib.sha256).hexdigest()

    def refusal(self, request: Request, form_token: str | None) -> str | None:
        """Why ``request`` (a POST) is refused, or ``None`` if it may act."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site != "same-origin":
            return f"cross-site request refused (Sec-Fetch-Site: {site})"
        origin = request.headers.get("origin")
        host = request.headers.get("host")
        if origin is not None and (origin == "null" or urlsplit(origin).netloc != host):
            return "cross-origin request refused (Origin does not match Host)"
        nonce = request.cookies.get(COOKIE)
        if not nonce or not form_token:
            return "missing CSRF token: reload the dashboard page and try again"
        if not hmac.compare_digest(self.token(nonce), form_token):
            return "invalid CSRF token: reload the dashboard page and try again"
        return None
