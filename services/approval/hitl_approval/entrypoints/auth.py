"""Bearer-token reviewer identity: tokens are stored as SHA-256 hashes only."""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hitl_approval.settings import ApprovalSettings


@dataclass(frozen=True)
class Reviewer:
    name: str
    roles: frozenset[str]

    def can(self, role: str) -> bool:
        return role in self.roles or "admin" in self.roles


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load_reviewers(settings: ApprovalSettings) -> dict[str, Reviewer]:
    """Map token hash -> reviewer, from settings, a file, and the development token."""
    raw: list[dict[str, object]] = []
    if settings.approval_reviewers:
        raw += json.loads(settings.approval_reviewers)
    if settings.approval_reviewers_file:
        raw += json.loads(Path(settings.approval_reviewers_file).read_text())
    table: dict[str, Reviewer] = {}
    for item in raw:
        roles = item.get("roles", ["reviewer"])
        assert isinstance(roles, list), "roles must be a list"
        table[str(item["token_sha256"])] = Reviewer(str(item["name"]), frozenset(map(str, roles)))
    if settings.hitl_env != "production" and settings.approval_dev_token:
        table[hash_token(settings.approval_dev_token)] = Reviewer(
            "dev", frozenset({"reviewer", "admin"})
        )
    return table


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


def require(role: str) -> object:
    def check(reviewer: CurrentReviewer) -> Reviewer:
        if not reviewer.can(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"reviewer {reviewer.name!r} lacks the {role!r} role"
            )
        return reviewer

    return Depends(check)
