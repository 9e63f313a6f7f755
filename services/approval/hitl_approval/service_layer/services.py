"""Use cases of the approval service: ingest, decide, expire, relay the outbox.

Each use case reads the stream, asks the pure domain for the next entry and appends
it with the unique-key insert. A lost race re-reads and asks the domain again, so
the loser sees the winner's terminal state (409) rather than overwriting it.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from hitl_shared.contracts import ApprovalDecided, ApprovalRequested, Channel

from hitl_approval.adapters.repository import ApprovalRepository
from hitl_approval.domain.model import (
    AlreadyDecided,
    Approval,
    ApprovalError,
    Entry,
    NotDue,
    TooLate,
    Verb,
)

log = logging.getLogger(__name__)

MAX_RACE_RETRIES = 64


class NotFound(ApprovalError):
    pass


class VersionMismatch(ApprovalError):
    def __init__(self, approval: Approval, expected: int) -> None:
        super().__init__(
            f"approval {approval.correlation_id} is at version {approval.version}, not {expected}"
        )
        self.approval = approval


class DecisionPublisher(Protocol):
    async def __call__(self, decided: ApprovalDecided) -> None: ...


Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class DecideCommand:
    correlation_id: str
    verb: Verb
    reviewer: str
    channel: Channel
    arguments: dict[str, Any] | None = None
    comment: str = ""
    if_match: int | None = None


# Test-only fault hook: called between the store write and the publish.
AfterCommitHook = Callable[[ApprovalDecided], Awaitable[None]]


class ApprovalService:
    def __init__(
        self,
        repo: ApprovalRepository,
        publish: DecisionPublisher,
        *,
        clock: Clock = utcnow,
        outbox_grace: timedelta = timedelta(seconds=2),
        after_commit: AfterCommitHook | None = None,
    ) -> None:
        self.repo = repo
        self.publish = publish
        self.clock = clock
        self.outbox_grace = outbox_grace
        self.after_commit = after_commit
        self.on_decided: list[Callable[[Approval], None]] = []

    async def ingest(self, request: ApprovalRequested) -> bool:
        """Store a request; a redelivered one creates nothing new."""
        created = await self.repo.add(Approval.requested(request))
        log.info(
            "approval %s",
            "stored" if created else "already stored (redelivery)",
            extra={"correlation_id": request.correlation_id, "run_id": request.run_id},
        )
        return created

    async def get(self, correlation_id: str) -> Approval:
        approval = await self.repo.get(correlation_id)
        if approval is None:
            raise NotFound(f"no approval with correlation id {correlation_id!r}")
        return approval

    async def decide(self, cmd: DecideCommand) -> Approval:
        for _ in range(MAX_RACE_RETRIES):
            approval = await self.get(cmd.correlation_id)
            if cmd.if_match is not None and cmd.if_match != approval.version:
                raise VersionMismatch(approval, cmd.if_match)
            try:
                entry = approval.decide(
                    cmd.verb,
                    reviewer=cmd.reviewer,
                    channel=cmd.channel,
                    now=self.clock(),
                    arguments=cmd.arguments,
                    comment=cmd.comment,
                )
            except TooLate as late:
                await self._commit(approval, late.expiry)
                continue  # re-read: now terminal, so the domain raises AlreadyDecided
            if await self._commit(approval, entry):
                return approval
            # Lost the race for this seq: with If-Match that is a version mismatch.
            if cmd.if_match is not None:
                raise VersionMismatch(await self.get(cmd.correlation_id), cmd.if_match)
        raise RuntimeError(f"gave up deciding {cmd.correlation_id} after {MAX_RACE_RETRIES} races")

    async def expire_due(self) -> int:
        """Expire every pending approval past its deadline; safe on many replicas."""
        expired = 0
        for correlation_id in await self.repo.due(self.clock()):
            approval = await self.repo.get(correlation_id)
            if approval is None:
                continue
            try:
                entry = approval.expire(self.clock())
            except AlreadyDecided:
                await self.repo.project(approval)  # repair a projection a crash left behind
                continue
            except NotDue:
                continue
            if await self._commit(approval, entry):
                expired += 1
                log.warning(
                    "approval expired: %s",
                    entry.data.get("comment"),
                    extra={"correlation_id": correlation_id, "run_id": approval.request.run_id},
                )
        return expired

    async def relay_outbox(self) -> int:
        """Publish decisions a crash left unpublished (at least once)."""
        relayed = 0
        for item in await self.repo.unpublished(before=self.clock() - self.outbox_grace):
            approval = await self.repo.get(item.correlation_id)
            if approval is not None:
                await self.repo.project(approval)
            await self.publish(item.decided)
            await self.repo.mark_published(
                item.correlation_id, int(item.entry_id.rsplit(":", 1)[1])
            )
            relayed += 1
            log.info("relayed decision from outbox", extra={"correlation_id": item.correlation_id})
        return relayed

    async def _commit(self, approval: Approval, entry: Entry) -> bool:
        if not await self.repo.append(approval, entry):
            return False
        approval.apply(entry)
        await self.repo.project(approval)
        decided = approval.decision
        if entry.publish and decided is not None:
            if self.after_commit:
                await self.after_commit(decided)
            await self.publish(decided)
            await self.repo.mark_published(approval.correlation_id, entry.seq)
            for hook in self.on_decided:
                hook(approval)
            log.info(
                "approval decided: %s by %s via %s",
                decided.decision,
                decided.reviewer,
                decided.channel,
                extra={"correlation_id": approval.correlation_id, "run_id": decided.run_id},
            )
        return True
