"""The banking demo's accounts: a ledger of movements and a balance chain per account.

A movement is ONE insert into `ledger` keyed by the tool call, so it is recorded at
most once, on MongoDB and FerretDB alike (no multi-document transactions needed).
Balances are maintained, not summed: each account has a chain of balance links
(`balances`, `_id = "<account>:<version>"`), the newest being its balance. Applying
a movement to an account appends the next link with a unique-key insert, the
compare-and-swap both stores make atomic, so concurrent movements on one account
each land on their own version and none is lost. A funds check made on the link
it extends cannot be overtaken by another transfer.

A movement is applied to an account at most once: its ledger entry records the
account's version before it (`base`), every link names its movement, and a writer
appends only after reading every link from `base` to the head and finding its own
absent; a writer that loses the insert reads the link that won. So a retry (a
crash, a redelivered decision) finishes what is missing and never applies twice.

Reading a balance costs the same whatever the history: the reader probes forward
by `_id` from the newest link it knows (this process's last, else the account
row's `head`, which readers move on when they had to walk far). Links also carry
running totals (sent out, deposited in) and their time, so what an account moved
in the last day is the difference between its head and the last link before the
day began, found once by bisection and then followed forward.

A store written by an older hitl (a ledger, no chains) gets its chains once at
start-up, from the ledger (`migrate`); its movements of the day before the
upgrade do not count towards the daily totals.
"""

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from hitl_shared.mongo import Document, ensure_query_index, insert_once
from pymongo.asynchronous.database import AsyncDatabase

ACCOUNTS = "accounts"
LEDGER = "ledger"
BALANCES = "balances"
# A reader that walks further than this past an account's `head` moves `head` on.
HINT_EVERY = 64
MAX_CHASE = 1_000_000

log = logging.getLogger(__name__)


class UnknownAccount(LookupError):
    pass


class InsufficientFunds(ValueError):
    pass


def to_cents(amount: float) -> int:
    return round(amount * 100)


def _link_id(account: str, version: int) -> str:
    return f"{account}:{version:012d}"


@dataclass(frozen=True)
class Link:
    account: str
    version: int
    cents: int
    key: str | None  # the movement that made it; None for the opening link
    at: datetime | None = None
    sent: int = 0  # cents sent out by transfers, ever (running total)
    deposited: int = 0  # cents received as deposits, ever

    def total(self, direction: Literal["in", "out"]) -> int:
        return self.deposited if direction == "in" else self.sent

    def document(self) -> Document:
        return {
            "_id": _link_id(self.account, self.version),
            "account": self.account,
            "version": self.version,
            "cents": self.cents,
            "key": self.key,
            "at": self.at,
            "sent": self.sent,
            "deposited": self.deposited,
        }


@dataclass(frozen=True)
class Posted:
    """A movement applied: the balances right after it, the same on every retry."""

    source_cents: int | None
    target_cents: int


class Ledger:
    """Bound to the deployment's database at start-up (`bind`), before any tool runs."""

    def __init__(self, db: AsyncDatabase[Document] | None = None) -> None:
        self._db = db
        # The newest link this process has seen per account: where its next read starts.
        self.known: dict[str, Link] = {}
        # Per account, the last link found before a day's window began.
        self.window_start: dict[str, Link] = {}
        # Per account: this process's movements on it take turns. Concurrent ones
        # would otherwise race for the same next version in the store, all but one
        # losing, re-reading and trying again (most round trips going to waste
        # when many transfers share an account). Other processes still race, safely.
        self.turns: dict[str, asyncio.Lock] = {}

    def bind(self, db: AsyncDatabase[Document]) -> None:
        self._db = db

    @property
    def db(self) -> AsyncDatabase[Document]:
        if self._db is None:
            raise RuntimeError("the ledger is used before the app started")
        return self._db

    async def ensure_indexes(self) -> None:
        await ensure_query_index(self.db[LEDGER], "from")
        await ensure_query_index(self.db[LEDGER], "to")

    async def seed(self, opening: dict[str, float]) -> None:
        for account, amount in opening.items():
            cents = to_cents(amount)
            created = await insert_once(
                self.db, ACCOUNTS, {"_id": account, "opening_cents": cents, "head": 0}
            )
            if created:
                await self._open(account, cents)

    async def migrate(self) -> int:
        """Open the balance chain of every account that has none (an older hitl's store).

        Its opening link is the opening amount plus the ledger's movements, summed
        once. Safe on several replicas: the link is a unique insert, and no movement
        can be applied to an account before its chain is open.
        """
        opened = 0
        async for row in self.db[ACCOUNTS].find({}):
            account = str(row["_id"])
            if await self._link(account, 0) is not None:
                continue
            total = int(row["opening_cents"])
            async for entry in self.db[LEDGER].find({"$or": [{"from": account}, {"to": account}]}):
                if entry.get("to") == account:
                    total += int(entry["cents"])
                if entry.get("from") == account:
                    total -= int(entry["cents"])
            if await self._open(account, total):
                opened += 1
                log.info("opened the balance chain of %s from its ledger", account)
        return opened

    async def _open(self, account: str, cents: int) -> bool:
        opening = Link(account, 0, cents, None, datetime.now(UTC))
        return await insert_once(self.db, BALANCES, opening.document())

    async def accounts(self) -> list[str]:
        return [doc["_id"] async for doc in self.db[ACCOUNTS].find({}, {"_id": 1}).sort("_id")]

    async def exists(self, account: str) -> bool:
        return await self.db[ACCOUNTS].find_one({"_id": account}, {"_id": 1}) is not None

    async def balance_cents(self, account: str) -> int:
        return (await self.head(account)).cents

    async def balances(self) -> dict[str, float]:
        return {a: await self.balance_cents(a) / 100 for a in await self.accounts()}

    async def head(self, account: str) -> Link:
        """The newest link of `account`'s chain: one probe when this process wrote the last."""
        link = self.known.get(account)
        if link is None:
            row = await self.db[ACCOUNTS].find_one({"_id": account}, {"head": 1})
            if row is None:
                raise UnknownAccount(f"no account named {account!r}")
            link = await self._link(account, int(row.get("head", 0)))
            if link is None:
                raise UnknownAccount(f"the account {account!r} has no balance yet")
        newest = await self._newest(link)
        self._learn(newest)
        if newest.version - link.version > HINT_EVERY:
            # Other writers moved it far on: spare the next reader the walk.
            # By `_id` alone (a further condition would scan on FerretDB 1.x); an older
            # value written over a newer one only costs the next reader probes.
            await self.db[ACCOUNTS].update_one({"_id": account}, {"$set": {"head": newest.version}})
        return newest

    def _learn(self, link: Link) -> None:
        known = self.known.get(link.account)
        if known is None or known.version < link.version:
            self.known[link.account] = link

    async def _newest(self, link: Link) -> Link:
        for _ in range(MAX_CHASE):
            following = await self._link(link.account, link.version + 1)
            if following is None:
                return link
            link = following
        raise RuntimeError(f"the balance chain of {link.account} did not end")

    async def _link(self, account: str, version: int) -> Link | None:
        doc = await self.db[BALANCES].find_one({"_id": _link_id(account, version)})
        if doc is None:
            return None
        return Link(
            account,
            version,
            int(doc["cents"]),
            doc.get("key"),
            doc.get("at"),
            int(doc.get("sent", 0)),
            int(doc.get("deposited", 0)),
        )

    async def moved_cents(
        self, account: str, direction: Literal["in", "out"], *, within: timedelta
    ) -> int:
        """What `account` sent ("out") or received as deposits ("in") lately."""
        head = await self.head(account)
        start = await self._before(head, datetime.now(UTC) - within)
        return head.total(direction) - (start.total(direction) if start else 0)

    async def _before(self, head: Link, since: datetime) -> Link | None:
        """The newest link of `head`'s chain made before `since` (None: all are newer)."""
        known = self.window_start.get(head.account)
        if known is None:
            # Bisection over versions: links are appended in time order.
            low, high, found = 0, head.version, None
            while low <= high:
                middle = (low + high) // 2
                link = await self._link(head.account, middle)
                if link is None or _made_before(link, since):
                    found, low = link or found, middle + 1
                else:
                    high = middle - 1
            if found is None:
                return None
            known = found
        # Time only moves on: follow the chain forward from the last start found.
        while known.version < head.version:
            following = await self._link(head.account, known.version + 1)
            if following is None or not _made_before(following, since):
                break
            known = following
        self.window_start[head.account] = known
        return known

    async def applied(self, key: str) -> bool:
        return await self.db[LEDGER].find_one({"_id": key}, {"_id": 1}) is not None

    async def post(
        self, key: str, *, source: str | None, target: str, cents: int, check_funds: bool = True
    ) -> Posted:
        """Apply a movement once (a deposit when `source` is None).

        Raises UnknownAccount, or InsufficientFunds when the source cannot cover it
        (then nothing is recorded). A retry with the same key completes a movement an
        earlier attempt left half-applied and returns the same balances.
        """
        accounts = [a for a in (source, target) if a is not None]
        async with contextlib.AsyncExitStack() as turns:
            # In one order for every movement, so two never wait for each other.
            for account in sorted(set(accounts)):
                await turns.enter_async_context(self.turns.setdefault(account, asyncio.Lock()))
            return await self._post(key, source, target, cents, check_funds, accounts)

    async def _post(
        self,
        key: str,
        source: str | None,
        target: str,
        cents: int,
        check_funds: bool,
        accounts: list[str],
    ) -> Posted:
        heads = dict(zip(accounts, await asyncio.gather(*map(self.head, accounts)), strict=True))
        fresh: Document = {
            "_id": key,
            "from": source,
            "to": target,
            "cents": cents,
            "at": datetime.now(UTC),
            # Every link of this movement comes after these versions.
            "base": {account: link.version for account, link in heads.items()},
        }
        short = source is not None and check_funds and heads[source].cents < cents
        entry = fresh
        if short or not await insert_once(self.db, LEDGER, fresh):
            # A retry (or short of funds): go on from what the first attempt recorded.
            found = await self.db[LEDGER].find_one({"_id": key})
            if found is None:
                raise InsufficientFunds(f"insufficient funds in {source}")
            entry, heads = found, {}
        source_cents = None
        if source is not None:
            source_cents = await self._apply(
                entry, source, -cents, heads.get(source), check_funds=check_funds
            )
        target_cents = await self._apply(entry, target, cents, heads.get(target), check_funds=False)
        return Posted(source_cents, target_cents)

    async def _apply(
        self, entry: Document, account: str, delta: int, head: Link | None, *, check_funds: bool
    ) -> int:
        """Append the link of `entry` to `account`'s chain unless it is there already.

        `head` is the link `entry`'s base names when this attempt wrote the entry:
        no link of it can exist yet, so the first insert goes right after it.
        """
        key = str(entry["_id"])
        link = head
        if link is None:
            base = entry.get("base", {}).get(account)
            if base is None:
                raise RuntimeError(f"ledger entry {key} was written before balance chains")
            link = await self._link(account, int(base))
            if link is None:
                raise UnknownAccount(f"the account {account!r} has no balance yet")
        while True:
            if link is not head:
                following = await self._link(account, link.version + 1)
                if following is not None:
                    if following.key == key:
                        self._learn(following)
                        return following.cents  # applied by an earlier attempt
                    link = following
                    continue
            cents = link.cents + delta
            if check_funds and cents < 0:
                # Overtaken by another transfer since the first check: record nothing.
                await self.db[LEDGER].delete_one({"_id": key})
                raise InsufficientFunds(f"insufficient funds in {account}")
            deposit = entry.get("from") is None
            mine = Link(
                account,
                link.version + 1,
                cents,
                key,
                datetime.now(UTC),
                sent=link.sent + (-delta if delta < 0 else 0),
                deposited=link.deposited + (delta if deposit else 0),
            )
            if await insert_once(self.db, BALANCES, mine.document()):
                self._learn(mine)
                return cents
            # Another movement took that version: read it and go on from there.
            head = None


def _made_before(link: Link, since: datetime) -> bool:
    return link.at is None or link.at < since
