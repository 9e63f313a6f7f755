"""Deletes on the real store answer as MongoDB does, by `_id` alone or not.

Our FerretDB build deletes a filter of `_id` alone (a string or an ObjectId) by key
without reading the document first (deploy/local/lib/ferretdb.sh,
`ferretdb_patch_delete_by_id`); every other filter takes FerretDB's usual path.
"""

from typing import Any

import pytest
from bson import ObjectId
from pymongo import DeleteOne
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.integration

Database = AsyncDatabase[dict[str, Any]]


async def test_a_delete_by_id_removes_that_document_and_counts_it(db: Database) -> None:
    rows = db["rows"]
    oid = ObjectId()
    await rows.insert_many(
        [{"_id": "a", "v": 1}, {"_id": "b", "v": 2}, {"_id": oid, "v": 3}, {"_id": 7, "v": 4}]
    )
    assert (await rows.delete_one({"_id": "a"})).deleted_count == 1
    assert (await rows.delete_one({"_id": "a"})).deleted_count == 0, "gone: nothing to count"
    assert (await rows.delete_many({"_id": oid})).deleted_count == 1
    assert (await rows.delete_one({"_id": "nope"})).deleted_count == 0
    assert sorted([str(d["_id"]) async for d in rows.find({})]) == ["7", "b"]


async def test_other_filters_still_match_on_every_field(db: Database) -> None:
    rows = db["rows"]
    await rows.insert_many([{"_id": "a", "v": 1}, {"_id": "b", "v": 2}, {"_id": 7, "v": 3}])
    assert (await rows.delete_one({"_id": "a", "v": 2})).deleted_count == 0, "v differs"
    assert (await rows.delete_one({"_id": {"$in": ["a", "zz"]}})).deleted_count == 1
    assert (await rows.delete_one({"_id": 7})).deleted_count == 1, "a number: usual path"
    assert (await rows.delete_many({"v": {"$gte": 0}})).deleted_count == 1
    assert await rows.count_documents({}) == 0


async def test_many_deletes_by_id_in_one_command_count_each(db: Database) -> None:
    rows = db["rows"]
    await rows.insert_many([{"_id": f"k{i}"} for i in range(5)])
    result = await rows.bulk_write(
        [DeleteOne({"_id": key}) for key in ("k0", "k1", "k1", "missing", "k4")], ordered=False
    )
    assert result.deleted_count == 3
    assert sorted([d["_id"] async for d in rows.find({})]) == ["k2", "k3"]
