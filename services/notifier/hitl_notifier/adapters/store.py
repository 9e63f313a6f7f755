"""MongoDB store of the notifier: what it knows of each approval, and every delivery.

`notifier_deliveries` has one document per delivery key; inserting it is the claim,
atomic on MongoDB and FerretDB alike, so a redelivered event notifies nobody twice.
`notifier_approvals` remembers the request and whether it was decided, for reminders
and for updating the messages already sent.

Both grow with the history, and on FerretDB 1.x every query other than by `_id`
reads a whole collection. So what the periodic and per-decision work looks for is
also marked in small collections that hold only work still open: `notifier_open`
(deliveries still sending: lease expiry), `notifier_asked` (questions sent for an
approval not yet followed up: what a decision updates), `notifier_reminders`
(approvals with a reminder to come). A marker is written before the state it
points to and removed after, and readers check the state by `_id`; so a marker
may point to nothing left to do (it is dropped then), never the other way round.
"""

import contextlib
from datetime import datetime
from typing import Any

from hitl_contracts import ApprovalDecided, ApprovalRequested, NotificationKind
from hitl_shared.mongo import Document, ensure_query_index, insert_once
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from hitl_notifier.domain.deliveries import ApprovalState, Delivery, DeliveryRecord, Target

APPROVALS = "notifier_approvals"
DELIVERIES = "notifier_deliveries"
OPEN = "notifier_open"
ASKED = "notifier_asked"
REMINDERS = "notifier_reminders"
ASKING = (
    NotificationKind.REQUESTED.value,
    NotificationKind.REMINDER.value,
    NotificationKind.ESCALATION.value,
)


def _state(doc: Document) -> ApprovalState:
    return ApprovalState(
        correlation_id=doc["_id"],
        request=ApprovalRequested.model_validate(doc["request"]) if doc.get("request") else None,
        decision=ApprovalDecided.model_validate(doc["decision"]) if doc.get("decision") else None,
        escalated=bool(doc.get("escalated")),
        # Absent on approvals stored before the field, and on decisions that came first.
        asked=bool(doc.get("asked", True)),
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
        self.open = db[OPEN]
        self.asked = db[ASKED]
        self.reminders = db[REMINDERS]

    async def ensure_indexes(self) -> None:
        await ensure_query_index(
            self.approvals, [("status", ASCENDING), ("remind_at", ASCENDING)], name="reminders"
        )
        await ensure_query_index(self.deliveries, [("correlation_id", ASCENDING)], name="approval")
        await ensure_query_index(
            self.deliveries, [("status", ASCENDING), ("lease_until", ASCENDING)], name="leases"
        )

    # approvals

    async def remember(
        self,
        request: ApprovalRequested,
        *,
        remind_at: datetime | None,
        escalated: bool,
        asking: bool = True,
    ) -> ApprovalState:
        """Record a request (or its escalation); returns what is known after that.

        `asking`: questions will be claimed for it (stored before any is, so a decision
        that reads `asked` false knows none was)."""
        doc: Document = {
            "_id": request.correlation_id,
            "run_id": request.run_id,
            "request": request.model_dump(mode="json"),
            "status": "pending",
            "decision": None,
            "remind_at": remind_at,
            "reminded": False,
            "escalated": escalated,
            "asked": asking,
        }
        if remind_at is not None:
            await self._remind(request.correlation_id, remind_at)
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
                await self.reminders.delete_one({"_id": request.correlation_id})
            if asking and not existing.get("asked", True):
                fields["asked"] = True
            if fields:
                await self.approvals.update_one({"_id": request.correlation_id}, {"$set": fields})
                existing.update(fields)
            return _state(existing)
        return _state(doc)

    async def record_decision(self, decided: ApprovalDecided) -> ApprovalState:
        """Record the decision (before or after its request); returns what is known then.

        One round trip: an upsert by `_id` that answers with the document. FerretDB 1.x
        reads then writes, so two first writers can both insert: the loser gets a
        duplicate key and updates the winner's document instead.
        """
        fields = {"status": "decided", "decision": decided.model_dump(mode="json")}
        update = {"$set": fields, "$setOnInsert": {"run_id": decided.run_id}}
        doc: Document | None = None
        for _ in range(2):
            try:
                doc = await self.approvals.find_one_and_update(
                    {"_id": decided.correlation_id},
                    update,
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
                break
            except DuplicateKeyError:
                continue
        if doc is None:
            raise RuntimeError(f"approval {decided.correlation_id}: decision not recorded")
        if doc.get("remind_at") is not None and not doc.get("reminded"):
            # Its reminder is now moot. (A request remembered just after this leaves its
            # marker to the reminder sweep, which drops markers of decided approvals.)
            await self.reminders.delete_one({"_id": decided.correlation_id})
        return _state(doc)

    async def mark_asked(self, correlation_id: str) -> None:
        """Questions are about to be claimed for an approval remembered as unasked."""
        await self.approvals.update_one({"_id": correlation_id}, {"$set": {"asked": True}})

    async def state(self, correlation_id: str) -> ApprovalState | None:
        doc = await self.approvals.find_one({"_id": correlation_id})
        return _state(doc) if doc else None

    async def _remind(self, correlation_id: str, remind_at: datetime) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self.reminders.insert_one({"_id": correlation_id, "remind_at": remind_at})

    async def due_reminders(self, now: datetime, *, limit: int = 200) -> list[ApprovalState]:
        due: list[ApprovalState] = []
        found = self.reminders.find({"remind_at": {"$lte": now}}).limit(limit)
        for marker in [doc async for doc in found]:
            doc = await self.approvals.find_one({"_id": marker["_id"]})
            if (
                doc is not None
                and doc.get("status") == "pending"
                and not doc.get("reminded")
                and doc.get("remind_at") is not None
                and doc["remind_at"] <= now
            ):
                due.append(_state(doc))
            elif doc is None or doc.get("status") != "pending" or doc.get("reminded"):
                await self.reminders.delete_one({"_id": marker["_id"]})
        return due

    async def mark_reminded(self, correlation_id: str) -> None:
        await self.approvals.update_one({"_id": correlation_id}, {"$set": {"reminded": True}})
        await self.reminders.delete_one({"_id": correlation_id})

    # deliveries

    async def claim(self, delivery: Delivery, *, now: datetime, lease_until: datetime) -> bool:
        """True for the one caller that gets to send this delivery."""
        key = delivery.key
        # Markers first (see the module docstring); the claim's loser leaves them to
        # the winner, whose delivery they point to.
        with contextlib.suppress(DuplicateKeyError):
            await self.open.insert_one({"_id": key, "lease_until": lease_until})
        if delivery.kind.value in ASKING:
            with contextlib.suppress(DuplicateKeyError):
                await self.asked.insert_one({"_id": key, "correlation_id": delivery.correlation_id})
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
        """The questions sent for this approval (still marked as not followed up)."""
        found = self.asked.find({"correlation_id": correlation_id}, {"_id": 1})
        records = []
        for marker in [doc async for doc in found]:
            doc = await self.deliveries.find_one({"_id": marker["_id"]})
            if doc is None or doc.get("status") == "failed":
                await self.asked.delete_one({"_id": marker["_id"]})
            elif doc.get("status") == "sent":
                records.append(_record(doc))
        return records

    async def followed_up(self, keys: list[str]) -> None:
        """These questions have their decision's follow-up claimed: unmark them."""
        for key in keys:
            await self.asked.delete_one({"_id": key})

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
        if status != "sending":
            await self.open.delete_one({"_id": key})

    async def abandoned(self, now: datetime, *, limit: int = 100) -> list[DeliveryRecord]:
        # A marker's lease is the claim's: a later one (retries) is read from the delivery.
        found = self.open.find({"lease_until": {"$lt": now}}, {"_id": 1}).limit(limit)
        records = []
        for marker in [doc async for doc in found]:
            doc = await self.deliveries.find_one({"_id": marker["_id"]})
            if doc is None or doc.get("status") != "sending":
                await self.open.delete_one({"_id": marker["_id"]})
            elif doc["lease_until"] < now:
                records.append(_record(doc))
        return records

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
