"""The listing table of ``jobs list`` and ``dead-letters list``."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table


def listing(title: str, columns: Sequence[str], last: str) -> Table:
    """A table of stored records: the first column, ``id``, whole (never cropped: the
    commands take it), the others unwrapped except ``key``, and ``last`` folded."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, no_wrap=column != "key", min_width=36 if column == "id" else None)
    table.add_column(last, overflow="fold", max_width=50)
    return table
