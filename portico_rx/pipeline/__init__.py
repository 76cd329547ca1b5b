"""The one path every event takes: delivery → operators → to_job → sink → JobCreator.

===============  ==============================================================
``delivery``     where an event came from and how to settle it with its source
``tracking``     settlement through stock reactivex operators (the trigger's scheduler)
``isolation``    a user function that raises for one event does not end the stream
``to_job``       events become job requests
``sink``         the one create / retry / dead-letter loop
``trigger``      :class:`PipelineTrigger`: a pipeline run as a ``JobTrigger``
``health``       counters behind ``get_health()``
``retry``        :class:`RetryPolicy`, the one backoff
``clock``        time from the Rx scheduler
``dead_letter``  what could not become a job
===============  ==============================================================

Nothing here imports ``portico_rx.notebook``: notebook features plug in through
:mod:`portico_rx.pipeline.presentation`.
"""

from portico_rx.pipeline.trigger import PipelineTrigger

__all__ = ["PipelineTrigger"]
