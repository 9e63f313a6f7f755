"""The integrations' routes, for one `app.include_router` in the composition root."""

from fastapi import APIRouter

from hitl_approval.integrations import email_links, slack
from hitl_approval.integrations.settings import current

# Read now, so a production misconfiguration stops start-up instead of a request.
current()

router = APIRouter()
router.include_router(slack.router)
router.include_router(email_links.router)
