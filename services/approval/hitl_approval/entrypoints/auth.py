"""Bearer-token reviewer identity: tokens are stored as SHA-256 hashes only.

The reviewer file (`APPROVAL_REVIEWERS_FILE`, or the same JSON in
`APPROVAL_REVIEWERS`) is a list of
`{"name", "token_sha256", "roles": [...], "groups": [...], ...}`; any other string
field (e.g. `email`, `slack_user_id`) lands in `Reviewer.attributes` for channels that
map their own users to reviewers. Other entrypoints (the web page) look a token up
the same way: `request.app.state.reviewers.get(hash_token(token))`.
"""

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hitl_approval.domain.reviewer import Reviewer, Role
from hitl_approval.settings import ApprovalSettings

__all__ = [
    "CurrentReviewer",
    "Reviewer",
    "Role",
    "by_name",
    "current_reviewer",
    "hash_token",
    "load_reviewers",
    "require",
    "require_any",
]

DEV_REVIEWER = "dev"


class ReviewerEntry(BaseModel):
    """One line of the reviewer file."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1)
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 hex of the token")
    roles: list[Role] = Field(default_factory=lambda: [Role.REVIEWER])
    groups: list[str] = Field(default_factory=list)

    def reviewer(self) -> Reviewer:
        extras: dict[str, Any] = self.model_extra or {}
        return Reviewer(
            name=self.name,
            roles=frozenset(r.value for r in self.roles),
            groups=frozenset(self.groups),
            attributes={k: str(v) for k, v in extras.items()},
        )


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _entries(raw: str, source: str) -> list[ReviewerEntry]:
    try:
        items = json.loads(raw)
        if not isinstance(items, list):
            raise ValueError("expected a JSON list of reviewers")
        return [ReviewerEntry.model_validate(item) for item in items]
    except (ValueError, ValidationError) as exc:
        raise ValueError(f"{source}: not a valid reviewer list: {exc}") from exc


def load_reviewers(settings: ApprovalSettings) -> dict[str, Reviewer]:
    """Map token hash -> reviewer, from settings, a file, and the development token."""
    entries: list[ReviewerEntry] = []
    if settings.approval_reviewers:
        entries += _entries(settings.approval_reviewers, "APPROVAL_REVIEWERS")
    if settings.approval_reviewers_file:
        path = Path(settings.approval_reviewers_file)
        entries += _entries(path.read_text(), f"APPROVAL_REVIEWERS_FILE {path}")
    table = {entry.token_sha256: entry.reviewer() for entry in entries}
    if settings.hitl_env != "production" and settings.approval_dev_token:
        table[hash_token(settings.approval_dev_token)] = Reviewer(
            DEV_REVIEWER, frozenset({Role.REVIEWER, Role.ADMIN})
        )
    by_name(table)  # fail at start-up on contradictory entries
    return table


def by_name(table: Mapping[str, Reviewer]) -> dict[str, Reviewer]:
    """Name -> reviewer; one person may hold several tokens, with the same roles and groups."""
    named: dict[str, Reviewer] = {}
    for reviewer in table.values():
        seen = named.setdefault(reviewer.name, reviewer)
        if (seen.roles, seen.groups) != (reviewer.roles, reviewer.groups):
            raise ValueError(
                f"reviewer {reviewer.name!r} is listed twice with different roles or groups"
            )
    return named


_bearer = HTTPBearer(auto_error=False)


def current_reviewer(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Reviewer:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token: send 'Authorization: Bearer <reviewer token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    reviewers: dict[str, Reviewer] = request.app.state.reviewers
    reviewer = reviewers.get(hash_token(credentials.credentials))
    if reviewer is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown reviewer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return reviewer


CurrentReviewer = Annotated[Reviewer, Depends(current_reviewer)]


def require_any(*roles: str) -> Any:
    """A dependency that admits a reviewer holding any of `roles` (admin holds all)."""

    def check(reviewer: CurrentReviewer) -> Reviewer:
        if not any(reviewer.can(role) for role in roles):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"reviewer {reviewer.name!r} lacks the {' or '.join(map(repr, roles))} role",
            )
        return reviewer

    return Depends(check)


def require(role: str) -> Any:
    return require_any(role)
