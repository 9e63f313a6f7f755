"""Single use of an email link: its token id inserted once into `email_link_uses`.

A unique insert is atomic on MongoDB and FerretDB, so a second use, even a
concurrent one, is refused.
"""

from datetime import datetime

from hitl_shared.mongo import Document, insert_once
from pymongo.asynchronous.database import AsyncDatabase

USES = "email_link_uses"


class LinkUses:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.uses = db[USES]

    async def used_at(self, token_id: str) -> datetime | None:
        doc = await self.uses.find_one({"_id": token_id})
        return None if doc is None else doc["at"]

    async def use(self, token_id: str, record: Document) -> bool:
        """True for the first use of this token; `record` says by whom, for what, when."""
        return await insert_once(self.db, USES, {**record, "_id": token_id})

    async def give_back(self, token_id: str) -> None:
        """The decision failed for reasons not the reviewer's (store, broker): usable again."""
        await self.uses.delete_one({"_id": token_id})
