"""Properties of every operator, checked against a plain reference model over random
timestamped streams (hypothesis, virtual time). Every input event must end settled."""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from portico_rx.operators import (
    Absence,
    absent,
    batch,
    changed,
    debounce_by,
    dedupe,
    rate_limit,
    throttle_by,
)
from portico_rx.pipeline.isolation import EventFailed
from portico_rx.testing import trace_pipeline
from portico_rx.testing.strategies import event_streams

KEYS = st.sampled_from("abc")
DURATIONS = st.integers(1, 20).map(lambda n: n / 2)  # 0.5 s .. 10 s
STREAMS = event_streams(KEYS, max_gap=8, resolution=0.5, max_size=40)
FAST = settings(max_examples=100, deadline=None)


def indexed(stream: list[tuple[float, str]]) -> list[tuple[float, tuple[str, int]]]:
    """Events as ``(key, index)`` so each output can be traced to its input."""
    return [(t, (k, i)) for i, (t, k) in enumerate(stream)]


def times_by_key(stream: list[tuple[float, str]]) -> dict[str, list[tuple[float, int]]]:
    by_key: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for i, (t, k) in enumerate(stream):
        by_key[k].append((t, i))
    return by_key


def first_key(event: tuple[str, int]) -> str:
    return event[0]


def assert_all_settled(settlements: list[str | None]) -> None:
    assert None not in settlements, f"an event was never acked nor nacked: {settlements}"


@FAST
@given(STREAMS, DURATIONS)
def test_debounce_by_emits_exactly_the_last_event_of_each_burst(
    stream: list[tuple[float, str]], duration: float
) -> None:
    """Each key's event is emitted ``duration`` after it iff no event of the key came
    within that time; two emissions of a key are never closer than ``duration``."""
    until = (stream[-1][0] if stream else 0) + duration + 1
    trace = trace_pipeline(debounce_by(first_key, duration), indexed(stream), until=until)
    expected = set()
    for entries in times_by_key(stream).values():
        for (t, i), following in zip(entries, [*entries[1:], None], strict=True):
            if following is None or following[0] > t + duration:
                expected.add((t + duration, i))
    assert {(t, e[1]) for t, e in trace.emitted} == expected
    assert len(trace.emitted) == len(expected)
    emitted_by_key: dict[str, list[float]] = defaultdict(list)
    for t, (k, _) in trace.emitted:
        emitted_by_key[k].append(t)
    for times in emitted_by_key.values():
        assert all(b - a >= duration for a, b in itertools.pairwise(times))
    emitted = {e[1] for _, e in trace.emitted}
    assert trace.settlements == [
        "created" if i in emitted else "dropped" for i in range(len(stream))
    ]


@FAST
@given(STREAMS, DURATIONS, st.floats(0, 60))
def test_debounce_by_hands_back_what_it_still_holds_when_stopped(
    stream: list[tuple[float, str]], duration: float, cut: float
) -> None:
    """Stopped at any time: every event is created, dropped, or requeued — never lost."""
    last = stream[-1][0] if stream else 0
    trace = trace_pipeline(debounce_by(first_key, duration), indexed(stream), until=last + cut)
    assert_all_settled(trace.settlements)
    held_at_end = {i for i, s in enumerate(trace.settlements) if s == "requeued"}
    assert len(held_at_end) <= len({k for _, k in stream})  # at most one per key
    emitted = {e[1] for _, e in trace.emitted}
    assert not held_at_end & emitted


@FAST
@given(STREAMS, DURATIONS)
def test_debounce_by_flushes_held_events_on_completion(
    stream: list[tuple[float, str]], duration: float
) -> None:
    end = stream[-1][0] if stream else 0
    trace = trace_pipeline(
        debounce_by(first_key, duration), indexed(stream), complete_at=end, until=end
    )
    last_per_key = {entries[-1][1] for entries in times_by_key(stream).values()}
    assert last_per_key <= {e[1] for _, e in trace.emitted}
    assert trace.completed_at == end
    assert_all_settled(trace.settlements)


@FAST
@given(STREAMS, DURATIONS)
def test_throttle_by_emits_the_first_event_then_nothing_for_the_window(
    stream: list[tuple[float, str]], duration: float
) -> None:
    trace = trace_pipeline(throttle_by(first_key, duration), indexed(stream))
    expected = []
    opened: dict[str, float] = {}
    for i, (t, k) in enumerate(stream):
        if k not in opened or t >= opened[k] + duration:
            opened[k] = t
            expected.append((t, (k, i)))
    assert trace.emitted == expected
    assert all(s in ("created", "dropped") for s in trace.settlements)


@FAST
@given(STREAMS, DURATIONS)
def test_dedupe_emits_a_key_at_most_once_per_ttl(
    stream: list[tuple[float, str]], ttl: float
) -> None:
    trace = trace_pipeline(dedupe(first_key, ttl=ttl), indexed(stream))
    expected = []
    emitted_at: dict[str, float] = {}
    for i, (t, k) in enumerate(stream):
        if k not in emitted_at or t >= emitted_at[k] + ttl:
            emitted_at[k] = t
            expected.append((t, (k, i)))
    assert trace.emitted == expected
    by_key: dict[str, list[float]] = defaultdict(list)
    for t, (k, _) in trace.emitted:
        by_key[k].append(t)
    for times in by_key.values():
        assert all(b - a >= ttl for a, b in itertools.pairwise(times))
    assert all(s in ("created", "dropped") for s in trace.settlements)


@FAST
@given(event_streams(st.integers(0, 30), max_gap=2, max_size=60), st.integers(1, 40))
def test_dedupe_without_ttl_emits_each_key_once_while_it_fits_max_keys(
    stream: list[tuple[float, int]], max_keys: int
) -> None:
    keys = [k for _, k in stream]
    trace = trace_pipeline(dedupe(max_keys=max_keys), stream)
    if len(set(keys)) <= max_keys:
        assert trace.items == list(dict.fromkeys(keys))
    else:  # forgotten keys may pass again, but never twice in a row of remembered ones
        remembered: list[int] = []
        for item in trace.items:
            assert item not in remembered
            remembered = [*remembered, item][-max_keys:]


def windows_respected(times: list[float], count: int, per: float) -> bool:
    """No window ``[a, a + per)`` holds more than ``count`` of ``times`` (sorted)."""
    return all(times[i + count] - times[i] >= per for i in range(len(times) - count))


@FAST
@given(STREAMS, st.integers(1, 4), DURATIONS, st.booleans())
def test_rate_limit_drop_never_exceeds_the_rate_and_drops_only_over_it(
    stream: list[tuple[float, str]], count: int, per: float, keyed: bool
) -> None:
    operator = rate_limit(count, per, key=first_key if keyed else None)
    trace = trace_pipeline(operator, indexed(stream))
    sent: dict[Any, list[float]] = defaultdict(list)
    expected = []
    for i, (t, k) in enumerate(stream):
        group = k if keyed else None
        recent = [s for s in sent[group] if s > t - per]
        if len(recent) < count:
            sent[group].append(t)
            expected.append((t, (k, i)))
    assert trace.emitted == expected
    for times in sent.values():
        assert windows_respected(times, count, per)
    assert all(s in ("created", "dropped") for s in trace.settlements)


@FAST
@given(STREAMS, st.integers(1, 4), DURATIONS)
def test_rate_limit_delay_keeps_every_event_in_order_at_the_earliest_allowed_time(
    stream: list[tuple[float, str]], count: int, per: float
) -> None:
    until = (stream[-1][0] if stream else 0) + per * (len(stream) + 1)
    trace = trace_pipeline(
        rate_limit(count, per, key=first_key, excess="delay"), indexed(stream), until=until
    )
    expected = []
    sent: dict[str, list[float]] = defaultdict(list)
    for i, (t, k) in enumerate(stream):
        times = sent[k]
        at = max([t] + times[-1:] + ([times[-count] + per] if len(times) >= count else []))
        times.append(at)
        expected.append((at, (k, i)))
    assert sorted(trace.emitted, key=lambda e: e[1][1]) == expected
    for times in sent.values():
        assert windows_respected(times, count, per)
    assert trace.settlements == ["created"] * len(stream)


@FAST
@given(STREAMS, st.integers(1, 4), DURATIONS, st.floats(0, 30))
def test_rate_limit_delay_requeues_what_waits_when_stopped(
    stream: list[tuple[float, str]], count: int, per: float, cut: float
) -> None:
    end = (stream[-1][0] if stream else 0) + cut
    operator = rate_limit(count, per, excess="delay")
    trace = trace_pipeline(operator, indexed(stream), until=end)
    assert_all_settled(trace.settlements)
    emitted = {e[1] for _, e in trace.emitted}
    for i, settlement in enumerate(trace.settlements):
        assert settlement == ("created" if i in emitted else "requeued")


@FAST
@given(STREAMS, st.integers(1, 4), DURATIONS)
def test_rate_limit_dead_letter_fails_exactly_the_excess(
    stream: list[tuple[float, str]], count: int, per: float
) -> None:
    trace = trace_pipeline(rate_limit(count, per, excess="dead_letter"), indexed(stream))
    passed = [t for t, item in trace.emitted if not isinstance(item, EventFailed)]
    assert windows_respected(passed, count, per)
    assert len(trace.emitted) == len(stream)
    assert trace.settlements.count("failed") == len(trace.failures) == len(stream) - len(passed)
    assert {f.stage for f in trace.failures} <= {"rate_limit"}


@FAST
@given(STREAMS, st.integers(1, 6), DURATIONS, st.booleans())
def test_batch_keeps_order_bounds_size_and_age_and_settles_every_member(
    stream: list[tuple[float, str]], max_count: int, max_time: float, complete: bool
) -> None:
    end = (stream[-1][0] if stream else 0) + (0 if complete else max_time + 1)
    trace = trace_pipeline(
        batch(max_count, max_time),
        indexed(stream),
        until=end,
        complete_at=end if complete else None,
    )
    batches = trace.emitted
    flat = [event for _, items in batches for event in items]
    assert flat == [e for _, e in indexed(stream)]
    arrival = {i: t for i, (t, _) in enumerate(stream)}
    for emitted_at, items in batches:
        assert 1 <= len(items) <= max_count
        first = arrival[items[0][1]]
        assert emitted_at <= first + max_time
        full = len(items) == max_count
        timed_out = emitted_at == first + max_time
        completed = complete and emitted_at == end
        assert full or timed_out or completed
    assert trace.settlements == ["created"] * len(stream)


@FAST
@given(event_streams(st.tuples(KEYS, st.integers(0, 2)), max_gap=5, max_size=40), st.booleans())
def test_changed_emits_exactly_the_changes_per_group(
    stream: list[tuple[float, tuple[str, int]]], grouped: bool
) -> None:
    operator = changed(lambda e: e[1], group=(lambda e: e[0]) if grouped else None)
    trace = trace_pipeline(operator, stream)
    last: dict[Any, int] = {}
    expected = []
    for t, (group, value) in stream:
        name = group if grouped else None
        if last.get(name, -1) != value:
            last[name] = value
            expected.append((t, (group, value)))
    assert trace.emitted == expected
    assert all(s in ("created", "dropped") for s in trace.settlements)


def expected_absences(
    points: list[float], within: float, until: float, repeat: bool
) -> list[tuple[float, float | None, int]]:
    """(deadline, last_seen, missed) for a watch started at ``points[0]`` (a start,
    not an event) and reset at each later point."""
    fired = []
    for j, point in enumerate(points):
        following = points[j + 1] if j + 1 < len(points) else None
        deadline, missed = round(point + within, 6), 1
        while deadline <= until and (following is None or following > deadline):
            fired.append((deadline, None if j == 0 else point, missed))
            if not repeat:
                break
            deadline, missed = round(deadline + within, 6), missed + 1
    return fired


@FAST
@given(event_streams(st.just("beat"), max_gap=30, max_size=25), DURATIONS, st.booleans())
def test_absent_fires_exactly_when_the_gap_exceeds_within(
    stream: list[tuple[float, str]], within: float, repeat: bool
) -> None:
    times = [t for t, _ in stream]
    points = [0.0, *times]
    assume(all(b != round(a + within, 6) for a, b in itertools.pairwise(points)))
    until = round((times[-1] if times else 0) + 3 * within, 6)
    trace = trace_pipeline(absent(within, repeat=repeat), stream, until=until)
    got = []
    for t, item in trace.emitted:
        assert isinstance(item, Absence)
        seen = None if item.last_seen is None else (item.last_seen - trace_start()).total_seconds()
        assert (item.deadline - trace_start()).total_seconds() == t
        got.append((t, seen, item.missed))
    assert got == expected_absences(points, within, until, repeat)
    assert trace.settlements == ["dropped"] * len(stream)


@FAST
@given(STREAMS, DURATIONS)
def test_absent_watches_each_key_from_its_first_event(
    stream: list[tuple[float, str]], within: float
) -> None:
    until = (stream[-1][0] if stream else 0) + 2 * within
    trace = trace_pipeline(absent(within, key=lambda k: k), stream, until=until)
    for key, entries in times_by_key(stream).items():
        points = [t for t, _ in entries]
        got = [
            (t, (a.last_seen - trace_start()).total_seconds())
            for t, a in trace.emitted
            if a.key == key
        ]
        expected = [
            (deadline, seen)
            for deadline, seen, _ in expected_absences([points[0], *points], within, until, False)
        ]
        assert got == expected


def trace_start() -> Any:
    from portico_rx.testing import EPOCH

    return EPOCH


UPSTREAM_FAILURE = EventFailed(event="x", error=RuntimeError("upstream"), stage="upstream")
MIXED = st.one_of(st.integers(0, 4), st.sampled_from(["a", "b"]), st.just(UPSTREAM_FAILURE))


def kind(event: Any) -> bool:
    return isinstance(event, str)


@FAST
@given(event_streams(MIXED, max_gap=4, resolution=0.5, max_size=40), DURATIONS)
def test_failures_pass_dedupe_and_changed_untouched_among_events_of_several_classes(
    stream: list[tuple[float, Any]], ttl: float
) -> None:
    """Upstream failures come out untouched at their times, whatever class the events
    before them had; the other events come out exactly as without the failures (the
    hot paths remember the last class that was no failure)."""
    clean = [(t, event) for t, event in stream if event is not UPSTREAM_FAILURE]
    for make in (
        lambda: dedupe(ttl=ttl),
        lambda: dedupe(max_keys=3),
        lambda: throttle_by(kind, ttl),
        lambda: changed(),
        lambda: changed(group=kind),
    ):
        emitted = trace_pipeline(make(), stream).emitted
        failures = [(t, item) for t, item in emitted if item is UPSTREAM_FAILURE]
        assert failures == [(t, e) for t, e in stream if e is UPSTREAM_FAILURE]
        rest = [(t, item) for t, item in emitted if item is not UPSTREAM_FAILURE]
        assert rest == trace_pipeline(make(), clean).emitted
