"""The ledger's recent totals, which the banking agent's daily limit reads, on a real store."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from hitl_demo.banking import money_totals, transfer_args
from hitl_demo.ledger import LEDGER, Ledger
from hitl_shared.mongo import Document
from pymongo.asynchronous.database import AsyncDatabase


async def test_recent_transfers_out_and_deposits_in_are_added_up(
    db: AsyncDatabase[Document],
) -> None:
    ledger = Ledger(db)
    await ledger.ensure_indexes()
    await ledger.seed({"checking": 5000, "alice": 0})
    await ledger.post("r1:a", source="checking", target="alice", cents=40_000)
    await ledger.post("r2:a", source="checking", target="alice", cents=55_000)
    await ledger.post("r3:a", source=None, target="checking", cents=7_000)
    await ledger.post("r4:a", source="alice", target="checking", cents=1_000)
    # Two days ago: outside the window.
    await db[LEDGER].insert_one(
        {
            "_id": "old:a",
            "from": "checking",
            "to": "alice",
            "cents": 900_000,
            "at": datetime.now(UTC) - timedelta(days=2),
        }
    )
    day = timedelta(days=1)
    assert await ledger.moved_cents("checking", "out", within=day) == 95_000
    assert await ledger.moved_cents("checking", "in", within=day) == 7_000, "deposits only"
    assert await ledger.moved_cents("alice", "out", within=day) == 1_000

    totals = money_totals(ledger, threshold=100, daily_limit=1000)
    args = transfer_args(100).model_validate({"to_account": "alice", "amount": 60})
    (reason,) = await totals(args, 0)
    assert "checking has sent 950.00 in the last 24 hours" in reason


async def test_the_window_moves_on_with_time_and_unchanged_links_are_not_read_again(
    db: AsyncDatabase[Document],
) -> None:
    ledger = Ledger(db)
    await ledger.ensure_indexes()
    await ledger.seed({"checking": 5000, "alice": 0})
    made: list[datetime] = []
    for n, cents in enumerate([1_000, 2_000, 4_000]):
        made.append(datetime.now(UTC))
        await ledger.post(f"w{n}:a", source="checking", target="alice", cents=cents)
        await asyncio.sleep(0.3)
    reads: list[int] = []
    link = ledger._link

    async def counted(account: str, version: int) -> Any:
        reads.append(version)
        return await link(account, version)

    ledger._link = counted  # type: ignore[method-assign]

    def since(moment: datetime) -> timedelta:
        # A window that began just after `moment` (the clock moved on since).
        return datetime.now(UTC) - moment - timedelta(milliseconds=150)

    assert await ledger.moved_cents("checking", "out", within=timedelta(days=1)) == 7_000
    reads.clear()
    assert await ledger.moved_cents("checking", "out", within=timedelta(days=1)) == 7_000
    assert len(reads) == 1, f"only the head's successor is probed, read {reads}"
    assert await ledger.moved_cents("checking", "out", within=since(made[0])) == 6_000
    assert await ledger.moved_cents("checking", "out", within=since(made[1])) == 4_000
    assert await ledger.moved_cents("checking", "out", within=since(made[2])) == 0
    # A new movement after the window moved on is counted.
    await ledger.post("w3:a", source="checking", target="alice", cents=500)
    assert await ledger.moved_cents("checking", "out", within=since(made[2])) == 500
