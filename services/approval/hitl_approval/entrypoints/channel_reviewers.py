"""Who a Slack user or an email recipient is, as a reviewer.

The reviewer list (APPROVAL_REVIEWERS / APPROVAL_REVIEWERS_FILE) carries the channel
identities as extra fields: `"slack_user_id": "U0123ABCD"`, `"email": "a@b.c"`.
A channel user with no reviewer entry cannot decide.
"""

from collections.abc import Iterable

from hitl_approval.domain.reviewer import Reviewer


def find(reviewers: Iterable[Reviewer], attribute: str, value: str) -> Reviewer | None:
    """The reviewer whose `attribute` equals `value` (emails compare case-insensitively)."""
    wanted = value.strip().lower() if attribute == "email" else value
    for reviewer in reviewers:
        attributes = getattr(reviewer, "attributes", None) or {}
        have = attributes.get(attribute)
        if have is None:
            continue
        have = str(have).strip().lower() if attribute == "email" else str(have)
        if have == wanted:
            return reviewer
    return None
