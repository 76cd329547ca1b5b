"""Operators for trigger pipelines: keyed, settlement-aware, scheduler-aware.

Each is a plain ``Observable -> Observable`` function for ``pipe``. Time comes from
the scheduler given as ``scheduler=`` or, by default, from the one the pipeline is
subscribed with (a trigger's), so the same pipeline runs live and in virtual time.
Events they hold keep their delivery claimed (a queue message is acked only once its
job exists); events they drop are acked as deliberately dropped; events still held
when the pipeline stops are nacked with ``requeue=True``. A key function that raises
for one event turns it into an :class:`~portico_rx.pipeline.isolation.EventFailed` for the sink
to dead-letter; the operator keeps going.

==================  ==========================================================
``debounce_by``     per key, the last event of a burst, once the key is quiet
``throttle_by``     per key, the first event, then silence for a while
``dedupe``          each key once per ttl (bounded memory)
``rate_limit``      at most N per window, per key; excess dropped/delayed/dead-lettered
``batch``           lists of up to N events, at most T seconds old
``changed``         only events whose value changed (per group)
``absent``          an :class:`Absence` when an expected event did not arrive
==================  ==========================================================
"""

from portico_rx.operators._absent import Absence, absent
from portico_rx.operators._batch import BatchDelivery, batch
from portico_rx.operators._changed import changed
from portico_rx.operators._debounce_by import debounce_by
from portico_rx.operators._dedupe import dedupe
from portico_rx.operators._rate_limit import Excess, RateLimitExceededError, rate_limit
from portico_rx.operators._throttle_by import throttle_by

__all__ = [
    "Absence",
    "BatchDelivery",
    "Excess",
    "RateLimitExceededError",
    "absent",
    "batch",
    "changed",
    "debounce_by",
    "dedupe",
    "rate_limit",
    "throttle_by",
]
