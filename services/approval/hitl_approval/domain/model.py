"""The approval lifecycle as a pure state machine over an append-only stream.

An approval is the fold of its entries: seq 0 is the request (with the policy it is
decided under), later entries are votes, an escalation, and at most one terminal
decision. The store makes an append atomic by the unique (approval, seq) key, so two
writers that read the same version cannot both append: exactly one decision wins,
and under a quorum the vote that completes it is the decision.
"""

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from hitl_contracts import (
    ApprovalDecided,
    ApprovalRequested,
    Channel,
    Decision,
    OnTimeout,
)
from hitl_contracts.edits import edit_problem
from hitl_contracts.identity import identity_key, same_identity

from hitl_approval.domain.arguments import json_problems, schema_problems, with_defaults
from hitl_approval.domain.errors import (
    AlreadyDecided,
    AlreadyVoted,
    ApprovalError,
    BrokenApproval,
    Conflict,
    InvalidDecision,
    NotAllowed,
    NotDue,
    NotFound,
    TooLate,
    VersionMismatch,
)
from hitl_approval.domain.policy import Policy
from hitl_approval.domain.stream import Entry, EntryType, Status, Verb

__all__ = [
    "AlreadyDecided",
    "AlreadyVoted",
    "Approval",
    "ApprovalError",
    "BrokenApproval",
    "Conflict",
    "Entry",
    "EntryType",
    "InvalidDecision",
    "NotAllowed",
    "NotDue",
    "NotFound",
    "Status",
    "TooLate",
    "Verb",
    "VersionMismatch",
]

SYSTEM_ACTOR = "system"
# Channels whose reviewer fills in a form, so a rejection there says why (the agent
# hands the reason to its model). Slack's buttons carry no text, and API callers
# (the CLI asks for --comment itself) keep the reason optional.
REASON_REQUIRED = frozenset({Channel.WEB})
REASON_MISSING = "Say why you reject it: the comment goes back to the agent"


@dataclass
class Approval:
    request: ApprovalRequested
    policy: Policy = field(default_factory=Policy)
    entries: list[Entry] = field(default_factory=list)

    @classmethod
    def requested(cls, request: ApprovalRequested, policy: Policy | None = None) -> "Approval":
        policy = policy or Policy()
        entry = Entry(
            seq=0,
            type=EntryType.REQUESTED,
            at=request.requested_at,
            actor=request.agent,
            channel=Channel.SYSTEM,
            data={
                "request": request.model_dump(mode="json"),
                "policy": policy.model_dump(mode="json"),
            },
        )
        return cls(request=request, policy=policy, entries=[entry])

    @classmethod
    def from_entries(cls, entries: list[Entry]) -> "Approval":
        first = entries[0]
        assert first.type is EntryType.REQUESTED, "stream must start with the request"
        return cls(
            request=ApprovalRequested.model_validate(first.data["request"]),
            policy=Policy.model_validate(first.data["policy"]),
            entries=list(entries),
        )

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

    @property
    def on_timeout(self) -> OnTimeout:
        return self.policy.on_timeout or self.request.on_timeout

    @property
    def escalated(self) -> bool:
        return self.request.escalated or any(e.type is EntryType.ESCALATED for e in self.entries)

    @property
    def expires_at(self) -> datetime:
        """The deadline in force: the request's, capped by the policy, or the escalation's."""
        for entry in reversed(self.entries):
            if entry.type is EntryType.ESCALATED:
                return datetime.fromisoformat(entry.data["expires_at"])
        deadline = self.request.expires_at
        if self.policy.timeout_seconds is not None:
            cap = self.request.requested_at + timedelta(seconds=self.policy.timeout_seconds)
            deadline = min(deadline, cap)
        return deadline

    @property
    def proposal(self) -> dict[str, Any]:
        """The arguments approvals currently count for (the latest edit, or the original)."""
        return self._tally()[0]

    @property
    def approvers(self) -> list[str]:
        """Whose approval counts: quorum progress while pending, then the decision's."""
        decided = self.decision
        return list(decided.approvers) if decided else self._tally()[1]

    def is_due(self, now: datetime) -> bool:
        return self.status is Status.PENDING and now >= self.expires_at

    def decide(
        self,
        verb: Verb,
        *,
        reviewer: str,
        channel: Channel,
        now: datetime,
        arguments: dict[str, Any] | None = None,
        comment: str = "",
        groups: frozenset[str] = frozenset(),
        refuse_unknown_submitter: bool = False,
        idempotency: str = "",
    ) -> Entry:
        """The entry that records this reviewer's decision or vote; raises if it cannot.

        `refuse_unknown_submitter`: under four-eyes, refuse approving a request whose
        submitter is unknown (nobody can be shown to be a second person).
        `idempotency` is kept on the entry (see `Entry.idempotency`).
        """
        entry = self._decision(
            verb, reviewer, channel, now, arguments, comment, groups, refuse_unknown_submitter
        )
        return dataclasses.replace(entry, idempotency=idempotency) if idempotency else entry

    def _decision(
        self,
        verb: Verb,
        reviewer: str,
        channel: Channel,
        now: datetime,
        arguments: dict[str, Any] | None,
        comment: str,
        groups: frozenset[str],
        refuse_unknown_submitter: bool,
    ) -> Entry:
        if verb is Verb.REJECT and channel in REASON_REQUIRED and not comment.strip():
            raise InvalidDecision(REASON_MISSING)
        self._check_allowed(verb, reviewer, groups, refuse_unknown_submitter)
        if self.status.terminal:
            raise AlreadyDecided(self)
        if self.is_due(now):
            # The timeout goes first, whether or not the sweeper ran yet.
            raise TooLate(self.expire(now))
        if verb is Verb.REJECT:
            return self._decided(Decision.REJECTED, reviewer, channel, now, None, comment)
        proposal, approvers = self._tally()
        if verb is Verb.MODIFY:
            self._check_arguments(arguments)
            assert arguments is not None
            if arguments != proposal:
                # An edit is a new proposal: earlier approvals were for other arguments.
                proposal, approvers = arguments, []
        if any(same_identity(reviewer, a) for a in approvers):
            raise AlreadyVoted(self, reviewer)
        approvers = [*approvers, reviewer]
        if len(approvers) < self.policy.quorum:
            return Entry(
                seq=self.version + 1,
                type=EntryType.VOTE,
                at=now,
                actor=reviewer,
                channel=channel,
                data={"verb": verb.value, "arguments": proposal, "comment": comment},
            )
        edited = verb is Verb.MODIFY or proposal != self.request.arguments
        outcome = Decision.MODIFIED if edited else Decision.APPROVED
        return self._decided(outcome, reviewer, channel, now, proposal, comment, approvers)

    def cancel(self, *, actor: str, now: datetime, comment: str = "") -> Entry:
        if self.status.terminal:
            raise AlreadyDecided(self)
        if self.is_due(now):
            raise TooLate(self.expire(now))
        return self._decided(
            Decision.CANCELLED, actor, Channel.SYSTEM, now, None, comment or "run cancelled"
        )

    def expire(self, now: datetime) -> Entry:
        """What the deadline does: escalate once (on_timeout=escalate), else expire."""
        if self.status.terminal:
            raise AlreadyDecided(self)
        deadline = self.expires_at
        if now < deadline:
            raise NotDue(f"{self.correlation_id} expires at {deadline.isoformat()}")
        if self.on_timeout is OnTimeout.ESCALATE and not self.escalated:
            return self._escalation(now, deadline)
        reason = (
            f"no decision within the timeout (expired at {deadline.isoformat()}); "
            f"on_timeout={self.on_timeout.value}"
            + ("; already escalated once" if self.escalated else "")
        )
        return self._decided(Decision.EXPIRED, SYSTEM_ACTOR, Channel.SYSTEM, now, None, reason)

    def as_of(self, seq: int) -> "Approval":
        """The approval as it was right after entry `seq`."""
        return Approval(self.request, self.policy, self.entries[: seq + 1])

    def entry_for(self, idempotency_key: str) -> Entry | None:
        """The decision or vote recorded with this Idempotency-Key id, if any."""
        for entry in self.entries:
            if entry.idempotency.partition(":")[0] == idempotency_key:
                return entry
        return None

    def apply(self, entry: Entry) -> "Approval":
        assert entry.seq == self.version + 1, "entries apply in order"
        self.entries.append(entry)
        return self

    def _check_allowed(
        self, verb: Verb, reviewer: str, groups: frozenset[str], refuse_unknown_submitter: bool
    ) -> None:
        allowed = set(self.policy.groups)
        if allowed and not groups & allowed:
            raise NotAllowed(
                f"reviewer {reviewer!r} is not in a group allowed to decide this approval "
                f"(allowed: {', '.join(sorted(allowed))})"
            )
        if verb is Verb.REJECT or not self.policy.four_eyes:
            return
        submitter = self.request.requested_by
        # Names compare as identities: "Carol" and its full-width form are one person.
        if same_identity(submitter, reviewer):
            raise NotAllowed(
                f"four-eyes policy: {reviewer!r} submitted this task and may not approve it; "
                "another reviewer must (rejecting is allowed)"
            )
        if not identity_key(submitter) and refuse_unknown_submitter:
            raise NotAllowed(
                "four-eyes policy: this task's submitter is unknown, so no reviewer can be "
                "shown to be a second person; it can only be rejected (or left to expire). "
                "Operators: APPROVAL_FOUR_EYES_UNKNOWN_SUBMITTER=allow accepts such approvals"
            )

    def _check_arguments(self, arguments: dict[str, Any] | None) -> None:
        if not arguments:
            raise InvalidDecision("modify needs the edited arguments")
        if problem := json_problems(arguments):
            raise InvalidDecision(problem)
        schema = self.request.arguments_schema
        if schema is not None and (problem := schema_problems(arguments, schema)):
            raise InvalidDecision(
                f"the edited arguments do not fit the {self.request.tool} tool's schema: {problem}"
            )
        # Against the request as asked, not an earlier vote's edit: no edit widens it.
        # Compared as the tool will run it: a field left out takes its schema default
        # (the agent fills it the same way), so omitting a default is not a change.
        as_run = with_defaults(arguments, schema, requested=self.request.arguments)
        if problem := edit_problem(self.request.arguments, as_run, self.request.edit_policy):
            raise InvalidDecision(f"this edit would widen what was asked: {problem}")

    def _tally(self) -> tuple[dict[str, Any], list[str]]:
        proposal: dict[str, Any] = self.request.arguments
        approvers: list[str] = []
        for entry in self.entries:
            if entry.type is not EntryType.VOTE:
                continue
            if entry.data["arguments"] != proposal:
                proposal, approvers = entry.data["arguments"], []
            if not any(same_identity(entry.actor, a) for a in approvers):
                approvers.append(entry.actor)
        return proposal, approvers

    def _escalation(self, now: datetime, deadline: datetime) -> Entry:
        seconds = (
            self.request.escalation_seconds
            or self.policy.escalation_seconds
            or max((deadline - self.request.requested_at).total_seconds(), 1.0)
        )
        extended = max(now, deadline) + timedelta(seconds=seconds)
        event = self.request.model_copy(
            update={
                "event_id": uuid4(),
                "occurred_at": now,
                "expires_at": extended,
                "escalated": True,
            }
        )
        return Entry(
            seq=self.version + 1,
            type=EntryType.ESCALATED,
            at=now,
            actor=SYSTEM_ACTOR,
            channel=Channel.SYSTEM,
            data={
                "expires_at": extended.isoformat(),
                "previous_expires_at": deadline.isoformat(),
                "event": event.model_dump(mode="json"),
            },
            publish=True,
        )

    def _decided(
        self,
        decision: Decision,
        reviewer: str,
        channel: Channel,
        now: datetime,
        arguments: dict[str, Any] | None,
        comment: str,
        approvers: list[str] | None = None,
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
            approvers=approvers or [],
            agent=self.request.agent,
            tool=self.request.tool,
            tool_call_id=self.request.tool_call_id,
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
