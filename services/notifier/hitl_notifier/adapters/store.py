"""MongoDB store of the notifier: what it knows of each approval, and every delivery.

`notifier_deliveries` has one document per delivery key; inserting it is the claim,
atomic on MongoDB and FerretDB alike, so a redelivered event notifies nobody twice.
`notifier_approvals` remembers the request and whether it was decided, for reminders
and for updating the messages already sent.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hitl_contracts import ApprovalDecided, ApprovalRequested, NotificationKind
from hitl_shared.mongo import Document, ensure_index, insert_once
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from hitl_notifier.domain.deliveries import Delivery, Target

APPROVALS = "notifier_approvals"
DELIVERIES = "notifier_deliveries"


@dataclass(frozen=True)
class ApprovalState:
    correlation_id: str
    request: ApprovalRequested | None
    decision: ApprovalDecided | None
    escalated: bool = False


@dataclass(frozen=True)
class DeliveryRecord:
    delivery: Delivery
    status: str
    attempts: int
    message_ref: str
    lease_until: datetime


def _state(doc: Document) -> ApprovalState:
    return ApprovalState(
        correlation_id=doc["_id"],
        request=ApprovalRequested.model_validate(doc["request"]) if doc.get("request") else None,
        decision=ApprovalDecided.model_validate(doc["decision"]) if doc.get("decision") else None,
        escalated=bool(doc.get("escalated")),
    )


def _record(doc: Document) -> DeliveryRecord:
    return DeliveryRecord(
        delivery=Delivery(
            correlation_id=doc["correlation_id"],
            run_id=doc["run_id"],
            kind=NotificationKind(doc["kind"]),
            target=Target(doc["channel"], doc["recipient"]),
            updates=doc.get("updates", ""),
        ),
        status=doc["status"],
        attempts=doc.get("attempts", 0),
        message_ref=doc.get("message_ref", ""),
        lease_until=doc["lease_until"],
    )


class NotifierStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.approvals = db[APPROVALS]
        self.deliveries = db[DELIVERIES]

    async def ensure_indexes(self) -> None:
        await ensure_index(
            self.approvals, [("status", ASCENDING), ("remind_at", ASCENDING)], name="reminders"
        )
        await ensure_index(self.deliveries, [("correlation_id", ASCENDING)], name="approval")
        await ensure_index(
            self.deliveries, [("status", ASCENDING), ("lease_until", ASCENDING)], name="leases"
        )

    # approvals

    async def remember(
        self, request: ApprovalRequested, *, remind_at: datetime | None, escalated: bool
    ) -> ApprovalState:
        """Record a request (or its escalation); returns what is known after that."""
        doc: Document = {
            "_id": request.correlation_id,
            "run_id": request.run_id,
            "request": request.model_dump(mode="json"),
            "status": "pending",
            "decision": None,
            "remind_at": remind_at,
            "reminded": False,
            "escalated": escalated,
        }
        if not await insert_once(self.db, APPROVALS, doc):
            existing = await self.approvals.find_one({"_id": request.correlation_id})
            assert existing is not None
            fields: dict[str, Any] = {}
            if not existing.get("request"):
                # The decision overtook the request (two topics, no order between them).
                fields["request"] = doc["request"]
            if escalated and not existing.get("escalated"):
                # A new deadline: the request carries it. No second reminder after that.
                fields.update(request=doc["request"], escalated=True, remind_at=None)
            if fields:
                await self.approvals.update_one({"_id": request.correlation_id}, {"$set": fields})
                existing.update(fields)
            return _state(existing)
        return _state(doc)

    async def record_decision(self, decided: ApprovalDecided) -> None:
        fields = {"status": "decided", "decision": decided.model_dump(mode="json")}
        doc: Document = {"_id": decided.correlation_id, "run_id": decided.run_id, **fields}
        if not await insert_once(self.db, APPROVALS, doc):
            await self.approvals.update_one({"_id": decided.correlation_id}, {"$set": fields})

    async def state(self, correlation_id: str) -> ApprovalState | None:
        doc = await self.approvals.find_one({"_id": correlation_id})
        return _state(doc) if doc else None

    async def due_reminders(self, now: datetime, *, limit: int = 200) -> list[ApprovalState]:
        found = self.approvals.find(
            {"status": "pending", "reminded": False, "remind_at": {"$lte": now}}
        ).limit(limit)
        return [_state(doc) async for doc in found]

    async def mark_reminded(self, correlation_id: str) -> None:
        await self.approvals.update_one({"_id": correlation_id}, {"$set": {"reminded": True}})

    # deliveries

    async def claim(self, delivery: Delivery, *, now: datetime, lease_until: datetime) -> bool:
        """True for the one caller that gets to send this delivery."""
        return await insert_once(
            self.db,
            DELIVERIES,
            {
                "_id": delivery.key,
                "correlation_id": delivery.correlation_id,
                "run_id": delivery.run_id,
                "kind": delivery.kind.value,
                "channel": delivery.target.channel,
                "recipient": delivery.target.recipient,
                "updates": delivery.updates,
                "status": "sending",
                "attempts": 0,
                "error": "",
                "message_ref": "",
                "created_at": now,
                "updated_at": now,
                "lease_until": lease_until,
            },
        )

    async def sent(self, correlation_id: str) -> list[DeliveryRecord]:
        found = self.deliveries.find({"correlation_id": correlation_id, "status": "sent"})
        return [_record(doc) async for doc in found]

    async def get(self, key: str) -> DeliveryRecord | None:
        doc = await self.deliveries.find_one({"_id": key})
        return _record(doc) if doc else None

    async def attempted(
        self, key: str, *, attempts: int, error: str, now: datetime, lease_until: datetime
    ) -> None:
        await self.deliveries.update_one(
            {"_id": key},
            {
                "$set": {
                    "attempts": attempts,
                    "error": error,
                    "updated_at": now,
                    "lease_until": lease_until,
                }
            },
        )

    async def finish(
        self,
        key: str,
        *,
        status: str,
        attempts: int,
        error: str = "",
        message_ref: str = "",
        now: datetime,
    ) -> None:
        await self.deliveries.update_one(
            {"_id": key},
            {
                "$set": {
                    "status": status,
                    "attempts": attempts,
                    "error": error,
                    "message_ref": message_ref,
                    "updated_at": now,
                }
            },
        )

    async def abandoned(self, now: datetime, *, limit: int = 100) -> list[DeliveryRecord]:
        found = self.deliveries.find({"status": "sending", "lease_until": {"$lt": now}}).limit(
            limit
        )
        return [_record(doc) async for doc in found]

    async def take_over(self, record: DeliveryRecord, *, lease_until: datetime) -> bool:
        """Renew an abandoned lease; False when someone else renewed it first.

        On FerretDB a conditional update is not a true compare-and-swap, so two
        replicas that find the same abandoned delivery in the same instant could both
        resend it; that needs a crash plus a race and errs toward notifying twice.
        """
        result = await self.deliveries.update_one(
            {"_id": record.delivery.key, "status": "sending", "lease_until": record.lease_until},
            {"$set": {"lease_until": lease_until}},
        )
        return result.modified_count == 1
