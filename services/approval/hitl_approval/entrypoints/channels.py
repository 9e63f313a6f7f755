"""The integrations' routes, for one `app.include_router` in the composition root."""

from fastapi import APIRouter

from hitl_approval.entrypoints.channel_settings import current
from hitl_approval.entrypoints.email import links as email_links
from hitl_approval.entrypoints.slack import routes as slack

# Read now, so a production misconfiguration stops start-up instead of a request.
current()

router = APIRouter()
router.include_router(slack.router)
router.include_router(email_links.router)
