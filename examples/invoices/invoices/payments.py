"""Where payments are recorded: one document per tool call, so a payment applies once.

The document's `_id` is the call's idempotency key. A second execution of the same
call (a redelivered decision, a crash before the runtime recorded the result) finds
the insert refused and reports the payment already made.
"""

from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

PAYMENTS = "invoice_payments"


class Payments:
    """Bound to the hitl deployment's database when the app starts."""

    def __init__(self) -> None:
        self._db: Any = None

    def bind(self, database: Any) -> None:
        self._db = database

    @property
    def collection(self) -> Any:
        if self._db is None:
            raise RuntimeError("payments used before the app started")
        return self._db[PAYMENTS]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index("vendor")

    async def paid_before(self, vendor: str) -> bool:
        return await self.collection.find_one({"vendor": vendor}, {"_id": 1}) is not None

    async def pay(self, key: str, *, vendor: str, invoice: str, amount: float) -> bool:
        """Record the payment; False when this key was already paid."""
        try:
            await self.collection.insert_one(
                {
                    "_id": key,
                    "vendor": vendor,
                    "invoice": invoice,
                    "amount": amount,
                    "at": datetime.now(UTC),
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def of_vendor(self, vendor: str) -> list[dict[str, Any]]:
        return [doc async for doc in self.collection.find({"vendor": vendor}).sort("at")]
