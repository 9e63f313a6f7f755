"""Index creation survives upgrades: a same-named index with an old definition is replaced."""

import pytest
from hitl_shared.mongo import ensure_index, ensure_query_index, is_ferretdb
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.integration


async def _keys(db: AsyncDatabase[dict[str, object]], name: str) -> dict[str, object]:
    info = await db.events.index_information()
    return dict(info[name]["key"])


async def test_an_index_from_an_older_release_is_replaced(
    db: AsyncDatabase[dict[str, object]],
) -> None:
    await db.events.create_index([("published", ASCENDING)], name="outbox")
    await db.events.insert_one({"_id": "a", "published": False, "at": 1})

    await ensure_index(db.events, [("published", ASCENDING), ("at", ASCENDING)], name="outbox")

    assert await _keys(db, "outbox") == {"published": 1, "at": 1}
    assert await db.events.count_documents({}) == 1, "replacing an index loses no data"


async def test_ensure_index_is_idempotent(db: AsyncDatabase[dict[str, object]]) -> None:
    for _ in range(3):
        name = await ensure_index(db.events, [("seq", ASCENDING)], unique=True)
    assert name == "seq_1"
    assert await _keys(db, "seq_1") == {"seq": 1}


async def test_unrelated_index_errors_still_raise(db: AsyncDatabase[dict[str, object]]) -> None:
    from pymongo.errors import OperationFailure

    with pytest.raises(OperationFailure):
        await ensure_index(db.events, [("x", "no-such-index-type")])


async def test_lookups_by_id_use_the_index(db: AsyncDatabase[dict[str, object]]) -> None:
    """Every hot path reads and updates by _id: that must be an index search, not a scan.

    Stock FerretDB 1.24 on SQLite scans the collection for `{_id: x}` (its filter path
    and its index expression are spelled differently); deploy/local/lib/ferretdb.sh
    builds it with the index's spelling. On MongoDB this holds as is.
    """
    await db.events.insert_many([{"_id": f"e-{i}", "n": i} for i in range(50)])
    # An update by _id finds the document with this same query (FerretDB's explain of
    # `update` does not show its plan, so the find stands for both).
    plan = await db.command("explain", {"find": "events", "filter": {"_id": "e-7"}})
    if "ferretdbVersion" in plan.get("serverInfo", {}):
        # FerretDB reports the backend's own plan: SQLite's EXPLAIN QUERY PLAN lines.
        lines = " | ".join(plan["queryPlanner"]["Plan"])
        assert "USING INDEX" in lines, f"a lookup by _id scans: {lines}"
    else:
        assert "COLLSCAN" not in str(plan["queryPlanner"]), plan["queryPlanner"]


async def test_query_indexes_are_kept_off_ferretdb_and_dropped_there_if_left(
    db: AsyncDatabase[dict[str, object]],
) -> None:
    await db.events.create_index([("published", ASCENDING)], name="outbox")
    name = await ensure_query_index(db.events, [("published", ASCENDING)], name="outbox")
    indexes = await db.events.index_information()
    if await is_ferretdb(db):
        assert name == ""
        assert "outbox" not in indexes, "an older release's index is dropped"
    else:
        assert name == "outbox"
        assert "outbox" in indexes
