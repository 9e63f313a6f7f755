"""Web sign-in sessions kept in the store, so signing out (or revoking a token) ends them.

The browser holds a random session id, never the reviewer's API token; the store
holds only the id's SHA-256 and the token's hash. A session is good while its record
exists, has not expired, and its token is still in the reviewer directory.
"""

import hashlib
import secrets
from datetime import datetime, timedelta

from hitl_shared.mongo import Document, ensure_index
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

SESSIONS = "web_sessions"


def _id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class WebSessions:
    def __init__(self, db: AsyncDatabase[Document], *, lifetime: timedelta) -> None:
        self.sessions = db[SESSIONS]
        self.lifetime = lifetime

    async def ensure_indexes(self) -> None:
        await ensure_index(self.sessions, [("expires_at", ASCENDING)], name="expiry")

    async def open(self, token_sha256: str, *, now: datetime) -> str:
        """A new session for the reviewer with this token hash; returns its id."""
        session_id = secrets.token_urlsafe(32)
        await self.sessions.insert_one(
            {
                "_id": _id(session_id),
                "token_sha256": token_sha256,
                "expires_at": now + self.lifetime,
            }
        )
        return session_id

    async def token_of(self, session_id: str, *, now: datetime) -> str | None:
        """The token hash of a live session; None when unknown, ended or expired."""
        if not session_id:
            return None
        doc = await self.sessions.find_one({"_id": _id(session_id)})
        if doc is None or doc["expires_at"] <= now:
            return None
        return str(doc["token_sha256"])

    async def close(self, session_id: str) -> None:
        if session_id:
            await self.sessions.delete_one({"_id": _id(session_id)})

    async def forget_before(self, cutoff: datetime) -> int:
        result = await self.sessions.delete_many({"expires_at": {"$lt": cutoff}})
        return result.deleted_count
