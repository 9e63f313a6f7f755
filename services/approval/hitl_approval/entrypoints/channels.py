"""The Slack and email channels' routes, for one `app.include_router` in the composition root."""

from fastapi import APIRouter

from hitl_approval.entrypoints.email import links as email_links
from hitl_approval.entrypoints.slack import routes as slack

router = APIRouter()
router.include_router(slack.router)
router.include_router(email_links.router)
