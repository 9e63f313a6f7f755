"""Bearer-token reviewer identity, from the shared token directory format.

The reviewer file (`APPROVAL_REVIEWERS_FILE`, or the same JSON in
`APPROVAL_REVIEWERS`) is a list of
`{"name", "token_sha256", "roles": [...], "groups": [...], ...}` as
`hitl_shared.directory` reads it for every hitl API; any other string field (e.g.
`email`, `slack_user_id`) lands in `Reviewer.attributes` for channels that map their
own users to reviewers. An entry without `roles` is a reviewer; an explicit
`"roles": []` holds no role (it can sign in, and do nothing). Other entrypoints (the
web page, Slack, email links) look people up in `request.app.state.directory`.
"""

from typing import Annotated, Any

from fastapi import Depends
from hitl_shared import http_auth
from hitl_shared.directory import Directory, hash_token, load_directory

from hitl_approval.domain.reviewer import Reviewer, Role
from hitl_approval.settings import ApprovalSettings

__all__ = [
    "CurrentReviewer",
    "Reviewer",
    "Role",
    "current_reviewer",
    "hash_token",
    "load_reviewers",
    "require",
    "require_any",
]

DEV_REVIEWER = "dev"

current_reviewer = http_auth.current_principal
CurrentReviewer = Annotated[Reviewer, Depends(current_reviewer)]
require_any = http_auth.require_any


def load_reviewers(settings: ApprovalSettings) -> Directory:
    """The reviewer directory, from settings, a file, and (outside production) the dev token."""
    dev = settings.hitl_env != "production" and bool(settings.approval_dev_token)
    return load_directory(
        inline=settings.approval_reviewers,
        file=settings.approval_reviewers_file,
        source="APPROVAL_REVIEWERS",
        default_roles=frozenset({Role.REVIEWER.value}),
        dev=Reviewer(DEV_REVIEWER, frozenset({Role.REVIEWER.value, Role.ADMIN.value}))
        if dev
        else None,
        dev_token=settings.approval_dev_token if dev else "",
    )


def require(role: str) -> Any:
    return require_any(role)
