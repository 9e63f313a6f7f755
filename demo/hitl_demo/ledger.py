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

Group commit: within a process, movements on one account take turns, and the one
whose turn it is applies every movement waiting on the same accounts with it, in
three round trips whatever their number: their ledger entries in one insert, then
their links on the source chain as ONE ORDERED insert of versions v+1..v+k, then
those on the target chain likewise. An ordered insert stops at its first duplicate
(MongoDB and FerretDB alike; `tests/integration/test_ledger_batch.py` checks the
server), so a link is never written on top of another writer's: the links stored
are a prefix, each a compare-and-swap on the one before. The writer starts from the
newest link it knows without probing the store (the insert of v+1 proves v was the
head, so the funds checked on v were there); when another writer got there first,
it reads forward to the head, noting its own movements among what it reads (a
retry elsewhere may have applied them), and appends the rest after it. A movement
short of funds against the last link this process knows is left to the one-at-a-
time path, which reads the head before refusing.

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

from hitl_shared.group_insert import insert_together
from hitl_shared.mongo import Document, ensure_query_index, insert_once
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

ACCOUNTS = "accounts"
LEDGER = "ledger"
BALANCES = "balances"
# A reader that walks further than this past an account's `head` moves `head` on.
HINT_EVERY = 64
MAX_CHASE = 1_000_000
# Movements applied together at most (one insert per collection for all of them).
MAX_BATCH = 64
# Links read at once when reading forward to a chain's head after losing a version.
READ_AHEAD = 8
DUPLICATE_KEY = 11000

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

    def followed_by(self, key: str, delta: int, *, deposit: bool) -> "Link":
        """The next link of this chain: movement `key` of `delta` cents applied now."""
        return Link(
            self.account,
            self.version + 1,
            self.cents + delta,
            key,
            datetime.now(UTC),
            sent=self.sent + (-delta if delta < 0 else 0),
            deposited=self.deposited + (delta if deposit else 0),
        )

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


# Movements that may go in one batch: same accounts, same funds rule.
Lane = tuple[str | None, str, bool]


@dataclass(eq=False)
class _Movement:
    """A `post` waiting for its turn; whoever's turn it is may apply it for it."""

    key: str
    source: str | None
    target: str
    cents: int
    check_funds: bool
    posted: Posted | None = None
    error: Exception | None = None

    @property
    def lane(self) -> Lane:
        return (self.source, self.target, self.check_funds)

    @property
    def settled(self) -> bool:
        return self.posted is not None or self.error is not None

    def outcome(self) -> Posted:
        if self.error is not None:
            raise self.error
        if self.posted is None:
            raise RuntimeError(f"movement {self.key} was left unapplied")
        return self.posted


class Ledger:
    """Bound to the deployment's database at start-up (`bind`), before any tool runs."""

    def __init__(self, db: AsyncDatabase[Document] | None = None) -> None:
        self._db = db
        # The newest link this process has seen per account: where its next read starts.
        self.known: dict[str, Link] = {}
        # Per account, the last link found before a day's window began (None: none
        # was), and the link after it (made inside the window when read): links never
        # change and the window's start only moves on, so that link is not read again.
        self.window_start: dict[str, Link | None] = {}
        self.window_next: dict[str, Link] = {}
        # Per account: this process's movements on it take turns. Concurrent ones
        # would otherwise race for the same next version in the store, all but one
        # losing, re-reading and trying again (most round trips going to waste
        # when many transfers share an account). Other processes still race, safely.
        self.turns: dict[str, asyncio.Lock] = {}
        # Per lane: the movements waiting for a turn, which the next turn applies at once.
        self.waiting: dict[Lane, list[_Movement]] = {}

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
        account = head.account
        if account in self.window_start:
            known = self.window_start[account]
        else:
            # Bisection over versions: links are appended in time order.
            low, high, known = 0, head.version, None
            while low <= high:
                middle = (low + high) // 2
                link = await self._link(account, middle)
                if link is None or _made_before(link, since):
                    known, low = link or known, middle + 1
                else:
                    high = middle - 1
        # Time only moves on: follow the chain forward from the last start found.
        version = -1 if known is None else known.version
        while version < head.version:
            following = self.window_next.get(account)
            if following is None or following.version != version + 1:
                following = await self._link(account, version + 1)
                if following is None:
                    break
                self.window_next[account] = following
            if not _made_before(following, since):
                break
            known, version = following, following.version
        self.window_start[account] = known
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
        mine = _Movement(key, source, target, cents, check_funds)
        self.waiting.setdefault(mine.lane, []).append(mine)
        try:
            async with contextlib.AsyncExitStack() as turns:
                # In one order for every movement, so two never wait for each other.
                for account in sorted({a for a in (source, target) if a is not None}):
                    await turns.enter_async_context(self.turns.setdefault(account, asyncio.Lock()))
                if not mine.settled:
                    # Its turn: it applies whatever waits on the same lane with it.
                    queue = self.waiting.get(mine.lane, [])
                    batch = [mine, *[m for m in queue if m is not mine][: MAX_BATCH - 1]]
                    taken = set(map(id, batch))
                    queue[:] = [m for m in queue if id(m) not in taken]
                    await self._post_batch(batch)
        finally:
            queue = self.waiting.get(mine.lane, [])
            if mine in queue:  # cancelled while waiting for its turn
                queue.remove(mine)
            if not queue:
                self.waiting.pop(mine.lane, None)
        return mine.outcome()

    async def _post_batch(self, batch: list[_Movement]) -> None:
        """Settle every movement of `batch` (the first is the caller's), holding their turns."""
        try:
            await self._apply_batch(batch)
        except Exception as exc:
            for movement in batch:
                if not movement.settled:
                    movement.error = exc
        except BaseException:
            # The caller is cancelled: the others' callers were not. Each applies its own
            # at its turn anyway (a turn always takes its caller's); queued, they go together.
            queue = self.waiting.setdefault(batch[0].lane, [])
            queue[:0] = [m for m in batch[1:] if not m.settled]
            raise

    async def _apply_batch(self, batch: list[_Movement]) -> None:
        first = batch[0]
        source, target, check_funds = first.lane
        accounts = [a for a in (source, target) if a is not None]
        # One at a time: a movement between an account and itself, one of no money.
        later = [m for m in batch if m.cents <= 0 or source == target]
        movements = [m for m in batch if not (m.cents <= 0 or source == target)]
        if movements:
            heads: dict[str, Link] = {}
            for account in accounts:
                # The newest link this process knows; a store probe only for the first.
                heads[account] = self.known.get(account) or await self.head(account)
            chosen: list[_Movement] = []
            balance = heads[source].cents if source is not None else 0
            for movement in movements:
                if source is not None and check_funds and balance < movement.cents:
                    # Short as far as this process knows: the one-at-a-time path reads
                    # the head (a deposit elsewhere may cover it) before refusing.
                    later.append(movement)
                    continue
                balance -= movement.cents
                chosen.append(movement)
            now = datetime.now(UTC)
            entries: list[Document] = [
                {
                    "_id": m.key,
                    "from": source,
                    "to": target,
                    "cents": m.cents,
                    "at": now,
                    # Every link of this movement comes after these versions.
                    "base": {account: link.version for account, link in heads.items()},
                }
                for m in chosen
            ]
            fresh: list[_Movement] = []
            stored = await insert_together(self.db[LEDGER], entries)
            for movement, outcome in zip(chosen, stored, strict=True):
                if outcome is True:
                    fresh.append(movement)
                elif outcome is False:
                    later.append(movement)  # recorded before: finish what that attempt left
                else:
                    movement.error = outcome
            await self._apply_fresh(fresh, heads, source, target, check_funds)
        for movement in later:
            if movement.settled:
                continue
            try:
                movement.posted = await self._post(
                    movement.key, source, target, movement.cents, check_funds, accounts
                )
            except Exception as exc:
                movement.error = exc

    async def _apply_fresh(
        self,
        fresh: list[_Movement],
        heads: dict[str, Link],
        source: str | None,
        target: str,
        check_funds: bool,
    ) -> None:
        """Append the links of movements whose ledger entries this call just wrote.

        Each entry's base is `heads`: no link of these movements can be at or before it.
        """
        debited: dict[str, int] = {}
        if source is not None:
            debits = [(m.key, -m.cents, False) for m in fresh]
            debited, short = await self._append(heads[source], debits, check_funds=check_funds)
            if short:
                # Overtaken by another writer since the funds were checked: record nothing.
                await asyncio.gather(*(self.db[LEDGER].delete_one({"_id": key}) for key in short))
            for movement in fresh:
                if movement.key in short:
                    movement.error = InsufficientFunds(f"insufficient funds in {source}")
            fresh = [m for m in fresh if m.key in debited]
        credits = [(m.key, m.cents, source is None) for m in fresh]
        credited, _ = await self._append(heads[target], credits, check_funds=False)
        for movement in fresh:
            movement.posted = Posted(debited.get(movement.key), credited[movement.key])

    async def _append(
        self, start: Link, items: list[tuple[str, int, bool]], *, check_funds: bool
    ) -> tuple[dict[str, int], set[str]]:
        """Append a link per (key, delta, is a deposit) to `start`'s chain, in order.

        `start` is the base of every item's ledger entry, so no link of theirs is at or
        before it; after it, each link is either written here or read here (and its
        key noted) before a link is appended beyond it. Returns each key's balance
        right after its link, and the keys refused for want of funds: short on the
        chain's head as this call last found it (their links not written).
        """
        account = start.account
        placed: dict[str, int] = {}
        if not items:
            return placed, set()
        pending = list(items)
        link, read = start, False
        for _ in range(MAX_CHASE):
            chain: list[Link] = []
            short: set[str] = set()
            tail = link
            for key, delta, deposit in pending:
                cents = tail.cents + delta
                if check_funds and cents < 0:
                    short.add(key)
                    continue
                tail = tail.followed_by(key, delta, deposit=deposit)
                chain.append(tail)
            stored = await self._insert_chain(chain)
            for made in chain[:stored]:
                placed[str(made.key)] = made.cents
            if stored:
                link = chain[stored - 1]
                self._learn(link)
            if stored == len(chain) and (chain or read):
                # All written, or nothing to write on a head just read: each one left out
                # is short there (along the chain the balance only fell).
                return placed, short
            # Another writer took the next version: read on to the head.
            pending = [item for item in pending if item[0] not in placed]
            link, found = await self._read_on(link, {key for key, _, _ in pending})
            placed.update(found)
            read = True
            pending = [item for item in pending if item[0] not in found]
        raise RuntimeError(f"the balance chain of {account} did not end")

    async def _read_on(self, link: Link, keys: set[str]) -> tuple[Link, dict[str, int]]:
        """The head of `link`'s chain, and the balances after the links it passed of `keys`.

        Reads several versions at once: links are only appended after an existing one,
        so the links found up to the first missing version are the chain's next ones.
        """
        found: dict[str, int] = {}
        for _ in range(MAX_CHASE):
            following = await asyncio.gather(
                *(self._link(link.account, link.version + i) for i in range(1, READ_AHEAD + 1))
            )
            for read in following:
                if read is None:
                    self._learn(link)
                    return link, found
                if read.key in keys:
                    found.setdefault(read.key, read.cents)
                link = read
        raise RuntimeError(f"the balance chain of {link.account} did not end")

    async def _insert_chain(self, chain: list[Link]) -> int:
        """Insert `chain` (consecutive versions) in order; how many were stored.

        Ordered: the server stops at the first version another writer holds, so the
        links stored are a prefix and each one follows its predecessor in the store.
        """
        if len(chain) <= 1:
            return int(bool(chain) and await insert_once(self.db, BALANCES, chain[0].document()))
        try:
            await self.db[BALANCES].insert_many([link.document() for link in chain], ordered=True)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            first = errors[0] if errors else {}
            stored = int(exc.details.get("nInserted", -1))
            if (
                exc.details.get("writeConcernErrors")
                or first.get("code") != DUPLICATE_KEY
                or stored != first.get("index")
            ):
                raise
            return stored
        return len(chain)

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
            mine = link.followed_by(key, delta, deposit=deposit)
            if await insert_once(self.db, BALANCES, mine.document()):
                self._learn(mine)
                return cents
            # Another movement took that version: read it and go on from there.
            head = None


def _made_before(link: Link, since: datetime) -> bool:
    return link.at is None or link.at < since
