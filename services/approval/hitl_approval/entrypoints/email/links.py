"""The pages behind the approve / reject links in notification emails.

GET shows what would be decided and a form; it changes nothing, because mail
scanners and link previews fetch every link. Only the POST from that form decides.
A token is single use: its id is inserted once into `email_link_uses` before the
decision (a unique insert, atomic on MongoDB and FerretDB), so a second POST,
even a concurrent one, is refused. Used, expired or altered tokens get a page
that says so, and nothing changes.
"""

import logging
from datetime import UTC, datetime
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from hitl_contracts import Channel
from hitl_shared import links
from hitl_shared.directory import Directory

from hitl_approval.adapters.link_uses import LinkUses
from hitl_approval.domain.errors import NotFound
from hitl_approval.domain.model import Verb
from hitl_approval.domain.reviewer import Reviewer
from hitl_approval.entrypoints import channel_reviewers as reviewers
from hitl_approval.entrypoints import deciding
from hitl_approval.entrypoints.email import pages as email_pages
from hitl_approval.service_layer.services import ApprovalService
from hitl_approval.settings import ApprovalSettings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/integrations/email", tags=["integrations"])

_TITLES = {"approved": "Approved", "rejected": "Rejected"}
# The token is in the URL: keep it out of caches and other sites' Referer headers.
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}


def _html(content: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(content, status_code=status, headers=_HEADERS)


class _Refused(Exception):
    def __init__(self, response: HTMLResponse) -> None:
        self.response = response


async def _check(request: Request, token: str) -> tuple[links.LinkClaim, Reviewer]:
    """The claim and its reviewer, or `_Refused` with the page that explains why not."""
    settings: ApprovalSettings = request.app.state.settings
    try:
        claim = links.verify(settings.hitl_link_secret, token, now=datetime.now(UTC))
    except links.BadLink as exc:
        expired = "expired" in str(exc)
        title = "This link has expired" if expired else "This link does not work"
        raise _Refused(
            _html(email_pages.verdict(title, str(exc)), 410 if expired else 400)
        ) from None
    uses: LinkUses = request.app.state.link_uses
    used = await uses.used_at(claim.token_id)
    if used is not None:
        raise _Refused(
            _html(
                email_pages.verdict(
                    "This link was already used",
                    f"It was used at {used:%Y-%m-%d %H:%M:%S} UTC. Each link works once.",
                ),
                410,
            )
        )
    directory: Directory = request.app.state.directory
    reviewer = reviewers.find(directory.by_token.values(), "email", claim.recipient)
    if reviewer is None:
        raise _Refused(
            _html(
                email_pages.verdict(
                    "Not a reviewer",
                    f"{claim.recipient} is not registered as a hitl reviewer, so this link "
                    "cannot decide. An admin adds the address to your reviewer entry.",
                ),
                403,
            )
        )
    return claim, reviewer


@router.get("/action", response_class=HTMLResponse, summary="Confirmation page of an email link")
async def confirm_page(request: Request, token: str = "") -> HTMLResponse:
    try:
        claim, reviewer = await _check(request, token)
    except _Refused as refused:
        return refused.response
    service: ApprovalService = request.app.state.service
    try:
        approval = await service.get(claim.correlation_id)
    except NotFound as exc:
        return _html(email_pages.verdict("Unknown approval", str(exc)), 404)
    if approval.status.terminal:
        return _html(
            email_pages.verdict(
                "Already decided",
                f"This approval is already {deciding.outcome_text(approval)}.",
                approval.request,
            ),
            409,
        )
    return _html(
        email_pages.confirm(
            approval.request, action=claim.action, token=token, reviewer=reviewer.name
        )
    )


@router.post("/action", response_class=HTMLResponse, summary="Decide from the confirmation page")
async def submit(request: Request) -> HTMLResponse:
    form = parse_qs((await request.body()).decode(errors="replace"))
    token = form.get("token", [""])[0]
    comment = form.get("comment", [""])[0][:4000]
    try:
        claim, reviewer = await _check(request, token)
    except _Refused as refused:
        return refused.response
    service: ApprovalService = request.app.state.service
    uses: LinkUses = request.app.state.link_uses
    first_use = await uses.use(
        claim.token_id,
        {
            "correlation_id": claim.correlation_id,
            "action": claim.action,
            "recipient": claim.recipient,
            "reviewer": reviewer.name,
            "at": datetime.now(UTC),
        },
    )
    if not first_use:
        return _html(
            email_pages.verdict("This link was already used", "Each link works once."), 409
        )
    try:
        outcome = await deciding.decide(
            service,
            correlation_id=claim.correlation_id,
            verb=Verb(claim.action),
            reviewer=reviewer,
            channel=Channel.EMAIL,
            comment=comment,
        )
    except Exception:
        # Not the reviewer's fault (store or broker trouble): give the link back.
        await uses.give_back(claim.token_id)
        raise
    if outcome.approval is not None:
        done = deciding.outcome_text(outcome.approval)
        log.info(
            "email link decided: %s",
            done,
            extra={"correlation_id": claim.correlation_id, "reviewer": reviewer.name},
        )
        return _html(
            email_pages.verdict(
                _TITLES.get(outcome.approval.status.value, "Vote recorded"),
                f"Recorded: {done}. The agent continues from here.",
                outcome.approval.request,
            )
        )
    request_shown = outcome.current.request if outcome.current else None
    return _html(
        email_pages.verdict("Not recorded", outcome.refusal, request_shown), outcome.http_status
    )
