"""The read side: every listing a channel shows, read from the projection and decoded here.

Decisions go through `ApprovalService` and the approval's stream; listings read the
`approvals` / `approvals_archive` projection rows the repository keeps, which are
built for queries. The REST listing, the web queue (and so the CLI, which reads the
REST listing) and `/metrics` all read through this module, and a row is decoded in
one place (`decode`). A row this service cannot read is left out of a listing and
logged, never a failure of the whole page (asked for by id it answers 409).
"""

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from hitl_contracts import ApprovalDecided, ApprovalRequested, RiskLevel
from hitl_shared.mongo import Document
from pymongo import ASCENDING, DESCENDING

from hitl_approval.adapters.repository import ApprovalRepository, Filters
from hitl_approval.domain.model import Status
from hitl_approval.domain.policy import Policy

log = logging.getLogger(__name__)

Sort = Literal["newest", "urgent"]
STATUSES = tuple(status.value for status in Status)
# Most severe first, as a reviewer scans them.
RISKS = tuple(reversed([risk.value for risk in RiskLevel]))


@dataclass(frozen=True)
class Row:
    """One approval as a listing shows it."""

    correlation_id: str
    status: Status
    version: int
    expires_at: datetime
    escalated: bool
    approvers: list[str]
    policy: Policy
    request: ApprovalRequested
    decision: ApprovalDecided | None


def decode(doc: Document) -> Row:
    """A projection row (see `ApprovalRepository._projection`); raises if it cannot be read."""
    decision_json = doc.get("decision_json")
    return Row(
        correlation_id=doc["_id"],
        status=Status(doc["status"]),
        version=doc["version"],
        expires_at=doc["expires_at"],
        escalated=bool(doc["escalated"]),
        approvers=list(doc["approvers"]),
        policy=Policy.model_validate(doc["policy"]),
        request=ApprovalRequested.model_validate_json(doc["request_json"]),
        decision=ApprovalDecided.model_validate_json(decision_json) if decision_json else None,
    )


def _readable(docs: list[Document]) -> list[Row]:
    rows = []
    for doc in docs:
        try:
            rows.append(decode(doc))
        except (ValueError, TypeError, KeyError) as exc:
            log.error(
                "listing: approval %s cannot be read (%s); left out",
                doc.get("_id"),
                type(exc).__name__,
                extra={"correlation_id": str(doc.get("_id"))},
            )
    return rows


@dataclass(frozen=True)
class RowPage:
    rows: list[Row]
    next_cursor: str | None


@dataclass(frozen=True)
class QueueQuery:
    """The web queue's view: a status (None: all), optional filters, and an order."""

    status: str | None = "pending"
    agent: str | None = None
    risk: str | None = None
    sort: Sort = "newest"
    limit: int = 100

    def filter(self) -> dict[str, Any]:
        query: dict[str, Any] = {}
        if self.status:
            query["status"] = self.status
        if self.agent:
            query["agent"] = self.agent
        if self.risk:
            query["risk_level"] = self.risk
        return query

    def order(self) -> list[tuple[str, int]]:
        # Urgent: soonest expiry first, which the projection's `expires_at` index serves.
        if self.sort == "urgent":
            return [("expires_at", ASCENDING), ("_id", ASCENDING)]
        return [("requested_at", DESCENDING), ("_id", DESCENDING)]


class Views:
    def __init__(self, repo: ApprovalRepository) -> None:
        self.repo = repo

    async def page(self, filters: Filters, *, limit: int, cursor: str | None) -> RowPage:
        """Newest first, keyset-paged; ValueError for a cursor this service did not hand out."""
        page = await self.repo.page(filters, limit=limit, cursor=cursor)
        return RowPage(_readable(page.items), page.next_cursor)

    async def queue(self, query: QueueQuery) -> list[Row]:
        found = await self.repo.find_rows(
            query.filter(), status=query.status, order=query.order(), limit=query.limit
        )
        return _readable(found)

    async def queue_signature(self, query: QueueQuery) -> str:
        """Changes whenever an approval enters, leaves or changes in this view of the queue."""
        found = await self.repo.find_rows(
            query.filter(),
            status=query.status,
            order=query.order(),
            limit=query.limit,
            fields={"_id": 1, "version": 1},
        )
        digest = hashlib.sha256()
        for doc in found:
            digest.update(f"{doc['_id']}:{doc['version']};".encode())
        return digest.hexdigest()[:16]

    async def agents(self) -> list[str]:
        return await self.repo.agents()

    async def pending_count(self) -> int:
        return await self.repo.count_pending()
