"""The approval lifecycle as a pure state machine over an append-only stream.

An approval is the fold of its entries: seq 0 is the request, later entries are
transitions. The store makes an append atomic by the unique (approval, seq) key, so
two writers that read the same version cannot both append: exactly one decision wins.
"""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from hitl_shared.contracts import ApprovalDecided, ApprovalRequested, Channel, Decision


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


_OUTCOME = {
    Verb.APPROVE: Decision.APPROVED,
    Verb.REJECT: Decision.REJECTED,
    Verb.MODIFY: Decision.MODIFIED,
}


class ApprovalError(Exception):
    """Root of the approval domain's errors."""


class AlreadyDecided(ApprovalError):
    def __init__(self, approval: "Approval") -> None:
        super().__init__(f"approval {approval.correlation_id} is already {approval.status}")
        self.approval = approval


class InvalidDecision(ApprovalError):
    """The decision itself is malformed (e.g. modify without arguments)."""


class TooLate(ApprovalError):
    """A decision arrived after `expires_at`: the timeout wins; `expiry` records it."""

    def __init__(self, expiry: "Entry") -> None:
        super().__init__("the approval expired before the decision arrived")
        self.expiry = expiry


class NotDue(ApprovalError):
    """Expiry was attempted before `expires_at`."""


class EntryType(StrEnum):
    REQUESTED = "requested"
    DECIDED = "decided"


@dataclass(frozen=True)
class Entry:
    """One record of the approval's stream; `data` is the event it carries."""

    seq: int
    type: EntryType
    at: datetime
    actor: str
    channel: Channel
    data: dict[str, Any]
    # Events to publish once this entry is stored (the outbox).
    publish: bool = False


@dataclass
class Approval:
    request: ApprovalRequested
    entries: list[Entry] = field(default_factory=list)

    @classmethod
    def requested(cls, request: ApprovalRequested) -> "Approval":
        entry = Entry(
            seq=0,
            type=EntryType.REQUESTED,
            at=request.requested_at,
            actor=request.agent,
            channel=Channel.SYSTEM,
            data=request.model_dump(mode="json"),
        )
        return cls(request=request, entries=[entry])

    @classmethod
    def from_entries(cls, entries: list[Entry]) -> "Approval":
        first = entries[0]
        assert first.type is EntryType.REQUESTED, "stream must start with the request"
        return cls(request=ApprovalRequested.model_validate(first.data), entries=list(entries))

    @property
    def correlation_id(self) -> str:
        return self.request.correlation_id

    @property
    def version(self) -> int:
        return self.entries[-1].seq

    @property
    def decision(self) -> ApprovalDecided | None:
        for entry in reversed(self.entries):
            if entry.type is EntryType.DECIDED:
                return ApprovalDecided.model_validate(entry.data)
        return None

    @property
    def status(self) -> Status:
        decided = self.decision
        return Status.PENDING if decided is None else Status(decided.decision.value)

    def is_due(self, now: datetime) -> bool:
        return self.status is Status.PENDING and now >= self.request.expires_at

    def decide(
        self,
        verb: Verb,
        *,
        reviewer: str,
        channel: Channel,
        now: datetime,
        arguments: dict[str, Any] | None = None,
        comment: str = "",
    ) -> Entry:
        """The entry that records this reviewer's decision; raises if it cannot win."""
        if self.status.terminal:
            raise AlreadyDecided(self)
        if self.is_due(now):
            # Too late: the timeout already won, whether or not the sweeper ran yet.
            raise TooLate(self.expire(now))
        if verb is Verb.MODIFY and not arguments:
            raise InvalidDecision("modify needs the edited arguments")
        final_args = (
            arguments
            if verb is Verb.MODIFY
            else (self.request.arguments if verb is Verb.APPROVE else None)
        )
        return self._decided(_OUTCOME[verb], reviewer, channel, now, final_args, comment)

    def expire(self, now: datetime) -> Entry:
        if self.status.terminal:
            raise AlreadyDecided(self)
        if now < self.request.expires_at:
            raise NotDue(f"{self.correlation_id} expires at {self.request.expires_at}")
        reason = (
            f"no decision within the timeout (expired at {self.request.expires_at.isoformat()}); "
            f"on_timeout={self.request.on_timeout.value}"
        )
        return self._decided(Decision.EXPIRED, "system", Channel.SYSTEM, now, None, reason)

    def cancel(self, *, actor: str, now: datetime, comment: str = "run cancelled") -> Entry:
        if self.status.terminal:
            raise AlreadyDecided(self)
        return self._decided(Decision.CANCELLED, actor, Channel.SYSTEM, now, None, comment)

    def apply(self, entry: Entry) -> "Approval":
        assert entry.seq == self.version + 1, "entries apply in order"
        self.entries.append(entry)
        return self

    def _decided(
        self,
        decision: Decision,
        reviewer: str,
        channel: Channel,
        now: datetime,
        arguments: dict[str, Any] | None,
        comment: str,
    ) -> Entry:
        event = ApprovalDecided(
            correlation_id=self.correlation_id,
            run_id=self.request.run_id,
            decision=decision,
            arguments=arguments,
            reviewer=reviewer,
            channel=channel,
            comment=comment,
            decided_at=now,
        )
        return Entry(
            seq=self.version + 1,
            type=EntryType.DECIDED,
            at=now,
            actor=reviewer,
            channel=channel,
            data=event.model_dump(mode="json"),
            publish=True,
        )
