"""The approval service's store adapters against the real MongoDB-compatible server."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hitl_approval.adapters.idempotency import IdempotencyStore
from hitl_approval.adapters.notes import NoteRepository
from hitl_approval.adapters.repository import (
    APPROVALS,
    ARCHIVE,
    FILTER_KEYS,
    ApprovalRepository,
    Filters,
)
from hitl_approval.domain.model import Approval, Status, Verb
from hitl_approval.domain.policy import Policy
from hitl_approval.service_layer.ports import StoredResponse
from hitl_contracts import (
    ApprovalRequested,
    Channel,
    NotificationKind,
    NotificationRecorded,
    NotificationStatus,
)
from hitl_shared.mongo import is_ferretdb
from pymongo.asynchronous.database import AsyncDatabase

from tests.factories import approval_request
from tests.integration.conftest import fresh_database
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
async def db(infra: Infra) -> AsyncIterator[AsyncDatabase[dict[str, object]]]:
    async with fresh_database(infra) as database:
        yield database


@pytest.fixture(scope="module")
async def repo(db: AsyncDatabase[dict[str, object]]) -> ApprovalRepository:
    repository = ApprovalRepository(db)
    await repository.ensure_indexes()
    return repository


def request(**overrides: Any) -> ApprovalRequested:
    return approval_request(reason="big", at=T0, timeout=timedelta(hours=1), **overrides)


async def stored(repo: ApprovalRepository, **overrides: object) -> Approval:
    approval = Approval.requested(request(**overrides))
    assert await repo.add(approval)
    return approval


async def test_of_many_writers_at_one_seq_exactly_one_appends(repo: ApprovalRepository) -> None:
    approval = await stored(repo)
    entries = [
        approval.decide(Verb.APPROVE, reviewer=f"r{i}", channel=Channel.API, now=T0)
        for i in range(20)
    ]
    results = await asyncio.gather(*(repo.append(approval, e) for e in entries))
    assert results.count(True) == 1
    again = await repo.get(approval.correlation_id)
    assert again is not None
    assert again.version == 1
    assert again.decision is not None
    assert again.decision.reviewer == f"r{results.index(True)}"


async def test_a_redelivered_request_never_rolls_the_listing_back(
    repo: ApprovalRepository, db: AsyncDatabase[dict[str, object]]
) -> None:
    approval = await stored(repo)
    entry = approval.decide(Verb.REJECT, reviewer="ann", channel=Channel.API, now=T0)
    assert await repo.append(approval, entry)
    # A crash before the projection: the listing row is missing or stale.
    await db[APPROVALS].delete_one({"_id": approval.correlation_id})
    assert not await repo.add(Approval.requested(approval.request)), "redelivery adds nothing"
    assert await db[APPROVALS].find_one({"_id": approval.correlation_id}) is None, "it ended"
    row = await db[ARCHIVE].find_one({"_id": approval.correlation_id})
    assert row is not None
    assert (row["status"], row["version"]) == ("rejected", 1)


async def test_a_late_older_view_is_corrected_from_the_stream(
    repo: ApprovalRepository, db: AsyncDatabase[dict[str, object]]
) -> None:
    approval = Approval.requested(request(), Policy(quorum=2))
    await repo.add(approval)
    older = Approval.from_entries(list(approval.entries))
    vote = approval.decide(Verb.APPROVE, reviewer="ann", channel=Channel.API, now=T0)
    assert await repo.append(approval, vote)
    approval.apply(vote)
    final = approval.decide(Verb.APPROVE, reviewer="bob", channel=Channel.API, now=T0)
    assert await repo.append(approval, final)
    approval.apply(final)
    await repo.project(approval)
    # A slow writer that only knew version 1 lands after the newest view: its pending
    # row must not stay listed (the ended row is written once, by insert, and kept).
    older.apply(vote)
    await repo.project(older)
    assert await db[APPROVALS].find_one({"_id": approval.correlation_id}) is None
    row = await db[ARCHIVE].find_one({"_id": approval.correlation_id})
    assert row is not None
    assert (row["status"], row["version"], row["approvers"]) == ("approved", 2, ["ann", "bob"])


async def test_tricky_arguments_and_schemas_round_trip_through_the_store(
    repo: ApprovalRepository,
) -> None:
    schema = {"$defs": {"A": {"type": "string"}}, "properties": {"a.b": {"$ref": "#/$defs/A"}}}
    arguments = {"$where": "x", "a.b": "y", "big": 2**62, "nested": [{"$set": 1}]}
    approval = await stored(repo, arguments=arguments, arguments_schema=schema)
    again = await repo.get(approval.correlation_id)
    assert again is not None
    assert again.request.arguments == arguments
    assert again.request.arguments_schema == schema
    page = await repo.page(Filters(run_id=approval.request.run_id), limit=5, cursor=None)
    assert page.items[0]["request_json"] == approval.request.model_dump_json()


async def test_pages_are_newest_first_and_stable_under_equal_timestamps(
    repo: ApprovalRepository,
) -> None:
    agent = f"a-{uuid.uuid4().hex[:6]}"
    same = T0 + timedelta(days=1)
    approvals = [await stored(repo, agent=agent, requested_at=same) for _ in range(5)]
    expected = sorted((a.correlation_id for a in approvals), reverse=True)
    seen, cursor = [], None
    while True:
        page = await repo.page(Filters(agent=agent), limit=2, cursor=cursor)
        seen += [item["_id"] for item in page.items]
        if not (cursor := page.next_cursor):
            break
    assert seen == expected


async def test_every_listing_filter_has_an_index_in_the_listing_order(
    repo: ApprovalRepository, db: AsyncDatabase[dict[str, object]]
) -> None:
    if await is_ferretdb(db):
        # FerretDB 1.x serves no query from them; they would only slow every write.
        for listing in (APPROVALS, ARCHIVE):
            assert list(await db[listing].index_information()) == ["_id_"]
        return
    for listing in (APPROVALS, ARCHIVE):
        indexes = await db[listing].index_information()
        keys = [[k for k, _ in spec["key"]] for spec in indexes.values()]
        for name in FILTER_KEYS:
            assert [name, "requested_at", "_id"] in keys, name
        assert ["requested_at", "_id"] in keys
    indexes = await db[APPROVALS].index_information()
    assert ["status", "expires_at"] in [[k for k, _ in v["key"]] for v in indexes.values()]


async def test_due_lists_pending_approvals_past_their_deadline(repo: ApprovalRepository) -> None:
    late = await stored(repo, expires_at=T0 + timedelta(seconds=1))
    decided = await stored(repo, expires_at=T0 + timedelta(seconds=1))
    entry = decided.decide(Verb.APPROVE, reviewer="a", channel=Channel.API, now=T0)
    await repo.append(decided, entry)
    await repo.project(decided.apply(entry))
    due = await repo.due(T0 + timedelta(seconds=2))
    assert late.correlation_id in due
    assert decided.correlation_id not in due
    assert (await repo.get(late.correlation_id)).status is Status.PENDING  # type: ignore[union-attr]


async def test_a_redelivered_notification_is_one_note(
    db: AsyncDatabase[dict[str, object]],
) -> None:
    notes = NoteRepository(db)
    await notes.ensure_indexes()
    event = NotificationRecorded(
        correlation_id="c-note",
        run_id="r",
        channel="email",
        recipient="ops@x.test",
        kind=NotificationKind.REQUESTED,
        status=NotificationStatus.FAILED,
        attempts=5,
        error="550 mailbox unavailable",
    )
    assert await notes.record(event)
    assert not await notes.record(event)
    (note,) = await notes.of("c-note")
    assert (note.status, note.attempts, note.error) == ("failed", 5, "550 mailbox unavailable")


async def test_idempotency_keeps_the_winning_response(
    db: AsyncDatabase[dict[str, object]],
) -> None:
    store = IdempotencyStore(db)
    await store.ensure_indexes()
    won = StoredResponse("fp", 200, {"status": "approved", "$odd.key": 1}, {"ETag": '"1"'})
    lost = StoredResponse("fp", 409, {"detail": "already approved"}, {"ETag": '"1"'})

    assert await store.remember("ann", "k1", won, now=T0) is won
    assert await store.remember("ann", "k1", lost, now=T0) == won, "a later loser replays"

    assert await store.remember("ann", "k2", lost, now=T0) is lost
    assert await store.remember("ann", "k2", won, now=T0) is won, "the winner replaces it"
    assert await store.get("ann", "k2") == won
    assert await store.get("bob", "k2") is None, "keys are per reviewer"

    assert await store.forget_before(T0 + timedelta(seconds=1)) >= 2
    assert await store.get("ann", "k1") is None


async def test_ended_approvals_leave_the_pending_listing_and_pages_span_both(
    repo: ApprovalRepository, db: AsyncDatabase[dict[str, object]]
) -> None:
    agent = f"a-{uuid.uuid4().hex[:6]}"
    approvals = [
        await stored(repo, agent=agent, requested_at=T0 + timedelta(minutes=i)) for i in range(6)
    ]
    for approval in approvals[::2]:
        entry = approval.decide(Verb.APPROVE, reviewer="a", channel=Channel.API, now=T0)
        assert await repo.append(approval, entry)
        await repo.project(approval.apply(entry))
    ended = {a.correlation_id for a in approvals[::2]}
    assert not await db[APPROVALS].count_documents({"_id": {"$in": sorted(ended)}})
    assert await db[ARCHIVE].count_documents({"_id": {"$in": sorted(ended)}}) == 3
    pending = await repo.page(Filters(agent=agent, status="pending"), limit=10, cursor=None)
    assert {i["_id"] for i in pending.items} == {a.correlation_id for a in approvals[1::2]}
    # Across both collections: newest first, stable cursors, each row once.
    seen, cursor = [], None
    while True:
        page = await repo.page(Filters(agent=agent), limit=4, cursor=cursor)
        seen += [item["_id"] for item in page.items]
        if not (cursor := page.next_cursor):
            break
    assert seen == [a.correlation_id for a in reversed(approvals)]
    approved = await repo.page(Filters(agent=agent, status="approved"), limit=10, cursor=None)
    assert {i["_id"] for i in approved.items} == ended


async def test_a_row_in_both_listings_is_listed_once_at_its_newest_version(
    repo: ApprovalRepository, db: AsyncDatabase[dict[str, object]]
) -> None:
    approval = await stored(repo)
    pending_row = await db[APPROVALS].find_one({"_id": approval.correlation_id})
    entry = approval.decide(Verb.REJECT, reviewer="a", channel=Channel.API, now=T0)
    assert await repo.append(approval, entry)
    await repo.project(approval.apply(entry))
    # A crash between archiving the row and deleting the pending one.
    await db[APPROVALS].insert_one(pending_row or {})
    page = await repo.page(Filters(run_id=approval.request.run_id), limit=5, cursor=None)
    assert [(i["_id"], i["status"]) for i in page.items] == [(approval.correlation_id, "rejected")]
    row = await repo.row(approval.correlation_id)
    assert row is not None
    assert row["status"] == "rejected"
