"""The keyed operators' one per-key state: entries in expiry order, bounded in number and
forgotten after their ttl by amortised sweeps driven by the scheduler's time.

``throttle_by``, ``dedupe``, ``rate_limit`` and ``changed`` keep their per-key state in a
:class:`KeyedTable`. The operator reads :attr:`KeyedTable.entries` (an ``OrderedDict``
whose order is expiry order) on its hot path and decides expiry itself, lazily, from
the entry it found: an expired entry not swept yet counts as absent. It appends new
entries and then lets :meth:`KeyedTable.settle` enforce ``limit`` (the oldest entry
goes first) and, when the table's sweep is due, drop the expired entries from the
front: amortised O(1) each, at most one sweep per ``ttl / SWEEPS_PER_TTL`` of scheduler
time, no timer, and nothing at all for an event that writes nothing (a duplicate, a
drop). Memory holds the keys written within the last ``ttl`` and an eighth (and at most
``limit``), not every key ever seen.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

__all__ = ["SWEEPS_PER_TTL", "KeyedTable"]

V = TypeVar("V")

SWEEPS_PER_TTL = 8
"""At most this many sweeps per ttl: an expired entry outlives its ttl by at most an
eighth of it (while writes go on; a table nobody writes to is not swept)."""


_NEVER = datetime.max.replace(tzinfo=UTC)
"""``due`` of a table without ttl (its writes pass no time, so it is never compared)."""


class KeyedTable(Generic[V]):
    """Per-key entries of one subscription, in expiry order.

    Args:
        start: the scheduler's time at subscription (the first sweep is due a period
            later); ``None`` when ``ttl`` is ``None``.
        limit: most entries kept (the oldest is dropped first), or ``None``.
        ttl: how long an entry lives; ``None``: entries never expire (only ``limit``).
        expiry: an entry's expiry time, or ``None`` while it must not be dropped (e.g.
            events wait in it); default: the entry is its own expiry time.

    The hot path of an operator writes a new entry itself and then calls
    :meth:`settle` only when ``len(entries) > cap or now >= due`` (two comparisons);
    every other write goes through :meth:`put`. The caller serialises access (the Rx
    contract, or the operator's lock).
    """

    __slots__ = ("_expiry", "_period", "cap", "due", "entries")

    def __init__(
        self,
        start: datetime | None,
        *,
        limit: int | None,
        ttl: timedelta | None,
        expiry: Callable[[V], datetime | None] | None = None,
    ) -> None:
        self.entries: OrderedDict[Hashable, V] = OrderedDict()
        self.cap = sys.maxsize if limit is None else limit
        """Most entries kept."""
        self._period = None if ttl is None else ttl / SWEEPS_PER_TTL
        self.due: datetime = (
            start + self._period if start is not None and self._period is not None else _NEVER
        )
        """When a sweep is next worth running."""
        self._expiry = expiry

    def put(self, name: Hashable, value: V, now: datetime | None) -> None:
        """Write ``name``'s entry (new or not) at ``now``, as the last to expire."""
        entries = self.entries
        entries[name] = value
        entries.move_to_end(name)
        if len(entries) > self.cap or (now is not None and now >= self.due):
            self.settle(now)

    def settle(self, now: datetime | None) -> None:
        """After a write: drop the oldest entry over ``cap``; sweep when due."""
        if len(self.entries) > self.cap:
            self.entries.popitem(last=False)
        if now is not None and now >= self.due:
            self.sweep(now)

    def sweep(self, now: datetime) -> None:
        """Drop the entries expired at ``now`` from the front; the next sweep is due a
        period later (or when the front expires, if that is later)."""
        entries, expiry = self.entries, self._expiry
        expired = 0
        front: datetime | None = None
        for value in entries.values():  # expiry order: the expired ones come first
            front = value if expiry is None else expiry(value)  # type: ignore[assignment]
            if front is None or front > now:
                break
            expired += 1
        for _ in range(expired):
            entries.popitem(last=False)
        if self._period is None:
            return
        due = now + self._period
        self.due = front if front is not None and front > due else due
