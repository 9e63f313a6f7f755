"""The vocabulary of an approval's stream: statuses, verbs and the entries themselves."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from hitl_contracts import ApprovalDecided, ApprovalRequested, Channel


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    MODIFIED = "modified"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self is not Status.PENDING


class Verb(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    MODIFY = "modify"


class EntryType(StrEnum):
    REQUESTED = "requested"
    VOTE = "vote"
    ESCALATED = "escalated"
    DECIDED = "decided"


@dataclass(frozen=True)
class Entry:
    """One record of the approval's stream; `data` is what it carries."""

    seq: int
    type: EntryType
    at: datetime
    actor: str
    channel: Channel
    data: dict[str, Any]
    # The entry carries an event to publish once it is stored (the outbox).
    publish: bool = False
    # `<key id>:<fingerprint>` of the Idempotency-Key the decision came with: stored in
    # the same insert as the decision, so a retry after a crash still finds it.
    idempotency: str = ""

    def event(self) -> ApprovalDecided | ApprovalRequested | None:
        """The event this entry publishes: a decision, or an escalated request."""
        if self.type is EntryType.DECIDED:
            return ApprovalDecided.model_validate(self.data)
        if self.type is EntryType.ESCALATED:
            return ApprovalRequested.model_validate(self.data["event"])
        return None
