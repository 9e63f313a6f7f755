"""The reviewer queue: a read of the listing projection (pending rows, or all of them).

The REST API pages newest first only; the queue also sorts by urgency (soonest
expiry first), which the projection's `expires_at` index serves directly. The
pending queue reads only the small collection of pending rows.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pymongo import ASCENDING, DESCENDING

from hitl_approval.adapters.repository import ApprovalRepository

Sort = Literal["newest", "urgent"]
STATUSES = ("pending", "approved", "modified", "rejected", "expired", "cancelled")
RISKS = ("critical", "high", "medium", "low")


@dataclass(frozen=True)
class QueueQuery:
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
        if self.sort == "urgent":
            return [("expires_at", ASCENDING), ("_id", ASCENDING)]
        return [("requested_at", DESCENDING), ("_id", DESCENDING)]


@dataclass(frozen=True)
class QueueItem:
    correlation_id: str
    run_id: str
    agent: str
    tool: str
    risk: str
    status: str
    version: int
    requested_at: datetime
    expires_at: datetime
    arguments: dict[str, Any]
    reason: str
    user_request: str
    escalated: bool
    approvers: list[str]
    quorum: int

    @classmethod
    def of(cls, doc: dict[str, Any]) -> "QueueItem":
        # `request_json` is the exact request; `request` a copy made storable for queries.
        exact = doc.get("request_json")
        request = json.loads(exact) if isinstance(exact, str) else doc.get("request") or {}
        return cls(
            correlation_id=doc["_id"],
            run_id=doc["run_id"],
            agent=doc["agent"],
            tool=doc["tool"],
            risk=doc["risk_level"],
            status=doc["status"],
            version=doc["version"],
            requested_at=doc["requested_at"],
            expires_at=doc["expires_at"],
            arguments=dict(request.get("arguments") or {}),
            reason=str(request.get("reason", "")),
            user_request=str((request.get("context") or {}).get("user_request", "")),
            escalated=bool(doc.get("escalated")),
            approvers=list(doc.get("approvers") or []),
            quorum=int((doc.get("policy") or {}).get("quorum", 1)),
        )


async def load(repo: ApprovalRepository, query: QueueQuery) -> list[QueueItem]:
    found = await repo.find_rows(
        query.filter(), status=query.status, order=query.order(), limit=query.limit
    )
    return [QueueItem.of(doc) for doc in found]


async def agents(repo: ApprovalRepository) -> list[str]:
    return await repo.agents()


async def signature(repo: ApprovalRepository, query: QueueQuery) -> str:
    """Changes whenever an approval enters, leaves or changes in this view of the queue."""
    found = await repo.find_rows(
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
