"""The spec's named triggers: thin, configured pipelines with the spec's constructors.

Import each from its module, e.g.
``from portico_rx.adapters.job_trigger.webhook_trigger import WebhookTrigger``.
"""
