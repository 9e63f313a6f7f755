"""The ledger's group commit on the real store: batched, yet never overdrawn, lost or doubled.

Concurrent movements on one account pair are applied together (one insert of ledger
entries, one ordered insert of links per chain). Each test checks the outcome a user
would notice (balances, refusals) and then every balance chain link by link: versions
consecutive, each balance the one before plus its movement, running totals right,
no movement twice on a chain, every link backed by its ledger entry.
"""

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hitl_demo.ledger import BALANCES, LEDGER, InsufficientFunds, Ledger, Link, Posted
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from tests.support.infra import Infra

pytestmark = pytest.mark.integration

Database = AsyncDatabase[dict[str, Any]]
DAY = timedelta(days=1)


@dataclass
class Inserts(monitoring.CommandListener):
    """The documents of each insert command sent, per collection."""

    sizes: dict[str, list[int]] = field(default_factory=dict)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "insert":
            name = str(event.command["insert"])
            self.sizes.setdefault(name, []).append(len(event.command.get("documents", [])))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None


@contextlib.asynccontextmanager
async def process(
    infra: Infra, db: Database, listener: Inserts | None = None
) -> AsyncIterator[Ledger]:
    """A Ledger on a client of its own, as another agent process would have."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.mongodb_url, tz_aware=True, event_listeners=[listener] if listener else []
    )
    try:
        yield Ledger(client[db.name])
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def seeded(
    infra: Infra, db: Database, balances: dict[str, float], listener: Inserts | None = None
) -> AsyncIterator[Ledger]:
    """Accounts seeded, and a process that knows their heads (as a running agent does)."""
    await Ledger(db).seed(balances)
    async with process(infra, db, listener) as ledger:
        await ledger.balances()
        yield ledger


async def chains_are_sound(db: Database) -> dict[str, int]:
    """Check every balance chain against the ledger; the balances at their heads."""
    entries = {doc["_id"]: doc async for doc in db[LEDGER].find({})}
    links: dict[str, list[dict[str, Any]]] = {}
    async for link in db[BALANCES].find({}):
        links.setdefault(link["account"], []).append(link)
    heads: dict[str, int] = {}
    for account, chain in links.items():
        chain.sort(key=lambda link: int(link["version"]))
        assert [link["version"] for link in chain] == list(range(len(chain))), account
        keys = [link["key"] for link in chain[1:]]
        assert len(keys) == len(set(keys)), f"a movement applied twice to {account}"
        for before, link in itertools.pairwise(chain):
            entry = entries.get(link["key"])
            assert entry is not None, f"link {link['_id']} has no ledger entry"
            out = entry["cents"] if entry["from"] == account else 0
            deposit = entry["cents"] if entry["from"] is None else 0
            into = entry["cents"] if entry["to"] == account else 0
            assert link["cents"] == before["cents"] - out + into, link["_id"]
            assert link["cents"] >= 0, f"{account} overdrawn at {link['_id']}"
            assert link["sent"] == before["sent"] + out, link["_id"]
            assert link["deposited"] == before["deposited"] + deposit, link["_id"]
            assert link["version"] > entry["base"][account], "a link before its entry's base"
        heads[account] = chain[-1]["cents"]
    for key, entry in entries.items():
        for account in (entry["from"], entry["to"]):
            if account is not None:
                on = [link for link in links[account] if link["key"] == key]
                assert len(on) == 1, f"{key} is on {account}'s chain {len(on)} times"
    return heads


async def transfer(ledger: Ledger, key: str, cents: int, source: str = "checking") -> bool:
    try:
        await ledger.post(key, source=source, target="alice", cents=cents)
    except InsufficientFunds:
        return False
    return True


async def test_an_ordered_insert_stops_at_the_first_duplicate_and_keeps_the_ones_before(
    db: Database,
) -> None:
    # What the batch relies on: no link is written on top of another writer's.
    await db[BALANCES].insert_one({"_id": "x:3"})
    with pytest.raises(BulkWriteError) as raised:
        await db[BALANCES].insert_many([{"_id": f"x:{v}"} for v in range(1, 7)], ordered=True)
    assert raised.value.details["nInserted"] == 2
    assert [e["index"] for e in raised.value.details["writeErrors"]] == [2]
    stored = sorted([doc["_id"] async for doc in db[BALANCES].find({})])
    assert stored == ["x:1", "x:2", "x:3"]


async def test_racing_ordered_inserts_each_store_exactly_the_prefix_they_report(
    infra: Infra, db: Database
) -> None:
    # Four writers (clients of their own) over overlapping versions at once, as
    # processes racing on one chain: the server's group commit must not change it.
    async with contextlib.AsyncExitStack() as stack:
        ledgers = [await stack.enter_async_context(process(infra, db)) for _ in range(4)]
        for round_ in range(10):
            attempted = [
                [f"r{round_}:{v:03d}" for v in range((w * 3) % 7, (w * 3) % 7 + 15)]
                for w in range(4)
            ]

            async def write(w: int, ids: list[str]) -> int:
                try:
                    await (
                        ledgers[w]
                        .db[BALANCES]
                        .insert_many([{"_id": i, "w": w} for i in ids], ordered=True)
                    )
                except BulkWriteError as exc:
                    return int(exc.details["nInserted"])
                return len(ids)

            counts = await asyncio.gather(*(write(w, ids) for w, ids in enumerate(attempted)))
            owner = {
                doc["_id"]: doc["w"]
                async for doc in db[BALANCES].find({"_id": {"$regex": f"^r{round_}:"}})
            }
            for w, (ids, stored) in enumerate(zip(attempted, counts, strict=True)):
                assert all(owner[i] == w for i in ids[:stored]), (round_, w)
                assert all(owner.get(i) != w for i in ids[stored:]), (round_, w)


async def test_concurrent_transfers_in_one_process_share_round_trips_and_never_overdraw(
    infra: Infra, db: Database
) -> None:
    inserts = Inserts()
    async with seeded(infra, db, {"checking": 30, "alice": 0}, inserts) as ledger:
        done = await asyncio.gather(*(transfer(ledger, f"k{i}", 100) for i in range(60)))
        assert await ledger.balances() == {"alice": 30.0, "checking": 0.0}
    assert done.count(True) == 30, "exactly the money there was"
    assert await chains_are_sound(db) == {"checking": 0, "alice": 3000}
    assert await db[LEDGER].count_documents({}) == 30, "refused transfers leave no entry"
    # Applied together: far fewer inserts than one per entry and per link.
    links = inserts.sizes[BALANCES]
    assert max(links) > 1, links
    assert len(links) < 30, links
    assert len(inserts.sizes[LEDGER]) < 10, inserts.sizes[LEDGER]


async def test_two_processes_on_one_account_never_overdraw_nor_lose_a_movement(
    infra: Infra, db: Database
) -> None:
    await Ledger(db).seed({"checking": 40, "alice": 0})
    async with (
        process(infra, db) as first,
        process(infra, db) as second,
        process(infra, db) as banker,
    ):
        await first.balances()
        await second.balances()

        async def deposits() -> None:
            for i in range(5):
                await banker.post(f"d{i}", source=None, target="checking", cents=400)

        moves = [
            transfer((first, second)[i % 2], f"k{i}", 150 if i % 3 else 250, source="checking")
            for i in range(80)
        ]
        *done, _ = await asyncio.gather(*moves, deposits())
        # Money also leaves alice meanwhile, through the other lane of the same pair.
        back = await asyncio.gather(
            *(second.post(f"b{i}", source="alice", target="checking", cents=100) for i in range(5)),
            return_exceptions=True,
        )
    applied = sum(150 if i % 3 else 250 for i, ok in enumerate(done) if ok)
    returned = sum(1 for outcome in back if isinstance(outcome, Posted)) * 100
    assert all(isinstance(o, Posted | InsufficientFunds) for o in back), back
    heads = await chains_are_sound(db)
    assert heads["checking"] + heads["alice"] == 4000 + 2000, "money conserved"
    assert heads["alice"] == applied - returned
    assert 0 < done.count(True) < len(done), "funds for only some of them"
    entries = await db[LEDGER].count_documents({"from": "checking"})
    assert entries == done.count(True)
    reader = Ledger(db)
    assert await reader.moved_cents("checking", "out", within=DAY) == applied
    assert await reader.moved_cents("checking", "in", within=DAY) == 2000, "deposits only"


async def test_the_same_movements_delivered_to_two_processes_at_once_apply_once(
    infra: Infra, db: Database
) -> None:
    await Ledger(db).seed({"checking": 30, "alice": 0})
    async with process(infra, db) as first, process(infra, db) as second:
        await first.balances()
        await second.balances()
        keys = [f"k{i}" for i in range(40)]
        outcomes = await asyncio.gather(
            *(transfer(ledger, k, 100) for k in keys for ledger in (first, second))
        )
    heads = await chains_are_sound(db)
    assert heads == {"checking": 0, "alice": 3000}
    assert await db[LEDGER].count_documents({}) == 30
    # Both deliveries of one movement agree, except where one refused it before the
    # other applied it (then the refusal recorded nothing).
    assert outcomes.count(True) >= 30


class Interrupted(Ledger):
    """A ledger that lets something happen right before it appends its first batch."""

    meanwhile: Callable[[], Awaitable[object]] | None = None

    async def _insert_chain(self, chain: list[Link]) -> int:
        if self.meanwhile is not None and len(chain) > 1:
            meanwhile, self.meanwhile = self.meanwhile, None
            await meanwhile()
        return await super()._insert_chain(chain)


async def test_a_retry_elsewhere_finishing_a_movement_of_a_batch_in_flight_is_found(
    infra: Infra, db: Database
) -> None:
    await Ledger(db).seed({"checking": 100, "alice": 0})
    async with process(infra, db) as other:
        ledger = Interrupted(db)
        await ledger.balances()

        async def meanwhile() -> None:
            # The batch k1..k3 has written its ledger entries; before its links go in,
            # a redelivery of k2 to another process finishes k2 (from its entry), and
            # a balance read here walks past k2's links (the batch must still see them).
            await other.post("k2", source="checking", target="alice", cents=100)
            await ledger.balances()

        ledger.meanwhile = meanwhile
        posted = await asyncio.gather(
            *(ledger.post(f"k{i}", source="checking", target="alice", cents=100) for i in range(4))
        )
        assert ledger.meanwhile is None, "the batch was interrupted"
        again = await other.post("k2", source="checking", target="alice", cents=100)
    assert posted[2] == again, "k2 is the movement the other process applied"
    assert await chains_are_sound(db) == {"checking": 9600, "alice": 400}


async def test_a_batch_whose_caller_is_cancelled_is_finished_by_the_others(
    infra: Infra, db: Database
) -> None:
    await Ledger(db).seed({"checking": 100, "alice": 0})
    ledger = Interrupted(db)
    await ledger.balances()

    async def cancel_the_leader() -> None:
        # Its entries written, its links not yet: the leader's caller goes away.
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)

    ledger.meanwhile = cancel_the_leader
    tasks = [
        asyncio.create_task(ledger.post(f"k{i}", source="checking", target="alice", cents=100))
        for i in range(6)
    ]
    outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
    cancelled = [i for i, o in enumerate(outcomes) if isinstance(o, asyncio.CancelledError)]
    assert len(cancelled) == 1, outcomes
    assert all(isinstance(o, Posted) for i, o in enumerate(outcomes) if i not in cancelled)
    # The cancelled one's retry finishes it, once.
    retried = await Ledger(db).post(
        f"k{cancelled[0]}", source="checking", target="alice", cents=100
    )
    assert retried.target_cents > 0
    assert await chains_are_sound(db) == {"checking": 9400, "alice": 600}


async def test_insufficient_funds_in_the_middle_of_a_batch_refuses_only_that_one(
    infra: Infra, db: Database
) -> None:
    inserts = Inserts()
    async with seeded(infra, db, {"checking": 10, "alice": 0}, inserts) as ledger:
        # The first goes alone (nothing waits yet); the others wait for it, then go
        # together on 9.00: 7.00 fits, 3.00 does not, 2.00 does.
        done = await asyncio.gather(*(transfer(ledger, k, c) for k, c in CASE))
    assert done == [True, True, False, True]
    assert max(inserts.sizes[BALANCES]) >= 2, "the last three were applied together"
    assert await chains_are_sound(db) == {"checking": 0, "alice": 1000}
    assert sorted([d["_id"] async for d in db[LEDGER].find({})]) == ["a", "b", "d"]


CASE = [("a", 100), ("b", 700), ("c", 300), ("d", 200)]


async def test_a_deposit_made_elsewhere_is_read_before_a_transfer_is_refused(
    infra: Infra, db: Database
) -> None:
    await Ledger(db).seed({"checking": 0, "alice": 0})
    async with process(infra, db) as agent, process(infra, db) as banker:
        await agent.balances()  # it believes checking is empty
        await banker.post("d", source=None, target="checking", cents=500)
        posted = await asyncio.gather(
            *(agent.post(f"k{i}", source="checking", target="alice", cents=200) for i in range(3)),
            return_exceptions=True,
        )
    assert [type(p) for p in posted].count(Posted) == 2
    assert await chains_are_sound(db) == {"checking": 100, "alice": 400}


async def test_a_batch_after_another_process_moved_the_chain_on_appends_after_its_links(
    infra: Infra, db: Database
) -> None:
    await Ledger(db).seed({"checking": 100, "alice": 0})
    async with process(infra, db) as stale, process(infra, db) as other:
        await stale.balances()  # knows version 0 of both chains
        for i in range(20):  # further than one read-ahead window
            await other.post(f"o{i}", source="checking", target="alice", cents=100)
        posted = await asyncio.gather(
            *(stale.post(f"s{i}", source="checking", target="alice", cents=100) for i in range(4))
        )
    assert sorted(p.source_cents or 0 for p in posted) == [7600, 7700, 7800, 7900]
    assert sorted(p.target_cents for p in posted) == [2100, 2200, 2300, 2400]
    assert await chains_are_sound(db) == {"checking": 7600, "alice": 2400}


async def half_applied(db: Database, key: str, *, debited: bool) -> None:
    """What a process that crashed in the middle of `key` (a 1.00 transfer) left behind."""
    checking, alice = await Ledger(db).head("checking"), await Ledger(db).head("alice")
    await db[LEDGER].insert_one(
        {
            "_id": key,
            "from": "checking",
            "to": "alice",
            "cents": 100,
            "at": datetime.now(UTC),
            "base": {"checking": checking.version, "alice": alice.version},
        }
    )
    if debited:
        debit = Link(
            "checking",
            checking.version + 1,
            checking.cents - 100,
            key,
            datetime.now(UTC),
            sent=checking.sent + 100,
            deposited=checking.deposited,
        )
        await db[BALANCES].insert_one(debit.document())


async def test_retries_finish_half_applied_movements_once_among_a_batch(
    infra: Infra, db: Database
) -> None:
    keys = [f"k{i}" for i in range(8)]
    async with seeded(infra, db, {"checking": 100, "alice": 0}) as ledger:
        first = list(
            await asyncio.gather(
                *(ledger.post(k, source="checking", target="alice", cents=100) for k in keys[:2])
            )
        )
        # A crash after k2's debit, before its credit; others went on after it.
        await half_applied(db, "k2", debited=True)
        first += await asyncio.gather(
            *(ledger.post(k, source="checking", target="alice", cents=100) for k in keys[3:7])
        )
        # A crash right after k7's ledger entry: no link at all.
        await half_applied(db, "k7", debited=False)
    # The redelivery: retries of all eight at once, mixed with new movements.
    async with process(infra, db) as again:
        await again.balances()
        retried = await asyncio.gather(
            *(again.post(k, source="checking", target="alice", cents=100) for k in keys),
            *(again.post(f"n{i}", source="checking", target="alice", cents=100) for i in range(3)),
        )
    done = dict(zip(keys[:2] + keys[3:7], first, strict=True))
    for key, posted in zip(keys, retried, strict=False):
        if key in done:
            assert posted == done[key], f"a retry of {key} returns what it returned first"
    assert await chains_are_sound(db) == {"checking": 10000 - 1100, "alice": 1100}
    assert await db[LEDGER].count_documents({}) == 11
    # Once more, all of it: nothing changes.
    async with process(infra, db) as third:
        assert await third.post("k2", source="checking", target="alice", cents=100) == retried[2]
        assert await third.post("k7", source="checking", target="alice", cents=100) == retried[7]
    assert await chains_are_sound(db) == {"checking": 10000 - 1100, "alice": 1100}
