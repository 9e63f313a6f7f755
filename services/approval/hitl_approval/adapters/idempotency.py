"""Stored first responses for `Idempotency-Key`, per reviewer and key.

The record is inserted once (unique `_id`); a retry with the same key replays it.
Only the one request that won a decision (200) may replace a record an
overlapping duplicate wrote first, so a retry always sees the decision that held.
"""

import hashlib
import json
from datetime import datetime

from hitl_shared.mongo import Document, ensure_query_index, insert_once
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from hitl_approval.adapters.storable import dumps, loads
from hitl_approval.service_layer.ports import StoredResponse

KEYS = "idempotency_keys"


def fingerprint(*parts: object) -> str:
    """A digest of what was asked, so a key reused for another request is caught."""
    raw = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


def key_id(reviewer: str, key: str) -> str:
    return hashlib.sha256(f"{reviewer}\n{key}".encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.keys = db[KEYS]

    async def ensure_indexes(self) -> None:
        await ensure_query_index(self.keys, [("at", ASCENDING)], name="age")

    async def get(self, reviewer: str, key: str) -> StoredResponse | None:
        doc = await self.keys.find_one({"_id": key_id(reviewer, key)})
        if doc is None:
            return None
        return StoredResponse(
            doc["fingerprint"], doc["status_code"], loads(doc["body"]), doc["headers"]
        )

    async def remember(
        self, reviewer: str, key: str, response: StoredResponse, *, now: datetime
    ) -> StoredResponse:
        """Store `response` unless one is there; return the one that is kept."""
        doc = {
            "_id": key_id(reviewer, key),
            "reviewer": reviewer,
            "fingerprint": response.fingerprint,
            "status_code": response.status_code,
            "body": dumps(response.body),
            "headers": response.headers,
            "at": now,
        }
        if await insert_once(self.db, KEYS, doc):
            return response
        kept = await self.get(reviewer, key)
        if kept is None or (response.status_code == 200 and kept.status_code != 200):
            # Exactly one request wins a decision, so this overwrite has no rival.
            await self.keys.replace_one({"_id": doc["_id"]}, doc, upsert=True)
            return response
        return kept

    async def forget_before(self, cutoff: datetime) -> int:
        result = await self.keys.delete_many({"at": {"$lt": cutoff}})
        return result.deleted_count
