"""`POST /v1/integrations/slack/interactions`: a reviewer clicked Approve or Reject in Slack.

Slack posts `application/x-www-form-urlencoded` with one `payload` JSON field and
signs the raw body; a bad or stale signature is refused with 401 before anything
is parsed. The answer to Slack is an empty 200 within its 3 s limit; the message
is then updated through the payload's `response_url`.
"""

import json
import logging
import time
from typing import Any
from urllib.parse import parse_qs

import httpx
from fastapi import APIRouter, BackgroundTasks, Request, Response
from fastapi.responses import JSONResponse
from hitl_contracts import Channel
from hitl_shared.directory import Directory

from hitl_approval.domain.model import Verb
from hitl_approval.entrypoints import channel_reviewers as reviewers
from hitl_approval.entrypoints import deciding
from hitl_approval.entrypoints.slack import signature as slack_signature
from hitl_approval.service_layer.services import ApprovalService
from hitl_approval.settings import ApprovalSettings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/integrations/slack", tags=["integrations"])

VERBS = {"hitl_approve": Verb.APPROVE, "hitl_reject": Verb.REJECT}
_EMOJI = {"approved": ":white_check_mark:", "rejected": ":x:"}


@router.post("/interactions", summary="Slack interactivity request URL")
async def interactions(request: Request, background: BackgroundTasks) -> Response:
    settings: ApprovalSettings = request.app.state.settings
    if not settings.approval_slack_signing_secret:
        return JSONResponse(
            {"detail": "Slack is not configured: set APPROVAL_SLACK_SIGNING_SECRET"},
            status_code=503,
        )
    body = await request.body()
    try:
        slack_signature.verify(
            settings.approval_slack_signing_secret,
            timestamp=request.headers.get("X-Slack-Request-Timestamp"),
            signature=request.headers.get("X-Slack-Signature"),
            body=body,
            now=time.time(),
            max_age=settings.approval_slack_max_age_seconds,
        )
    except slack_signature.BadSignature as exc:
        log.warning("refused a Slack interaction: %s", exc)
        return JSONResponse({"detail": f"invalid Slack signature: {exc}"}, status_code=401)

    try:
        payload: dict[str, Any] = json.loads(parse_qs(body.decode())["payload"][0])
        action = next(a for a in payload.get("actions", []) if a.get("action_id") in VERBS)
        correlation_id = str(action["value"])
        slack_user = str(payload["user"]["id"])
        team = str((payload.get("team") or {}).get("id") or payload["user"].get("team_id") or "")
    except (KeyError, IndexError, StopIteration, ValueError, TypeError, AttributeError):
        # Signed by Slack but not one of our buttons (e.g. the "Open" link): nothing to do.
        return Response(status_code=200)
    if settings.approval_slack_team_id and team != settings.approval_slack_team_id:
        # The same user id in another workspace is another person.
        log.warning("refused a Slack interaction from workspace %r", team)
        return JSONResponse(
            {"detail": f"this Slack workspace ({team or 'unknown'}) may not decide here"},
            status_code=403,
        )
    response_url = str(payload.get("response_url", ""))

    service: ApprovalService = request.app.state.service
    directory: Directory = request.app.state.directory
    reviewer = reviewers.find(directory.by_token.values(), "slack_user_id", slack_user)
    if reviewer is None:
        background.add_task(
            _respond,
            request.app.state.http,
            response_url,
            _ephemeral(
                f"<@{slack_user}> is not a hitl reviewer: an admin adds "
                f'"slack_user_id": "{slack_user}" to your reviewer entry.'
            ),
        )
        return Response(status_code=200)

    outcome = await deciding.decide(
        service,
        correlation_id=correlation_id,
        verb=VERBS[action["action_id"]],
        reviewer=reviewer,
        channel=Channel.SLACK,
    )
    if outcome.approval is not None:
        text = deciding.outcome_text(outcome.approval)
        status = outcome.approval.status.value
        line = f"{_EMOJI.get(status, ':information_source:')} *{text}*"
        background.add_task(_respond, request.app.state.http, response_url, _replace(payload, line))
    else:
        state = f" ({deciding.outcome_text(outcome.current)})" if outcome.current else ""
        background.add_task(
            _respond,
            request.app.state.http,
            response_url,
            _ephemeral(f"Not recorded: {outcome.refusal}{state}"),
        )
    return Response(status_code=200)


def _replace(payload: dict[str, Any], line: str) -> dict[str, Any]:
    """The original message without its buttons, with who decided how."""
    message = payload.get("message") or {}
    blocks = [b for b in message.get("blocks", []) if b.get("type") != "actions"]
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": line}})
    return {"replace_original": True, "text": line, "blocks": blocks}


def _ephemeral(text: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "replace_original": False, "text": text}


async def _respond(http: httpx.AsyncClient, response_url: str, message: dict[str, Any]) -> None:
    if not response_url:
        return
    try:
        response = await http.post(response_url, json=message, timeout=5.0)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        # The decision stands; the notifier also updates the message on approval.decided.
        log.warning("could not update the Slack message via response_url: %r", exc)
