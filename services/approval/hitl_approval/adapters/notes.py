"""What the notifier did about an approval (`approval_notes`), kept beside its stream.

Notes are not decisions, so they stay out of the decision stream: a note never takes
a seq a decision needs. `_id` is the notification's `event_id`, so a redelivered
`notifications` event is stored once.
"""

from hitl_contracts import NotificationRecorded
from hitl_shared.mongo import Document, ensure_query_index, insert_once
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from hitl_approval.adapters.storable import readable
from hitl_approval.domain.history import Note

NOTES = "approval_notes"


class NoteRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.notes = db[NOTES]

    async def ensure_indexes(self) -> None:
        await ensure_query_index(
            self.notes, [("correlation_id", ASCENDING), ("at", ASCENDING)], name="by_approval"
        )

    async def record(self, event: NotificationRecorded) -> bool:
        """Store one notification outcome; False when this event was stored before."""
        return await insert_once(
            self.db,
            NOTES,
            readable(
                {
                    "_id": str(event.event_id),
                    "correlation_id": event.correlation_id,
                    "run_id": event.run_id,
                    "at": event.occurred_at,
                    "channel": event.channel,
                    "recipient": event.recipient,
                    "kind": event.kind.value,
                    "status": event.status.value,
                    "attempts": event.attempts,
                    "error": event.error,
                    "message_ref": event.message_ref,
                }
            ),
        )

    async def of(self, correlation_id: str) -> list[Note]:
        found = self.notes.find({"correlation_id": correlation_id}).sort("at", ASCENDING)
        return [
            Note(
                correlation_id=doc["correlation_id"],
                at=doc["at"],
                channel=doc["channel"],
                recipient=doc["recipient"],
                kind=doc["kind"],
                status=doc["status"],
                attempts=doc["attempts"],
                error=doc["error"],
                message_ref=doc["message_ref"],
            )
            async for doc in found
        ]
