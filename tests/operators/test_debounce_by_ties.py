"""``debounce_by`` with one key is ``ops.debounce``: the same events at the same times,
also when an event arrives exactly at a deadline (a tie between the quiet-time timer and
the event, which the scheduler breaks by the order the two were scheduled in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex import operators as ops
from reactivex.scheduler import HistoricalScheduler
from reactivex.subject import Subject

from portico_rx.operators import debounce_by

T0 = datetime(2025, 1, 1, tzinfo=UTC)

# (when the emission is scheduled, how long after that it happens), whole seconds: an
# emission scheduled late (by a timer of its own, as another operator's would be) is
# what makes ties between it and the debounce timer come out in either order
arrivals = st.lists(st.tuples(st.integers(0, 20), st.integers(0, 6)), min_size=1, max_size=12)


def run(operator: Any, events: list[tuple[int, int]], complete_at: int | None) -> list[Any]:
    scheduler = HistoricalScheduler(initial_clock=T0)
    subject: Subject[int] = Subject()
    out: list[Any] = []
    subject.pipe(operator).subscribe(
        lambda value: out.append(((scheduler.now - T0).total_seconds(), value)),
        on_completed=lambda: out.append(((scheduler.now - T0).total_seconds(), "done")),
        scheduler=scheduler,
    )
    for number, (scheduled, after) in enumerate(events):

        def arm(_s: Any, _state: Any = None, number: int = number, after: int = after) -> None:
            scheduler.schedule_relative(
                timedelta(seconds=after), lambda _s2, _st=None: subject.on_next(number)
            )

        scheduler.schedule_absolute(T0 + timedelta(seconds=scheduled), arm)
    if complete_at is not None:
        scheduler.schedule_absolute(
            T0 + timedelta(seconds=complete_at), lambda _s, _st=None: subject.on_completed()
        )
    scheduler.advance_to(T0 + timedelta(seconds=60))
    return out


@settings(max_examples=400, deadline=None)
@given(arrivals, st.integers(1, 5), st.one_of(st.none(), st.integers(0, 40)))
def test_one_key_debounce_by_matches_ops_debounce(
    events: list[tuple[int, int]], duration: int, complete_at: int | None
) -> None:
    expected = run(ops.debounce(timedelta(seconds=duration)), events, complete_at)
    actual = run(debounce_by(lambda _event: "one key", duration), events, complete_at)
    assert actual == expected


def test_an_event_exactly_at_the_deadline_scheduled_after_the_timer() -> None:
    """Quiet time 2 s: events 0 and 1 at 0 s and 1 s, so the burst's deadline is 3 s;
    event 2 arrives at 3 s, from an action scheduled at 2 s, after the timer was set (at
    1 s, by event 1). The timer fires first and event 1 is emitted, as with
    ``ops.debounce``; event 2 starts a burst of its own (found by hypothesis: the lazy
    re-arm that debounce_by had set its timer at 2 s, after event 2's, and lost event 1)."""
    events = [(0, 0), (0, 1), (2, 1)]
    expected = run(ops.debounce(timedelta(seconds=2)), events, None)
    assert expected == [(3.0, 1), (5.0, 2)]
    assert run(debounce_by(lambda _event: "k", 2), events, None) == expected
