"""REST routes of decision analytics: reports, expected waits, what-ifs, shadow results.

Reviewers read aggregate figures; figures per reviewer (and the approval-fatigue
flags) name people, so they are for admins only.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from hitl_contracts.rules import CandidatePolicy
from pydantic import BaseModel, Field, field_validator

from hitl_approval.domain.analytics import ExpectedWait, GroupBy
from hitl_approval.domain.reviewer import Reviewer, Role
from hitl_approval.entrypoints.rest.auth import require_any
from hitl_approval.entrypoints.rest.errors import FORBIDDEN, INVALID, UNAUTHORIZED
from hitl_approval.entrypoints.rest.schemas import ApprovalView, ExpectedWaitView
from hitl_approval.service_layer.analytics import Analytics

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])

AsReviewer = Annotated[Reviewer, require_any(Role.REVIEWER)]
Since = Annotated[
    datetime | None,
    Query(description="Start (ISO 8601, with a time zone); default: until - 7 days."),
]
Until = Annotated[datetime | None, Query(description="End, excluded (ISO 8601); default: now.")]
ReviewCap = Annotated[
    float,
    Field(
        ge=0,
        le=86400,
        description="Reviewer time counted per decision: its time to decision, capped here.",
    ),
]


def get_analytics(request: Request) -> Analytics:
    analytics: Analytics = request.app.state.analytics
    return analytics


AnalyticsDep = Annotated[Analytics, Depends(get_analytics)]


class TimeToDecision(BaseModel):
    decisions: int = Field(description="Human decisions (approved, modified, rejected).")
    p50_seconds: float | None
    p90_seconds: float | None


class CommentCount(BaseModel):
    comment: str
    count: int


class GroupFigures(BaseModel):
    value: str = Field(
        description="The agent, `agent/tool`, risk level or reviewer ('' for the whole window, "
        "and for expired/cancelled approvals when grouped by reviewer)."
    )
    total: int
    counts: dict[str, int] = Field(description="Ended approvals per outcome.")
    approval_rate: float | None = Field(description="(approved + modified) / human decisions.")
    modification_rate: float | None = Field(description="modified / human decisions.")
    expiry_rate: float | None = Field(description="expired / all ended approvals.")
    time_to_decision: TimeToDecision
    top_rejection_comments: list[CommentCount]
    fatigue: bool | None = Field(
        default=None, description="group_by=reviewer only: the approval-fatigue rule holds."
    )


class Report(BaseModel):
    since: datetime
    until: datetime
    group_by: GroupBy
    overall: GroupFigures
    groups: list[GroupFigures]
    fatigued_reviewers: list[str] | None = None


class WhatIfBody(BaseModel):
    candidate: CandidatePolicy
    since: datetime | None = None
    until: datetime | None = None
    review_cap_seconds: ReviewCap = 300.0

    @field_validator("candidate")
    @classmethod
    def _no_patterns(cls, candidate: CandidatePolicy) -> CandidatePolicy:
        # A caller's regular expression could backtrack for ever over stored arguments.
        for rule in candidate.tools.values():
            if any(c.op == "matches" for c in rule.require_approval_when):
                raise ValueError("`matches` is not replayed over the API; use eq/in/not_in")
        return candidate


class HistoryFigures(BaseModel):
    asked: int = Field(description="Approvals in the window of the tools the candidate names.")
    would_ask: int
    would_let_through: int
    let_through_by_outcome: dict[str, int]
    let_through_rejected_or_modified: int
    reviewer_hours_saved: float


class UnaskedFigures(BaseModel):
    ran_without_approval: int = Field(
        description="Calls shadow mode recorded that the live policy let run."
    )
    would_ask: int
    recorded_since: str | None = Field(description="The oldest such record in the window.")


class WhatIf(BaseModel):
    since: datetime
    until: datetime
    candidate: str
    history: HistoryFigures
    unasked: UnaskedFigures
    would_ask_total: int


class ShadowResult(BaseModel):
    since: datetime
    until: datetime
    candidate: str
    calls: int
    live_asked: int
    shadow_would_ask: int
    both_ask: int
    only_live_asks: int
    only_shadow_asks: int
    neither_asks: int
    live_asked_not_yet_decided: int
    decided: HistoryFigures


@router.get(
    "",
    response_model=Report,
    responses={**UNAUTHORIZED, **FORBIDDEN, **INVALID},
    summary="Decision analytics",
)
async def decision_report(
    analytics: AnalyticsDep,
    who: AsReviewer,
    group_by: GroupBy = GroupBy.AGENT,
    since: Since = None,
    until: Until = None,
) -> dict[str, Any]:
    """Ended approvals in the window (by decision time), grouped by one dimension."""
    if group_by is GroupBy.REVIEWER and not who.can(Role.ADMIN):
        raise HTTPException(403, "figures per reviewer are for admins")
    _check(since, until)
    return await analytics.report(group_by=group_by, since=since, until=until)


@router.post(
    "/what-if",
    response_model=WhatIf,
    responses={**UNAUTHORIZED, **FORBIDDEN, **INVALID},
    summary="Replay a candidate policy over the stored history",
)
async def replay(body: WhatIfBody, analytics: AnalyticsDep, _: AsReviewer) -> dict[str, Any]:
    _check(body.since, body.until)
    return await analytics.what_if(
        body.candidate,
        since=body.since,
        until=body.until,
        review_cap_seconds=body.review_cap_seconds,
    )


@router.get(
    "/shadow/{candidate}",
    response_model=ShadowResult,
    responses={**UNAUTHORIZED, **FORBIDDEN, **INVALID},
    summary="What a shadow-mode candidate recorded, against the human decisions",
)
async def shadow(
    candidate: Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[\w.:-]+$")],
    analytics: AnalyticsDep,
    _: AsReviewer,
    since: Since = None,
    until: Until = None,
    review_cap_seconds: Annotated[float, Query(ge=0, le=86400)] = 300.0,
) -> dict[str, Any]:
    _check(since, until)
    return await analytics.shadow(
        candidate, since=since, until=until, review_cap_seconds=review_cap_seconds
    )


def _check(since: datetime | None, until: datetime | None) -> None:
    for at in (since, until):
        if at is not None and at.tzinfo is None:
            raise HTTPException(422, "since/until need a time zone (e.g. 2026-01-01T00:00:00Z)")
    if since and until and since >= until:
        raise HTTPException(422, "since must be before until")
    now = datetime.now(UTC)
    if since and ((until or now) - since).days > 400:
        raise HTTPException(422, "a window spans at most 400 days")
    # The shadow report reads decisions from the window's start up to now: a window in
    # year 1 would read 740,000 days of cells and hold the service for minutes.
    if any(at is not None and abs((now - at).days) > 400 for at in (since, until)):
        raise HTTPException(422, "since/until lie within 400 days of now")


def view_of(wait: ExpectedWait | None) -> ExpectedWaitView | None:
    if wait is None:
        return None
    return ExpectedWaitView(
        p50_seconds=wait.p50_seconds,
        p90_seconds=wait.p90_seconds,
        decisions=wait.decisions,
        basis=wait.basis,
    )


async def with_expected_waits(request: Request, views: list[ApprovalView]) -> list[ApprovalView]:
    """The views, pending ones with their expected wait (an addition to the API)."""
    analytics: Analytics | None = getattr(request.app.state, "analytics", None)
    if analytics is None:
        return views
    out = []
    for view in views:
        if view.status.terminal:
            out.append(view)
            continue
        wait = await analytics.expected_wait(view.request.agent, view.request.tool)
        out.append(view.model_copy(update={"expected_wait": view_of(wait)}))
    return out
