"""Who decides: a reviewer's name, roles and groups (identity, no I/O)."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    REVIEWER = "reviewer"  # lists and decides approvals
    ADMIN = "admin"  # every role, plus cancelling approvals
    AGENT = "agent"  # a service account of the agent: cancels the approvals of cancelled runs


@dataclass(frozen=True)
class Reviewer:
    name: str
    roles: frozenset[str]
    groups: frozenset[str] = frozenset()
    # Free-form extras from the reviewer file (e.g. "email", "slack_user_id") for the
    # channels that map their own users to reviewers.
    attributes: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    def can(self, role: str) -> bool:
        return role in self.roles or Role.ADMIN in self.roles
