"""The web dashboard: server-rendered pages at ``/dashboard``, no JavaScript build step.

``create_app(triggers, dashboard=True, dashboard_auth=[Depends(auth)])`` mounts it (or
:func:`dashboard_router` in an app you build yourself). Pages: triggers (state and
counters), schedules (next fire times), recent jobs (filters), dead letters, recent
event outcomes. Each page refreshes its tables by polling itself (a few lines of inline
script, no CDN, nothing but requests to this server). Actions are plain HTML forms that
POST: pause/resume a trigger or a schedule, run a schedule now, cancel a job, redrive or
discard a dead letter; each POST is checked against cross-site forgery
(:mod:`portico_rx.dashboard._csrf`) and answered with a redirect to its page, which
tells what happened.

The dashboard never runs without authentication unless told to: give it FastAPI
dependencies (``dashboard_auth=`` / ``dependencies=``) that reject unauthenticated
requests, or ``allow_unauthenticated=True`` for a dashboard on a trusted port.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleTrigger
from portico_rx.errors import ConfigurationError, PorticoError, require
from portico_rx.kits.job.job_service import JobService
from portico_rx.logs import get_logger
from portico_rx.models import Job, JobStatus
from portico_rx.pipeline.outcomes import OUTCOME_KINDS
from portico_rx.pipeline.trigger import PipelineTrigger
from portico_rx.ports.dead_letter_store import DeadLetterRecord
from portico_rx.ports.job_trigger import JobTrigger

require("fastapi", "webhook")
jinja2: Any = require("jinja2", "dashboard")

from fastapi import APIRouter, Request  # noqa: E402
from fastapi.responses import HTMLResponse, RedirectResponse, Response  # noqa: E402

from portico_rx.dashboard._csrf import COOKIE, CsrfGuard  # noqa: E402

__all__ = ["dashboard_router"]

logger = get_logger("portico_rx.dashboard")

_FLASH = "portico_dashboard_flash"
_POLL_HEADER = "x-dashboard-poll"
_MAX_FORM = 16 * 1024
_BACK = re.compile(r"^[\w\-.=&%+:]{0,500}$")
_PAGES = {
    "triggers": ("", "Triggers"),
    "schedules": ("/schedules", "Schedules"),
    "jobs": ("/jobs", "Jobs"),
    "dead_letters": ("/dead-letters", "Dead letters"),
    "outcomes": ("/outcomes", "Outcomes"),
}
_CANCELLABLE = {JobStatus.PENDING, JobStatus.SCHEDULED}
_DEAD_LETTER_STATUSES = ("open", "redriven", "discarded")


def dashboard_router(
    triggers: Sequence[JobTrigger] | Mapping[str, JobTrigger],
    jobs: JobService | None = None,
    *,
    dependencies: Sequence[Any] = (),
    allow_unauthenticated: bool = False,
    prefix: str = "/dashboard",
    refresh: float = 2.0,
    secret: bytes | None = None,
) -> APIRouter:
    """The dashboard's routes, for ``app.include_router(...)``.

    Args:
        triggers: the triggers to show (a list, named as ``create_app`` names them, or
            a ``{name: trigger}`` mapping).
        jobs: the job service whose jobs and dead letters the pages show (default: the
            one ``JobService`` the triggers create their jobs with, if there is one).
        dependencies: FastAPI dependencies of every dashboard route, e.g.
            ``[Depends(auth)]``: the app's authentication.
        allow_unauthenticated: serve the dashboard with no ``dependencies`` (anyone who
            reaches the port can pause triggers and cancel jobs).
        prefix: where the pages are (default ``"/dashboard"``).
        refresh: seconds between a page's refreshes of its tables (default 2; 0: none).
        secret: the key of the forms' CSRF tokens (default: random per process; give
            one shared secret to replicas behind a load balancer without sticky sessions).

    Raises:
        ConfigurationError: no ``dependencies`` and not ``allow_unauthenticated``; a bad
            ``prefix`` or ``refresh``; ``jobs`` omitted while the triggers use several
            job services.
    """
    if not dependencies and not allow_unauthenticated:
        raise ConfigurationError(
            "the dashboard has no authentication: pass dashboard_auth=[Depends(your_auth)] "
            "to create_app (or dependencies=[...] for the whole app, or to "
            "dashboard_router), or dashboard_allow_unauthenticated=True (allow_unauthenticated"
            "=True) to let anyone who reaches the port pause triggers and cancel jobs"
        )
    if not isinstance(prefix, str) or not prefix.startswith("/") or prefix.endswith("/"):
        raise ConfigurationError(
            f"prefix={prefix!r}: use an absolute path without a trailing '/', e.g. '/dashboard'"
        )
    if isinstance(refresh, bool) or not isinstance(refresh, int | float) or refresh < 0:
        raise ConfigurationError(f"refresh={refresh!r}: use seconds >= 0 (0: no refresh)")
    if isinstance(triggers, Mapping):
        named = dict(triggers)
    else:
        from portico_rx.web import _named

        named = _named(triggers)
    dashboard = _Dashboard(named, _job_service(named, jobs), prefix, float(refresh), secret)
    router = APIRouter(prefix=prefix, dependencies=list(dependencies), include_in_schema=False)
    dashboard.add_routes(router)
    return router


def _job_service(named: dict[str, JobTrigger], jobs: JobService | None) -> JobService | None:
    if jobs is not None:
        if not isinstance(jobs, JobService):
            raise ConfigurationError(
                f"jobs={jobs!r}: give the JobService the triggers create their jobs with"
            )
        return jobs
    found: list[JobService] = []
    for trigger in named.values():
        creator = getattr(trigger, "job_creator", None)
        if isinstance(creator, JobService) and all(creator is not f for f in found):
            found.append(creator)
    if len(found) > 1:
        raise ConfigurationError(
            f"the triggers use {len(found)} job services: pass dashboard_jobs= (jobs=) the "
            "one whose jobs and dead letters the dashboard shows"
        )
    return found[0] if found else None


def _time(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _local_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %Z")


class _Action(Exception):
    """An action's result to show on the page it redirects to."""

    def __init__(self, message: str, ok: bool = True) -> None:
        super().__init__(message)
        self.ok = ok


class _Dashboard:
    def __init__(
        self,
        named: dict[str, JobTrigger],
        jobs: JobService | None,
        prefix: str,
        refresh: float,
        secret: bytes | None,
    ) -> None:
        self.named = named
        self.jobs = jobs
        self.prefix = prefix
        self.refresh = refresh
        self.csrf = CsrfGuard(secret)
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("portico_rx.dashboard", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.env.filters["time"] = _time
        self.env.filters["local_time"] = _local_time

    # -- routes ----------------------------------------------------------------------

    def add_routes(self, router: APIRouter) -> None:
        router.add_api_route("", self.triggers_page, methods=["GET"])
        router.add_api_route("/schedules", self.schedules_page, methods=["GET"])
        router.add_api_route("/jobs", self.jobs_page, methods=["GET"])
        router.add_api_route("/dead-letters", self.dead_letters_page, methods=["GET"])
        router.add_api_route("/outcomes", self.outcomes_page, methods=["GET"])
        for path, action in (
            ("/triggers/pause", self.pause_trigger),
            ("/triggers/resume", self.resume_trigger),
            ("/schedules/pause", self.pause_schedule),
            ("/schedules/resume", self.resume_schedule),
            ("/schedules/run", self.run_schedule),
            ("/jobs/cancel", self.cancel_job),
            ("/dead-letters/redrive", self.redrive_dead_letter),
            ("/dead-letters/discard", self.discard_dead_letter),
        ):
            router.add_api_route(path, self._post(action), methods=["POST"])

    # -- pages -----------------------------------------------------------------------

    async def triggers_page(self, request: Request) -> Response:
        rows: list[dict[str, Any]] = []
        for name, trigger in self.named.items():
            rows.append(
                {
                    "name": name,
                    "type": type(trigger).__name__,
                    "health": trigger.get_health(),
                    "pausable": isinstance(trigger, PipelineTrigger),
                    "paused": isinstance(trigger, PipelineTrigger) and trigger.paused,
                }
            )
        return self._render(request, "triggers", rows=rows)

    async def schedules_page(self, request: Request) -> Response:
        rows: list[dict[str, Any]] = []
        for name, trigger in self.named.items():
            if not isinstance(trigger, ScheduleTrigger):
                continue
            upcoming = trigger.upcoming(3)
            paused = set(trigger.paused_schedules)
            stats = trigger.get_health().details.get("per_schedule", {})
            for config in trigger.schedules:
                schedule = config.schedule_name
                rows.append(
                    {
                        "trigger": name,
                        "running": trigger.is_running,
                        "trigger_paused": trigger.paused,
                        "name": schedule,
                        "config": config,
                        "tz": config.tz or trigger.tz,
                        "paused": schedule in paused,
                        "next": upcoming.get(schedule, []),
                        "stats": stats.get(schedule, {}),
                    }
                )
        return self._render(request, "schedules", rows=rows)

    async def jobs_page(self, request: Request) -> Response:
        query = request.query_params
        status_text = query.get("status", "")
        job_type = query.get("job_type", "") or None
        queue_name = query.get("queue_name", "") or None
        limit = _limit(query.get("limit", ""))
        problem = None
        status: JobStatus | None = None
        if status_text:
            try:
                status = JobStatus(status_text)
            except ValueError:
                problem = f"status={status_text!r} is not a job status"
        jobs: list[Job] = []
        if self.jobs is not None and problem is None:
            jobs = await self.jobs.list_jobs(
                status=status, job_type=job_type, queue_name=queue_name, limit=limit
            )
        return self._render(
            request,
            "jobs",
            jobs=jobs,
            problem=problem,
            statuses=[s.value for s in JobStatus],
            cancellable=_CANCELLABLE,
            filters={
                "status": status_text,
                "job_type": job_type or "",
                "queue_name": queue_name or "",
                "limit": limit,
            },
        )

    async def dead_letters_page(self, request: Request) -> Response:
        query = request.query_params
        trigger = query.get("trigger", "") or None
        status = query.get("status", "open")
        limit = _limit(query.get("limit", ""))
        problem = None
        if status not in (*_DEAD_LETTER_STATUSES, "all"):
            problem = f"status={status!r}: use open, redriven, discarded or all"
        records: list[DeadLetterRecord] = []
        if self.jobs is not None and self.jobs.dead_letter_store is None:
            problem = f"{self.jobs.job_queue!r} keeps no dead letters"
        if self.jobs is not None and problem is None:
            records = await self.jobs.list_dead_letters(
                trigger=trigger, status=None if status == "all" else status, limit=limit
            )
        return self._render(
            request,
            "dead_letters",
            records=records,
            problem=problem,
            statuses=[*_DEAD_LETTER_STATUSES, "all"],
            filters={"trigger": trigger or "", "status": status, "limit": limit},
        )

    async def outcomes_page(self, request: Request) -> Response:
        query = request.query_params
        wanted = query.get("trigger", "") or None
        outcome = query.get("outcome", "") or None
        limit = _limit(query.get("limit", ""))
        problem = None
        if outcome is not None and outcome not in OUTCOME_KINDS:
            problem = f"outcome={outcome!r}: use one of {', '.join(OUTCOME_KINDS)}"
            outcome = None
        rows: list[tuple[str, Any]] = []
        counts: dict[str, dict[str, int]] = {}
        for name, trigger in self.named.items():
            if not isinstance(trigger, PipelineTrigger) or wanted not in (None, name):
                continue
            counts[name] = trigger.recorder.summary()
            if problem is None:
                rows.extend((name, record) for record in trigger.outcomes(outcome, limit=limit))
        rows.sort(key=lambda row: _time(row[1].seen_at), reverse=True)
        return self._render(
            request,
            "outcomes",
            rows=rows[:limit],
            counts=counts,
            kinds=OUTCOME_KINDS,
            problem=problem,
            filters={"trigger": wanted or "", "outcome": outcome or "", "limit": limit},
        )

    # -- actions ---------------------------------------------------------------------

    async def pause_trigger(self, form: dict[str, str]) -> str:
        trigger = self._pipeline_trigger(form)
        trigger.pause()
        return f"paused trigger {trigger.name!r}: its job requests are held until resumed"

    async def resume_trigger(self, form: dict[str, str]) -> str:
        trigger = self._pipeline_trigger(form)
        released = trigger.resume()
        return f"resumed trigger {trigger.name!r} ({released} held job requests released)"

    async def pause_schedule(self, form: dict[str, str]) -> str:
        trigger, schedule = self._schedule(form)
        trigger.pause_schedule(schedule)
        return f"paused schedule {schedule!r} of {trigger.name!r}"

    async def resume_schedule(self, form: dict[str, str]) -> str:
        trigger, schedule = self._schedule(form)
        if trigger.resume_schedule(schedule):
            return f"resumed schedule {schedule!r} of {trigger.name!r}"
        return f"schedule {schedule!r} of {trigger.name!r} was not paused"

    async def run_schedule(self, form: dict[str, str]) -> str:
        trigger, schedule = self._schedule(form)
        job = await trigger.run_now(schedule)
        if job is None:
            return (
                f"ran schedule {schedule!r} now: no job yet (the trigger is paused, so the "
                "run is held, or the schedule's overlap policy dropped it)"
            )
        return f"ran schedule {schedule!r} now: job {job.id}"

    async def cancel_job(self, form: dict[str, str]) -> str:
        job = await self._job_service().cancel_job(form.get("job_id", ""))
        return f"cancelled job {job.id} ({job.job_type})"

    async def redrive_dead_letter(self, form: dict[str, str]) -> str:
        letter = form.get("id", "")
        job = await self._job_service().redrive_dead_letter(letter)
        return f"redrove dead letter {letter}: job {job.id}"

    async def discard_dead_letter(self, form: dict[str, str]) -> str:
        record = await self._job_service().discard_dead_letter(form.get("id", ""))
        return f"discarded dead letter {record.id}"

    def _pipeline_trigger(self, form: dict[str, str]) -> PipelineTrigger:
        name = form.get("trigger", "")
        trigger = self.named.get(name)
        if not isinstance(trigger, PipelineTrigger):
            raise _Action(f"no trigger {name!r} that can be paused here", ok=False)
        return trigger

    def _schedule(self, form: dict[str, str]) -> tuple[ScheduleTrigger, str]:
        name = form.get("trigger", "")
        trigger = self.named.get(name)
        if not isinstance(trigger, ScheduleTrigger):
            raise _Action(f"no schedule trigger {name!r} here", ok=False)
        return trigger, form.get("schedule", "")

    def _job_service(self) -> JobService:
        if self.jobs is None:
            raise _Action("this dashboard has no job service (pass dashboard_jobs=)", ok=False)
        return self.jobs

    def _post(self, action: Any) -> Any:
        """The POST route of ``action(form) -> message``: checked against forgery, then
        a redirect (303) to its page with the message."""

        async def route(request: Request) -> Response:
            form = await _form(request)
            if form is None:
                return Response("send the dashboard's form (urlencoded, < 16 KiB)", 400)
            refusal = self.csrf.refusal(request, form.get("csrf"))
            if refusal is not None:
                logger.warning("dashboard_request_refused", reason=refusal, path=request.url.path)
                return Response(refusal, status_code=403, media_type="text/plain")
            try:
                outcome = _Action(await action(form))
            except _Action as refused:
                outcome = refused
            except PorticoError as exc:
                outcome = _Action(str(exc), ok=False)
            logger.info(
                "dashboard_action",
                action=action.__name__,
                ok=outcome.ok,
                message=str(outcome),
            )
            page = _PAGES.get(form.get("page", ""), _PAGES["triggers"])[0]
            back = form.get("back", "")
            target = f"{self.prefix}{page}" + (f"?{back}" if back and _BACK.match(back) else "")
            response = RedirectResponse(target, status_code=303)
            flash = quote(("ok|" if outcome.ok else "error|") + str(outcome)[:500])
            response.set_cookie(
                _FLASH,
                flash,
                max_age=60,
                path=self.prefix,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
            return response

        route.__name__ = f"dashboard_{action.__name__}"
        return route

    # -- rendering -------------------------------------------------------------------

    def _render(self, request: Request, page: str, **context: Any) -> Response:
        nonce = request.cookies.get(COOKIE) or ""
        fresh = not nonce
        if fresh:
            nonce = self.csrf.new_nonce()
        flash = None
        polling = request.headers.get(_POLL_HEADER) == "1"
        if not polling and _FLASH in request.cookies:
            kind, _, message = unquote(request.cookies[_FLASH]).partition("|")
            flash = {"ok": kind == "ok", "message": message}
        script_nonce = secrets.token_urlsafe(16)
        context.setdefault("problem", None)
        html = self.env.get_template(f"{page}.html").render(
            page=page,
            title=_PAGES[page][1],
            now=_time(datetime.now(UTC)),
            pages=[(key, self.prefix + path, title) for key, (path, title) in _PAGES.items()],
            prefix=self.prefix,
            csrf=self.csrf.token(nonce),
            back=request.url.query,
            flash=flash,
            refresh_ms=int(self.refresh * 1000),
            script_nonce=script_nonce,
            has_jobs=self.jobs is not None,
            trigger_names=list(self.named),
            **context,
        )
        response = HTMLResponse(html)
        response.headers.update(
            {
                "Content-Security-Policy": (
                    f"default-src 'none'; script-src 'nonce-{script_nonce}'; "
                    f"style-src 'nonce-{script_nonce}'; img-src 'self'; connect-src 'self'; "
                    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
                ),
                "X-Frame-Options": "DENY",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin",
                "Cache-Control": "no-store",
            }
        )
        secure = request.url.scheme == "https"
        if fresh:
            response.set_cookie(
                COOKIE, nonce, path=self.prefix, httponly=True, samesite="strict", secure=secure
            )
        if flash is not None:
            response.delete_cookie(_FLASH, path=self.prefix, httponly=True, samesite="strict")
        return response


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        return 50
    return min(max(value, 1), 500)


async def _form(request: Request) -> dict[str, str] | None:
    """The POST's urlencoded form (the last value of each field), or ``None``."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM:
            return None
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        return None
    return {key: values[-1] for key, values in fields.items()}
