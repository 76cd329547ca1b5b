"""``portico-rx outcomes``: what became of a running app's recent events.

It asks the app's ``GET /outcomes`` (served by :func:`portico_rx.web.create_app`, so by
``portico-rx run`` and by any app built with it) and prints one table per trigger: the
counts per outcome, then the recent events with their outcome, stage, job and error.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from portico_rx.errors import ConfigurationError, QueueUnavailableError, require
from portico_rx.pipeline.outcomes import OUTCOME_KINDS

__all__ = ["show_outcomes"]


async def show_outcomes(
    *,
    url: str = "http://127.0.0.1:8000",
    trigger: str | None = None,
    outcome: str | None = None,
    limit: int = 50,
    as_json: bool = False,
) -> int:
    """Print the recent event outcomes of the app serving ``url`` (JSON lines, one
    outcome each with its ``trigger``, with ``as_json``).

    Returns:
        The exit code (0).

    Raises:
        ConfigurationError: ``outcome`` is not an outcome, or the app refused the query
            (an unknown ``trigger``).
        QueueUnavailableError: nothing answers at ``url``.
    """
    if outcome is not None and outcome not in OUTCOME_KINDS:
        raise ConfigurationError(f"--outcome {outcome!r}: use one of {', '.join(OUTCOME_KINDS)}")
    httpx: Any = require("httpx", "http")
    params: dict[str, Any] = {"limit": limit}
    if trigger is not None:
        params["trigger"] = trigger
    if outcome is not None:
        params["outcome"] = outcome
    endpoint = url.rstrip("/") + "/outcomes"
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(endpoint, params=params)
    except httpx.HTTPError as exc:
        raise QueueUnavailableError(
            f"no app answers at {endpoint} ({type(exc).__name__}): start it with "
            "`portico-rx run FILE.py` (it serves /outcomes), or pass --url with its address"
        ) from exc
    if response.status_code != 200:
        detail = response.json().get("detail", response.text) if response.content else ""
        raise ConfigurationError(f"{endpoint} answered {response.status_code}: {detail}")
    body: dict[str, Any] = response.json()
    if as_json:
        for name, part in body.items():
            for record in part["outcomes"]:
                sys.stdout.write(json.dumps({"trigger": name, **record}) + "\n")
        return 0
    console = Console()
    if not console.is_terminal:  # a pipe or a file: room for every column
        console = Console(width=200)
    if not body:
        console.print("no trigger of this app keeps event outcomes")
    for name, part in body.items():
        console.print(_table(name, part))
    return 0


def _table(name: str, part: dict[str, Any]) -> Table:
    counts = ", ".join(f"{kind} {count}" for kind, count in part["counts"].items() if count)
    table = Table(title=f"{name}: {counts or 'no events yet'}", title_justify="left")
    for column in ("seen at", "source", "event", "outcome", "stage", "job"):
        table.add_column(column, no_wrap=True)
    table.add_column("error", overflow="fold", max_width=60)
    for record in part["outcomes"]:
        table.add_row(
            record["seen_at"] or "",
            record["source"] or "",
            record["event_id"] or "",
            record["outcome"],
            record["stage"] or "",
            (record["job_id"] or "")[:8],
            record["error"] or "",
        )
    return table
