"""``replay``: recorded events (a DataFrame) emitted again at their recorded times.

Each row of the frame is one event, emitted at the time in ``time_column``. On a
virtual-time scheduler (``HistoricalScheduler``, ``TestScheduler``) the clock jumps from
row to row, so a year of events replays in the time it takes to process them; on a live
scheduler the rows keep their spacing (divided by ``speed``), starting at subscription.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable

from portico_rx.errors import ConfigurationError, InvalidScheduleError, require
from portico_rx.pipeline import clock
from portico_rx.pipeline.delivery import Delivery, deliver

__all__ = ["RECORDED_COLUMNS_ATTR", "ReplayPlan", "as_utc", "check_window", "replay", "replay_plan"]


RECORDED_COLUMNS_ATTR = "portico_replay_columns"
"""``frame.attrs`` key where :func:`portico_rx.notebook.record` notes its event, key and id
columns, so ``replay(recorded_frame)`` re-emits the original objects with their ids."""


def as_utc(value: Any, argument: str) -> datetime:
    """``value`` (a datetime, a pandas Timestamp or an ISO string) as a tz-aware UTC datetime.

    Naive values are taken as UTC.

    Raises:
        InvalidScheduleError: the value is not a time.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidScheduleError(
                f"{argument}={value!r} is not a time; use an ISO string like "
                "'2025-01-01T00:00:00+00:00' or a datetime"
            ) from None
    to_pydatetime = getattr(value, "to_pydatetime", None)
    if callable(to_pydatetime):
        value = to_pydatetime()
    if not isinstance(value, datetime):
        raise InvalidScheduleError(
            f"{argument}={value!r} is not a time; use a datetime or an ISO string"
        )
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def check_window(start: Any, end: Any) -> tuple[datetime | None, datetime | None]:
    """Normalise an optional ``start``/``end`` window to UTC.

    Raises:
        InvalidScheduleError: a bound is not a time, or ``end`` is not after ``start``.
    """
    begin = None if start is None else as_utc(start, "start")
    finish = None if end is None else as_utc(end, "end")
    if begin is not None and finish is not None and finish <= begin:
        raise InvalidScheduleError(
            f"the window ends before it starts: start={begin.isoformat()}, "
            f"end={finish.isoformat()}; give an end after the start"
        )
    return begin, finish


class ReplayPlan:
    """The rows of a frame, checked and ready to emit (times in UTC, events, ids, keys).

    Built once by :func:`replay` so every subscription replays the same events.
    """

    __slots__ = ("event_ids", "events", "keys", "times")

    def __init__(
        self,
        times: Sequence[datetime],
        events: Sequence[Any],
        event_ids: Sequence[str],
        keys: Sequence[str | None],
    ) -> None:
        self.times = times
        self.events = events
        self.event_ids = event_ids
        self.keys = keys

    def __len__(self) -> int:
        return len(self.times)

    @classmethod
    def from_frame(
        cls,
        frame: Any,
        time_column: str,
        *,
        event_column: str | None = None,
        key_column: str | None = None,
        id_column: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> ReplayPlan:
        """Check ``frame`` and extract what to emit.

        Raises:
            ConfigurationError: not a DataFrame, a missing column, a time that is not a
                time, or times out of order.
        """
        pd: Any = require("pandas", "notebook")
        if not isinstance(frame, pd.DataFrame):
            raise ConfigurationError(
                f"events={type(frame).__name__}: replay needs a pandas DataFrame with one "
                "row per event (e.g. the frame returned by portico_rx.notebook.record)"
            )
        recorded = frame.attrs.get(RECORDED_COLUMNS_ATTR) or {}
        if event_column is None and recorded.get("event_column") in frame.columns:
            event_column = recorded["event_column"]
        if key_column is None and recorded.get("key_column") in frame.columns:
            key_column = recorded["key_column"]
        if id_column is None and recorded.get("id_column") in frame.columns:
            id_column = recorded["id_column"]
        for argument, column in (
            ("time_column", time_column),
            ("event_column", event_column),
            ("key_column", key_column),
            ("id_column", id_column),
        ):
            if column is not None and column not in frame.columns:
                raise ConfigurationError(
                    f"{argument}={column!r} is not a column of the frame (columns: "
                    f"{list(map(str, frame.columns))}); pass {argument}= the column that holds "
                    + ("each event's time" if argument == "time_column" else "it")
                )
        try:
            try:
                times = pd.to_datetime(frame[time_column], utc=True)
            except ValueError:  # strings in more than one format
                times = pd.to_datetime(frame[time_column], utc=True, format="mixed")
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(
                f"time_column={time_column!r} holds values that are not times ({exc}); "
                "convert it with pandas.to_datetime first"
            ) from None
        missing = times.isna()
        if missing.any():
            label = _label(frame.index[int(missing.to_numpy().argmax())])
            raise ConfigurationError(
                f"time_column={time_column!r} is empty at row {label!r}; every event needs a "
                "time (drop the row or fill it in)"
            )
        stamps = times.to_numpy(dtype="datetime64[ns]")
        if len(stamps) > 1:
            backwards = stamps[1:] < stamps[:-1]
            if backwards.any():
                position = int(backwards.argmax()) + 1
                row, previous = _label(frame.index[position]), _label(frame.index[position - 1])
                raise ConfigurationError(
                    f"time_column={time_column!r} is not sorted: row {row!r} "
                    f"({times.iloc[position].isoformat()}) comes after row {previous!r} "
                    f"({times.iloc[position - 1].isoformat()}); "
                    f"sort it first with frame.sort_values({time_column!r})"
                )
        keep = None
        if start is not None:
            keep = stamps >= pd.Timestamp(start).to_datetime64()
        if end is not None:
            before_end = stamps < pd.Timestamp(end).to_datetime64()
            keep = before_end if keep is None else keep & before_end
        if keep is not None:
            frame, times = frame[keep], times[keep]
        py_times: list[datetime] = list(times.dt.to_pydatetime())
        if event_column is not None:
            events: list[Any] = frame[event_column].tolist()
        else:
            events = _json_records(frame, time_column, py_times)
        labels = [str(label) for label in frame.index]
        if id_column is not None:
            event_ids = [
                label if _is_missing(value) else str(value)
                for value, label in zip(frame[id_column].tolist(), labels, strict=True)
            ]
        else:
            event_ids = labels
        if key_column is not None:
            keys: list[str | None] = [
                event_id if _is_missing(value) else str(value)
                for value, event_id in zip(frame[key_column].tolist(), event_ids, strict=True)
            ]
        else:
            keys = list(event_ids)
        return cls(py_times, events, event_ids, keys)


def _json_records(frame: Any, time_column: str, times: list[datetime]) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: times as ISO strings, NaN/NaT as ``None``.

    Built column by column (``tolist`` gives native Python values fast), not with
    ``to_dict("records")``, which boxes every time into a pandas Timestamp.
    """
    names = [str(column) for column in frame.columns]
    columns: list[list[Any]] = []
    for column in frame.columns:
        if column == time_column:
            columns.append([moment.isoformat() for moment in times])
            continue
        series = frame[column]
        kind = series.dtype.kind
        values = list(series.dt.to_pydatetime()) if kind == "M" else series.tolist()
        if kind in "fMmO":
            values = [_json_value(value) for value in values]
        columns.append(values)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _json_value(value: Any) -> Any:
    if _is_missing(value) or value.__class__.__name__ in ("NaTType", "NAType"):
        return None
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat) and not isinstance(value, str):
        return isoformat()
    return value


def _label(value: Any) -> Any:
    """An index label as a plain Python value (``1``, not ``np.int64(1)``), for messages."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def replay(
    frame: Any,
    time_column: str = "time",
    *,
    event_column: str | None = None,
    key_column: str | None = None,
    id_column: str | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    source: str = "replay",
    speed: float = 1.0,
    scheduler: abc.SchedulerBase | None = None,
) -> Observable[Any]:
    """Replay recorded events: each row of ``frame`` is emitted at its ``time_column`` time.

    The event is the row as a JSON-ready ``dict`` (times as ISO-8601 strings, the time
    column in UTC; NaN as ``None``) so ``to_job``'s default payload works, or the
    value of ``event_column`` when given (e.g. ``event_column="event"`` for the original
    objects kept by :func:`portico_rx.notebook.record`). Each event carries a delivery:
    ``source``, ``seen_at`` = its recorded time, ``event_id`` = the ``id_column`` value
    (default: the index label) and ``idempotency_key`` = the ``key_column`` value (default:
    the event id), so replaying the same frame twice through one job store creates each
    job once. A frame made by :func:`portico_rx.notebook.record` remembers its columns
    (in ``frame.attrs``): ``replay(recorded)`` re-emits the original objects with their
    original ids and keys.

    On a virtual-time scheduler rows are emitted at their recorded times (rows already in
    the scheduler's past are emitted at once, in order); on a live scheduler they keep
    their spacing, divided by ``speed``, starting when subscribed. The observable
    completes after the last row.

    Marble::

        frame rows:  t=0:a  t=2:b  t=2:c  t=5:d
        replay:      a-----(bc)--------d|

    Example:
        >>> import pandas as pd
        >>> from reactivex.scheduler import HistoricalScheduler
        >>> from portico_rx.sources import replay
        >>> frame = pd.DataFrame({"time": ["2025-01-01 09:00", "2025-01-01 10:00"], "n": [1, 2]})
        >>> seen = []
        >>> scheduler = HistoricalScheduler()
        >>> _ = replay(frame, scheduler=scheduler).subscribe(lambda e: seen.append(e["n"]))
        >>> scheduler.start(); seen
        [1, 2]

    Args:
        frame: a pandas DataFrame, one row per event, sorted by ``time_column``.
        time_column: the column holding each event's time (default ``"time"``; naive times
            are UTC).
        event_column: emit this column's value instead of the row dict (default ``None``).
        key_column: the column holding each event's idempotency key (default, and where
            empty: the event id).
        id_column: the column holding each event's id (default, and where empty: the
            index label).
        start: replay only rows at or after this time (default: all).
        end: replay only rows before this time (default: all).
        source: the delivery's source name, copied into job metadata (default ``"replay"``).
        speed: live schedulers only: how many times faster than recorded (default 1.0;
            ``math.inf`` emits everything at once).
        scheduler: the scheduler (default: the one given at subscription, e.g. the
            trigger's).

    Raises:
        ConfigurationError: a missing column, an empty or non-time value, or unsorted times
            (naming the column and the first row out of order); ``speed`` not positive.
        InvalidScheduleError: a window whose ``end`` is not after its ``start``.
    """
    if not speed > 0:
        raise ConfigurationError(f"speed={speed!r}: use a positive number (math.inf: no waits)")
    begin, finish = check_window(start, end)
    plan = ReplayPlan.from_frame(
        frame,
        time_column,
        event_column=event_column,
        key_column=key_column,
        id_column=id_column,
        start=begin,
        end=finish,
    )
    return replay_plan(plan, source=source, speed=speed, scheduler=scheduler)


def replay_plan(
    plan: ReplayPlan,
    *,
    source: str = "replay",
    speed: float = 1.0,
    scheduler: abc.SchedulerBase | None = None,
) -> Observable[Any]:
    """The observable behind :func:`replay`, for a plan that is already checked."""

    def subscribe(
        observer: abc.ObserverBase[Any], subscribe_scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        chosen = clock.resolve_scheduler(scheduler or subscribe_scheduler)
        if clock.is_virtual(chosen):
            return _replay_virtual(plan, source, observer, chosen)
        return _replay_live(plan, source, speed, observer, chosen)

    return reactivex.create(subscribe)


def _emit(plan: ReplayPlan, source: str, observer: abc.ObserverBase[Any], index: int) -> None:
    deliver(
        observer,
        plan.events[index],
        Delivery(
            source=source,
            seen_at=plan.times[index],
            event_id=plan.event_ids[index],
            idempotency_key=plan.keys[index],
        ),
    )


def _replay_virtual(
    plan: ReplayPlan, source: str, observer: abc.ObserverBase[Any], chosen: abc.SchedulerBase
) -> abc.DisposableBase:
    """Rows at their recorded times: one scheduled action per distinct time (the hot path
    of ``simulate``, so it avoids per-row allocations beyond the delivery)."""
    times, count = plan.times, len(plan.times)
    naive = chosen.now.tzinfo is None
    pending: list[abc.DisposableBase | None] = [None]
    state = {"position": 0, "disposed": False}

    def schedule(position: int) -> None:
        if position >= count:
            observer.on_completed()
            return
        when = times[position]
        pending[0] = chosen.schedule_absolute(when.replace(tzinfo=None) if naive else when, emit)

    def emit(_scheduler: abc.SchedulerBase, _state: Any = None) -> None:
        position = state["position"]
        moment = times[position]
        while position < count and times[position] == moment:
            _emit(plan, source, observer, position)
            position += 1
            if state["disposed"]:
                return
        state["position"] = position
        schedule(position)

    def stop() -> None:
        state["disposed"] = True
        if pending[0] is not None:
            pending[0].dispose()

    schedule(0)
    return Disposable(stop)


def _replay_live(
    plan: ReplayPlan,
    source: str,
    speed: float,
    observer: abc.ObserverBase[Any],
    chosen: abc.SchedulerBase,
) -> abc.DisposableBase:
    """Rows keep their recorded spacing divided by ``speed``, from subscription on."""
    times, count = plan.times, len(plan.times)
    origin = clock.now(chosen)
    first = times[0] if count else origin
    pending = SerialDisposable()
    state = {"position": 0, "disposed": False}

    def due(index: int) -> datetime:
        if math.isinf(speed):
            return origin
        return origin + (times[index] - first) / speed

    def schedule(position: int) -> None:
        if position >= count:
            observer.on_completed()
            return
        wait = max(timedelta(0), due(position) - clock.now(chosen))
        pending.disposable = chosen.schedule_relative(wait, emit)

    def emit(_scheduler: abc.SchedulerBase, _state: Any = None) -> None:
        position = state["position"]
        limit = clock.now(chosen)
        while position < count and due(position) <= limit:
            _emit(plan, source, observer, position)
            position += 1
            if state["disposed"]:
                return
        state["position"] = position
        schedule(position)

    def stop() -> None:
        state["disposed"] = True

    schedule(0)
    return CompositeDisposable(pending, Disposable(stop))
