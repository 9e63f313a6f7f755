"""The analytics page (figures per agent, tool, risk or reviewer; a what-if form) and the
expected wait shown on pending approvals. Reads only: no form here changes anything."""

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from hitl_contracts.rules import CandidatePolicy
from pydantic import ValidationError

from hitl_approval.domain.analytics import ExpectedWait, GroupBy
from hitl_approval.domain.model import Approval
from hitl_approval.domain.reviewer import Role
from hitl_approval.entrypoints.web.queue import QueueItem
from hitl_approval.entrypoints.web.render import page
from hitl_approval.entrypoints.web.session import Session, require_session
from hitl_approval.service_layer.analytics import Analytics

router = APIRouter(prefix="/ui")

SessionDep = Annotated[Session, Depends(require_session)]
Text = Annotated[str | None, Query(max_length=200)]
WINDOWS = {"24": "last 24 hours", "168": "last 7 days", "720": "last 30 days"}
# No `matches`: a visitor's regular expression could backtrack for ever over the history.
OPERATORS = ("gt", "gte", "lt", "lte", "eq", "ne")


def _analytics(request: Request) -> Analytics | None:
    return getattr(request.app.state, "analytics", None)


async def waits_for(request: Request, items: list[QueueItem]) -> dict[str, ExpectedWait]:
    """The expected wait of each pending item, by correlation id."""
    analytics = _analytics(request)
    if analytics is None:
        return {}
    waits = {}
    for item in items:
        if item.status == "pending":
            wait = await analytics.expected_wait(item.agent, item.tool)
            if wait is not None:
                waits[item.correlation_id] = wait
    return waits


async def wait_for(request: Request, approval: Approval) -> ExpectedWait | None:
    analytics = _analytics(request)
    if analytics is None or approval.status.terminal:
        return None
    return await analytics.expected_wait(approval.request.agent, approval.request.tool)


def _scalar(text: str) -> Any:
    """A form value as JSON when it reads as JSON (250, true, ["a"]), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _candidate(
    agent: str | None, tool: str | None, field: str | None, op: str | None, value: str | None
) -> CandidatePolicy | str | None:
    """The what-if form's candidate, a message saying what is missing, or None (not asked)."""
    if not tool:
        return None
    rule: dict[str, Any] = {}
    if field:
        if op not in OPERATORS or value is None or value == "":
            return "Give the argument, an operator and a value (or leave the argument empty)."
        rule["require_approval_when"] = [{"field": field, "op": op, "value": _scalar(value)}]
    try:
        return CandidatePolicy.model_validate(
            {"name": "web", "agent": agent or None, "tools": {tool: rule}}
        )
    except ValidationError as exc:
        return "; ".join(str(e["msg"]) for e in exc.errors()[:3])


@router.get("/analytics", response_class=HTMLResponse, include_in_schema=False)
async def analytics_page(
    request: Request,
    session: SessionDep,
    group_by: Text = None,
    hours: Text = None,
    agent: Text = None,
    tool: Text = None,
    field: Text = None,
    op: Text = None,
    value: Text = None,
) -> HTMLResponse:
    analytics = _analytics(request)
    assert analytics is not None, "the approval app always has analytics"
    admin = session.reviewer.can(Role.ADMIN)
    choices = [g for g in GroupBy if admin or g is not GroupBy.REVIEWER]
    by = next((g for g in choices if g.value == group_by), GroupBy.AGENT)
    window = hours if hours in WINDOWS else "168"
    now = datetime.now(UTC)
    since = now - timedelta(hours=int(window))
    figures = await analytics.report(group_by=by, since=since, until=now)
    candidate = _candidate(agent, tool, field, op, value)
    what_if = None
    if isinstance(candidate, CandidatePolicy):
        what_if = await analytics.what_if(candidate, since=since, until=now, review_cap_seconds=300)
    context = {
        "session": session,
        "figures": figures,
        "group_by": by.value,
        "choices": [g.value for g in choices],
        "windows": WINDOWS,
        "window": window,
        "operators": OPERATORS,
        "form": {"agent": agent, "tool": tool, "field": field, "op": op, "value": value},
        "what_if": what_if,
        "what_if_error": candidate if isinstance(candidate, str) else "",
        "rule": analytics.fatigue,
    }
    return page(request, "analytics.html", context)
