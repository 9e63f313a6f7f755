"""The banking demo's accounts: an append-only ledger in MongoDB.

A balance is the opening amount plus the ledger entries that touch the account. A
transfer is ONE insert keyed by the tool call, so it applies at most once and never
half-way, on MongoDB and FerretDB alike (no multi-document transactions needed).
"""

from datetime import UTC, datetime, timedelta
from typing import Literal

from hitl_shared.mongo import Document, ensure_index, insert_once
from pymongo.asynchronous.database import AsyncDatabase

ACCOUNTS = "accounts"
LEDGER = "ledger"


class UnknownAccount(LookupError):
    pass


def to_cents(amount: float) -> int:
    return round(amount * 100)


class Ledger:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db

    async def ensure_indexes(self) -> None:
        await ensure_index(self.db[LEDGER], "from")
        await ensure_index(self.db[LEDGER], "to")

    async def seed(self, opening: dict[str, float]) -> None:
        for account, amount in opening.items():
            await insert_once(
                self.db, ACCOUNTS, {"_id": account, "opening_cents": to_cents(amount)}
            )

    async def accounts(self) -> list[str]:
        return [doc["_id"] async for doc in self.db[ACCOUNTS].find({}, {"_id": 1}).sort("_id")]

    async def exists(self, account: str) -> bool:
        return await self.db[ACCOUNTS].find_one({"_id": account}, {"_id": 1}) is not None

    async def balance_cents(self, account: str) -> int:
        doc = await self.db[ACCOUNTS].find_one({"_id": account})
        if doc is None:
            raise UnknownAccount(f"no account named {account!r}")
        total = int(doc["opening_cents"])
        async for entry in self.db[LEDGER].find({"$or": [{"from": account}, {"to": account}]}):
            if entry.get("to") == account:
                total += int(entry["cents"])
            if entry.get("from") == account:
                total -= int(entry["cents"])
        return total

    async def balances(self) -> dict[str, float]:
        return {a: await self.balance_cents(a) / 100 for a in await self.accounts()}

    async def moved_cents(
        self, account: str, direction: Literal["in", "out"], *, within: timedelta
    ) -> int:
        """What `account` sent ("out") or received as deposits ("in") lately."""
        since = datetime.now(UTC) - within
        query = (
            {"from": account, "at": {"$gte": since}}
            if direction == "out"
            else {"from": None, "to": account, "at": {"$gte": since}}
        )
        return sum([int(e["cents"]) async for e in self.db[LEDGER].find(query, {"cents": 1})])

    async def applied(self, key: str) -> bool:
        return await self.db[LEDGER].find_one({"_id": key}, {"_id": 1}) is not None

    async def post(self, key: str, *, source: str | None, target: str, cents: int) -> bool:
        """Record a movement once; False when `key` was already applied."""
        return await insert_once(
            self.db,
            LEDGER,
            {
                "_id": key,
                "from": source,
                "to": target,
                "cents": cents,
                "at": datetime.now(UTC),
            },
        )
