"""Webhook building blocks: authentication schemes, bounded bodies, rate limits, idempotency.

Used by :class:`~portico_rx.adapters.job_trigger.webhook_trigger.WebhookTrigger` and
:func:`portico_rx.sources._webhook`; importable on their own (no FastAPI needed here).
"""

from portico_rx.webhooks.auth import (
    ApiKeyAuth,
    BearerAuth,
    GitHubAuth,
    StandardWebhooksAuth,
    StripeAuth,
    WebhookAuth,
    WebhookAuthError,
    sign_github,
    sign_standard_webhook,
    sign_stripe,
)
from portico_rx.webhooks.body import BodyTooLargeError, read_limited_body
from portico_rx.webhooks.idempotency import IdempotencyGuard
from portico_rx.webhooks.rate_limit import RateLimit, RateLimiter

__all__ = [
    "ApiKeyAuth",
    "BearerAuth",
    "BodyTooLargeError",
    "GitHubAuth",
    "IdempotencyGuard",
    "RateLimit",
    "RateLimiter",
    "StandardWebhooksAuth",
    "StripeAuth",
    "WebhookAuth",
    "WebhookAuthError",
    "read_limited_body",
    "sign_github",
    "sign_standard_webhook",
    "sign_stripe",
]
