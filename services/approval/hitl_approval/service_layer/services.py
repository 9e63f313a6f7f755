"""Use cases of the approval service: ingest, decide, cancel, expire, history.

Each use case reads the stream, asks the pure domain for the next entry and appends
it with the unique-key insert. A lost race re-reads and asks the domain again, so
the loser sees the winner's state (409) rather than overwriting it. Publishing is `outbox.py`'s.
"""

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hitl_contracts import (
    ApprovalDecided,
    ApprovalRequested,
    Channel,
    NotificationRecorded,
)
from hitl_contracts.base import utcnow
from hitl_contracts.identity import identity_key
from hitl_contracts.signing import DecisionSigner
from hitl_shared.directory import Directory
from hitl_shared.http_limits import BROKER_ERRORS, STORE_ERRORS
from pymongo.errors import ExecutionTimeout

from hitl_approval.adapters.metrics import ApprovalMetrics
from hitl_approval.domain.history import HistoryEvent, history
from hitl_approval.domain.model import (
    AlreadyDecided,
    Approval,
    ApprovalError,
    BrokenApproval,
    Entry,
    EntryType,
    NotAllowed,
    NotDue,
    NotFound,
    TooLate,
    Verb,
    VersionMismatch,
)
from hitl_approval.domain.policy import PolicyBook
from hitl_approval.domain.reviewer import Role
from hitl_approval.service_layer.deadlines import Deadlines
from hitl_approval.service_layer.outbox import (
    Outbox,
)
from hitl_approval.service_layer.ports import ApprovalStore, NoteStore

log = logging.getLogger(__name__)

MAX_RACE_RETRIES = 64


Clock = Callable[[], datetime]


def _ignore(_: Approval) -> None:
    pass


@dataclass
class DecideCommand:
    correlation_id: str
    verb: Verb
    reviewer: str
    channel: Channel
    arguments: dict[str, Any] | None = None
    comment: str = ""
    if_match: int | None = None
    # `<key id>:<fingerprint>` of the request's Idempotency-Key, kept with the decision.
    idempotency: str = ""


class ApprovalService:
    """The approval use cases; the one place decisions are taken, whatever the channel.

    How an entrypoint decides (REST, web page, Slack, email alike): authenticate the
    person your own way, map them to the reviewer *name* configured in the reviewer
    directory (`APPROVAL_REVIEWERS[_FILE]`, names compare as identities), then call
    `await service.decide(DecideCommand(correlation_id, Verb(...), reviewer=name,
    channel=Channel.<yours>, arguments=..., comment=...))`. The service applies the
    same rules to everyone: the reviewer role (a known name without it is refused),
    the approval's policy (allowed groups from the directory, four-eyes, quorum), the
    argument schema for `modify`, the deadline, and exactly-one-winner. A name not in
    the directory belongs to no group. Catch `AlreadyDecided` / `AlreadyVoted`
    (`Conflict`, 409: `.approval` is the current state), `NotAllowed` (403),
    `InvalidDecision` (422), `NotFound` (404) and `VersionMismatch` (412).
    """

    def __init__(
        self,
        repo: ApprovalStore,
        *,
        outbox: Outbox,
        notes: NoteStore,
        metrics: ApprovalMetrics,
        policies: PolicyBook | None = None,
        reviewers: Directory | None = None,
        signer: DecisionSigner | None = None,
        refuse_unknown_submitter: bool = False,
        clock: Clock = utcnow,
        on_committed: Callable[[Approval], None] | None = None,
    ) -> None:
        self.repo = repo
        self.outbox = outbox
        self.notes = notes
        self.metrics = metrics
        self.policies = policies or PolicyBook()
        self.reviewers = reviewers or Directory({})
        # None only before start-up finished loading the key (and in tests of other things).
        self.signer = signer
        self.refuse_unknown_submitter = refuse_unknown_submitter
        self.clock = clock
        # Told of every stored entry (decision analytics queues ended approvals): no I/O.
        self.on_committed = on_committed or _ignore
        self.deadlines = Deadlines()

    async def ingest(self, request: ApprovalRequested) -> bool:
        """Store a request; a redelivered one (or our own escalated copy) creates nothing new."""
        approval = Approval.requested(request, self.policies.resolve(request))
        created = await self.repo.add(approval)
        self._ingested(approval, created)
        return created

    async def ingest_many(self, requests: list[ApprovalRequested]) -> list[bool]:
        """`ingest` for a batch, new requests stored in one insert per collection.

        Escalated copies (our own re-publications) take the one-by-one path of `ingest`
        unchanged. True for each request that created an approval now.
        """
        results = [False] * len(requests)
        fresh = [i for i, r in enumerate(requests) if not r.escalated]
        approvals = [
            Approval.requested(requests[i], self.policies.resolve(requests[i])) for i in fresh
        ]
        created = await self.repo.add_many(approvals)
        for i, approval, new in zip(fresh, approvals, created, strict=True):
            self._ingested(approval, new)
            results[i] = new
        for i, request in enumerate(requests):
            if request.escalated:
                results[i] = await self.ingest(request)
        return results

    def _ingested(self, approval: Approval, created: bool) -> None:
        request = approval.request
        # Also on redelivery: a wrong guess only costs one read when it falls due.
        self.deadlines.set(approval.correlation_id, approval.expires_at)
        if created:
            what = "stored"
        elif request.escalated:
            what = "escalation already recorded in its stream"
        else:
            what = "already stored (redelivery)"
        log.info(
            "approval %s",
            what,
            extra={"correlation_id": request.correlation_id, "run_id": request.run_id},
        )

    async def record_note(self, event: NotificationRecorded) -> bool:
        return await self.notes.record(event)

    async def get(self, correlation_id: str) -> Approval:
        approval = await self.repo.get(correlation_id)
        if approval is None:
            raise NotFound(f"no approval with correlation id {correlation_id!r}")
        return approval

    async def history(self, correlation_id: str) -> list[HistoryEvent]:
        approval = await self.get(correlation_id)
        return history(approval, await self.notes.of(correlation_id))

    async def decide(self, cmd: DecideCommand) -> Approval:
        """Record one reviewer's decision (or quorum vote); see the class docstring."""
        groups = self._groups_of(cmd.reviewer)
        # First from the stream as this replica last stored or read it, without a read:
        # the append takes the next seq by unique key, so it succeeds only if that view
        # was the whole stream. A lost race, or any refusal, is decided again on a read.
        known = self.repo.recent(cmd.correlation_id)
        for _ in range(MAX_RACE_RETRIES):
            optimistic = known is not None
            approval = known or await self.get(cmd.correlation_id)
            known = None
            try:
                stale = cmd.if_match is not None and cmd.if_match != approval.version
                if stale and not approval.status.terminal:
                    raise VersionMismatch(approval, cmd.if_match or 0)
                entry = approval.decide(
                    cmd.verb,
                    reviewer=cmd.reviewer,
                    channel=cmd.channel,
                    now=self.clock(),
                    arguments=cmd.arguments,
                    comment=cmd.comment,
                    groups=groups,
                    refuse_unknown_submitter=self.refuse_unknown_submitter,
                    idempotency=cmd.idempotency,
                )
            except TooLate as late:
                if not optimistic:
                    await self._commit(approval, late.timeout)
                continue  # re-read: expired (409) or escalated (decide again, in time)
            except ApprovalError:
                if optimistic:
                    continue  # refused on what this replica knew: see the whole stream
                raise
            if await self._commit(approval, entry):
                self._note_unknown_submitter(approval, cmd)
                return approval
            # Lost the race for this seq: with If-Match that is a version mismatch.
            if cmd.if_match is not None:
                current = await self.get(cmd.correlation_id)
                if not current.status.terminal:
                    raise VersionMismatch(current, cmd.if_match)
        raise RuntimeError(f"gave up deciding {cmd.correlation_id} after {MAX_RACE_RETRIES} races")

    async def cancel(self, correlation_id: str, *, actor: str, comment: str = "") -> Approval:
        """End a pending approval as `cancelled` (its run was cancelled)."""
        for _ in range(MAX_RACE_RETRIES):
            approval = await self.get(correlation_id)
            try:
                entry = approval.cancel(actor=actor, now=self.clock(), comment=comment)
            except TooLate as late:
                await self._commit(approval, late.timeout)
                continue
            if await self._commit(approval, entry):
                return approval
        raise RuntimeError(f"gave up cancelling {correlation_id} after {MAX_RACE_RETRIES} races")

    async def expire_due(self) -> int:
        """Escalate or expire what this replica knows is due; no scan of the store."""
        return await self._expire(self.deadlines.due(self.clock()))

    async def sweep_all(self) -> int:
        """Escalate or expire everything overdue in the store (what other replicas knew)."""
        return await self._expire(await self.repo.due(self.clock()))

    async def _expire(self, correlation_ids: list[str]) -> int:
        # Safe on many replicas at once: each expiry is the same unique-key append.
        handled = 0
        for correlation_id in correlation_ids:
            try:
                handled += await self._expire_one(correlation_id)
            except (*STORE_ERRORS, ExecutionTimeout, *BROKER_ERRORS):
                raise  # the store or broker is away: the next pass tries them all again
            except BrokenApproval as exc:
                # One bad approval never holds back another's deadline.
                self.deadlines.forget(correlation_id)
                await self.repo.set_aside(correlation_id, exc.reason)
                self.metrics.sweep_failures.inc()
                log.error("sweep: %s", exc, extra={"correlation_id": correlation_id})
            except Exception:
                self.deadlines.forget(correlation_id)
                self.metrics.sweep_failures.inc()
                log.exception(
                    "sweep: approval %s failed; going on with the others",
                    correlation_id,
                    extra={"correlation_id": correlation_id},
                )
        return handled

    async def _expire_one(self, correlation_id: str) -> int:
        approval = await self.repo.get(correlation_id)
        if approval is None:
            self.deadlines.forget(correlation_id)
            return 0
        try:
            entry = approval.expire(self.clock())
        except AlreadyDecided:
            await self.repo.project(approval)  # repair a projection a crash left behind
            return 0
        except NotDue:
            self.deadlines.set(correlation_id, approval.expires_at)
            await self.repo.project(approval)  # e.g. an escalation the projection missed
            return 0
        if not await self._commit(approval, entry):
            return 0
        extra = {"correlation_id": correlation_id, "run_id": approval.request.run_id}
        if entry.type is EntryType.ESCALATED:
            log.warning(
                "approval escalated: no decision by %s; deadline extended once to %s",
                entry.data["previous_expires_at"],
                entry.data["expires_at"],
                extra=extra,
            )
        else:
            log.warning("approval expired: %s", entry.data.get("comment"), extra=extra)
        return 1

    @staticmethod
    def _note_unknown_submitter(approval: Approval, cmd: DecideCommand) -> None:
        if cmd.verb is Verb.REJECT or not approval.policy.four_eyes:
            return
        if not identity_key(approval.request.requested_by):
            # Allowed by APPROVAL_FOUR_EYES_UNKNOWN_SUBMITTER=allow; worth an audit line.
            log.warning(
                "four-eyes: %s by %s on a request with no known submitter (allowed by "
                "APPROVAL_FOUR_EYES_UNKNOWN_SUBMITTER)",
                cmd.verb.value,
                cmd.reviewer,
                extra={"correlation_id": approval.correlation_id},
            )

    def _groups_of(self, name: str) -> frozenset[str]:
        reviewer = self.reviewers.named(name)
        if reviewer is None:
            return frozenset()
        if not reviewer.can(Role.REVIEWER):
            raise NotAllowed(f"{name!r} does not have the reviewer role")
        return reviewer.groups

    def _signed(self, entry: Entry) -> Entry:
        if entry.type is not EntryType.DECIDED or self.signer is None:
            return entry
        decided = self.signer.sign(ApprovalDecided.model_validate(entry.data))
        return dataclasses.replace(entry, data=decided.model_dump(mode="json"))

    async def _commit(self, approval: Approval, entry: Entry) -> bool:
        entry = self._signed(entry)
        with self.outbox.publishing(approval, entry):
            try:
                appended = await self.repo.append(approval, entry)
            except BaseException:
                # No answer is not "not stored": the write may land later still.
                self.outbox.doubt(approval, entry)
                raise
            if not appended:
                return False
            approval.apply(entry)
            self.on_committed(approval)
            if approval.status.terminal:
                self.deadlines.forget(approval.correlation_id)
            elif entry.type is EntryType.ESCALATED:
                self.deadlines.set(approval.correlation_id, approval.expires_at)
            self._observe(approval, entry)
            # Stored is decided: the listing row and the event depend only on the
            # stream, so both go at once and the decision reaches the agent without
            # waiting for the listing's writes.
            steps = [self.repo.project(approval)]
            if entry.publish:
                steps.append(self.outbox.publish_now(approval, entry))
            for outcome in await asyncio.gather(*steps, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    raise outcome
            return True

    def _observe(self, approval: Approval, entry: Entry) -> None:
        extra = {"correlation_id": approval.correlation_id, "run_id": approval.request.run_id}
        if entry.type is EntryType.VOTE:
            self.metrics.votes.inc()
            log.info(
                "approval vote by %s via %s: %d of %d",
                entry.actor,
                entry.channel,
                len(approval.approvers),
                approval.policy.quorum,
                extra=extra,
            )
        elif entry.type is EntryType.ESCALATED:
            self.metrics.escalations.inc()
        elif (decided := approval.decision) is not None:
            self.metrics.decided(decided, approval.request.requested_at.timestamp())
            log.info(
                "approval decided: %s by %s via %s",
                decided.decision,
                decided.reviewer,
                decided.channel,
                extra={**extra, "decision": decided.decision.value, "reviewer": decided.reviewer},
            )
