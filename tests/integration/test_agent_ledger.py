"""The banking ledger on the real store: maintained balances, exactly once, never overdrawn."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hitl_demo.ledger import (
    ACCOUNTS,
    BALANCES,
    LEDGER,
    InsufficientFunds,
    Ledger,
    UnknownAccount,
)
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.integration

Database = AsyncDatabase[dict[str, Any]]
T_OLD = datetime(2020, 1, 1, tzinfo=UTC)


async def test_concurrent_transfers_from_one_account_all_land_and_never_overdraw(
    db: Database,
) -> None:
    ledger = Ledger(db)
    await ledger.seed({"checking": 10, "alice": 0})
    # Several replicas (each its own Ledger) racing on the same account.
    replicas = [Ledger(db) for _ in range(4)]

    async def transfer(i: int) -> bool:
        try:
            await replicas[i % 4].post(f"k{i}", source="checking", target="alice", cents=100)
        except InsufficientFunds:
            return False
        return True

    done = await asyncio.gather(*(transfer(i) for i in range(14)))
    assert done.count(True) == 10, "exactly the money there was"
    assert await Ledger(db).balance_cents("checking") == 0
    assert await Ledger(db).balance_cents("alice") == 1000
    assert await db[LEDGER].count_documents({}) == 10, "refused transfers leave no entry"


async def test_a_retry_completes_a_half_applied_movement_and_applies_it_once(db: Database) -> None:
    ledger = Ledger(db)
    await ledger.seed({"checking": 10, "bob": 0})
    first = await ledger.post("k", source="checking", target="bob", cents=300)
    # A crash after the debit, before the credit: drop the credit link.
    await db[BALANCES].delete_one({"account": "bob", "key": "k"})
    again = await Ledger(db).post("k", source="checking", target="bob", cents=300)
    assert again == first
    assert await Ledger(db).post("k", source="checking", target="bob", cents=300) == first
    assert await Ledger(db).balances() == {"bob": 3.0, "checking": 7.0}
    # A retry once the money is gone is still the same movement, not a refusal.
    await ledger.post("k2", source="checking", target="bob", cents=700)
    assert await Ledger(db).post("k", source="checking", target="bob", cents=300) == first


async def test_unknown_accounts_are_refused_before_anything_is_recorded(db: Database) -> None:
    ledger = Ledger(db)
    await ledger.seed({"checking": 10})
    with pytest.raises(UnknownAccount):
        await ledger.post("k", source="checking", target="nobody", cents=1)
    assert await db[LEDGER].count_documents({}) == 0


async def test_start_up_opens_balances_of_an_older_store_from_its_ledger(db: Database) -> None:
    # As the previous version left it: accounts with opening amounts and a ledger.
    await db[ACCOUNTS].insert_many(
        [{"_id": "checking", "opening_cents": 1000}, {"_id": "alice", "opening_cents": 0}]
    )
    await db[LEDGER].insert_many(
        [
            {"_id": "a", "from": "checking", "to": "alice", "cents": 300},
            {"_id": "b", "from": None, "to": "checking", "cents": 50},
        ]
    )
    opened = await asyncio.gather(Ledger(db).migrate(), Ledger(db).migrate())
    assert sum(opened) == 2, "each account opened once, whichever replica did it"
    assert await Ledger(db).migrate() == 0
    ledger = Ledger(db)
    assert await ledger.balances() == {"alice": 3.0, "checking": 7.5}
    await ledger.post("c", source="checking", target="alice", cents=100)
    assert await Ledger(db).balances() == {"alice": 4.0, "checking": 6.5}


async def test_daily_totals_come_from_running_totals_not_a_ledger_scan(db: Database) -> None:
    ledger = Ledger(db)
    await ledger.seed({"checking": 100, "alice": 0})
    await ledger.post("t1", source="checking", target="alice", cents=1000)
    await ledger.post("d1", source=None, target="checking", cents=500)
    await ledger.post("t2", source="checking", target="alice", cents=250)
    day = timedelta(days=1)
    for reader in (ledger, Ledger(db)):
        assert await reader.moved_cents("checking", "out", within=day) == 1250
        assert await reader.moved_cents("checking", "in", within=day) == 500
        assert await reader.moved_cents("alice", "in", within=day) == 0, (
            "transfers are not deposits"
        )
    # A day later only what happened since counts.
    await db[BALANCES].update_many({"key": {"$in": ["t1", "d1"]}}, {"$set": {"at": T_OLD}})
    await db[BALANCES].update_many({"version": 0}, {"$set": {"at": T_OLD}})
    assert await Ledger(db).moved_cents("checking", "out", within=day) == 250
    assert await Ledger(db).moved_cents("checking", "in", within=day) == 0
