"""Replacements on the real store answer as MongoDB does, by `_id` alone or not.

Our FerretDB build writes a replacement of the one document named by `_id` alone (a
string or an ObjectId) by key, without reading the stored document first
(deploy/local/lib/ferretdb.sh, `ferretdb_patch_replace_by_id`); every other update
takes FerretDB's usual path. On MongoDB the same answers hold (but for `nModified` of
an identical replacement, which our build counts as modified).
"""

import asyncio
import contextlib
from typing import Any

import pytest
from bson import ObjectId
from hitl_shared.mongo import is_ferretdb
from pymongo import ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure, WriteError

pytestmark = pytest.mark.integration

Database = AsyncDatabase[dict[str, Any]]


async def test_a_replacement_by_id_replaces_the_whole_document(db: Database) -> None:
    rows = db["rows"]
    oid = ObjectId()
    await rows.insert_many([{"_id": "a", "v": 1, "gone": True}, {"_id": oid, "v": 2}])
    result = await rows.replace_one({"_id": "a"}, {"v": 10, "w": [1, 2]})
    assert (result.matched_count, result.modified_count, result.upserted_id) == (1, 1, None)
    assert await rows.find_one({"_id": "a"}) == {"_id": "a", "v": 10, "w": [1, 2]}
    result = await rows.replace_one({"_id": oid}, {"_id": oid, "v": 20})
    assert (result.matched_count, result.modified_count) == (1, 1)
    assert await rows.find_one({"_id": oid}) == {"_id": oid, "v": 20}
    assert await rows.count_documents({}) == 2


async def test_a_replacement_of_nothing_matches_nothing_unless_upserted(db: Database) -> None:
    rows = db["rows"]
    result = await rows.replace_one({"_id": "nope"}, {"v": 1})
    assert (result.matched_count, result.modified_count, result.upserted_id) == (0, 0, None)
    assert await rows.count_documents({}) == 0
    result = await rows.replace_one({"_id": "new"}, {"v": 1}, upsert=True)
    assert (result.matched_count, result.modified_count, result.upserted_id) == (0, 0, "new")
    assert await rows.find_one({"_id": "new"}) == {"_id": "new", "v": 1}
    result = await rows.replace_one({"_id": "new"}, {"v": 2}, upsert=True)
    assert (result.matched_count, result.upserted_id) == (1, None)
    assert await rows.find_one({"_id": "new"}) == {"_id": "new", "v": 2}


async def test_a_replacement_may_not_change_the_id(db: Database) -> None:
    rows = db["rows"]
    await rows.insert_one({"_id": "a", "v": 1})
    with pytest.raises((WriteError, OperationFailure)) as raised:
        await rows.replace_one({"_id": "a"}, {"_id": "b", "v": 2})
    assert "_id" in str(raised.value)
    assert await rows.find_one({"_id": "a"}) == {"_id": "a", "v": 1}
    assert await rows.find_one({"_id": "b"}) is None


async def test_an_invalid_replacement_is_refused_and_changes_nothing(db: Database) -> None:
    rows = db["rows"]
    await rows.insert_one({"_id": "a", "v": 1})
    # An array holding the filter's `_id` is not that `_id` (nor may an `_id` be an array).
    with pytest.raises((WriteError, OperationFailure)):
        await rows.replace_one({"_id": "a"}, {"_id": ["a"], "v": 2})
    if await is_ferretdb(db):
        # FerretDB refuses `$` field names anywhere (MongoDB 5+ accepts nested ones).
        with pytest.raises((WriteError, OperationFailure, ValueError)):
            await rows.replace_one({"_id": "a"}, {"v": {"$bad": 1}})
    assert await rows.find_one({"_id": "a"}) == {"_id": "a", "v": 1}


async def test_other_filters_and_operators_still_take_the_usual_path(db: Database) -> None:
    rows = db["rows"]
    await rows.insert_many([{"_id": "a", "v": 1}, {"_id": 7, "v": 2}])
    assert (await rows.replace_one({"_id": "a", "v": 99}, {"v": 5})).matched_count == 0
    assert (await rows.replace_one({"_id": 7}, {"v": 3})).modified_count == 1, "a number"
    assert (await rows.update_one({"_id": "a"}, {"$set": {"w": 1}})).modified_count == 1
    assert await rows.find_one({"_id": "a"}) == {"_id": "a", "v": 1, "w": 1}
    assert await rows.find_one({"_id": 7}) == {"_id": 7, "v": 3}


async def test_many_replacements_in_one_command_count_each(db: Database) -> None:
    rows = db["rows"]
    await rows.insert_many([{"_id": "k0", "v": 0}, {"_id": "k1", "v": 0}])
    result = await rows.bulk_write(
        [
            ReplaceOne({"_id": "k0"}, {"v": 1}),
            ReplaceOne({"_id": "k1"}, {"v": 1}),
            ReplaceOne({"_id": "missing"}, {"v": 1}),
            ReplaceOne({"_id": "k2"}, {"v": 1}, upsert=True),
        ],
        ordered=False,
    )
    assert (result.matched_count, result.modified_count, result.upserted_count) == (2, 2, 1)
    assert sorted([(d["_id"], d["v"]) async for d in rows.find({})]) == [
        ("k0", 1),
        ("k1", 1),
        ("k2", 1),
    ]


async def test_two_first_upserts_at_once_store_one_document(db: Database) -> None:
    rows = db["rows"]

    async def upsert(v: int) -> None:
        # The other one may have inserted first (read-then-write on FerretDB).
        with contextlib.suppress(DuplicateKeyError):
            await rows.replace_one({"_id": "x"}, {"v": v}, upsert=True)

    await asyncio.gather(*(upsert(v) for v in range(8)))
    assert await rows.count_documents({"_id": "x"}) == 1


async def test_an_identical_replacement_is_written_by_key_on_our_ferretdb(db: Database) -> None:
    """The one answer that tells the paths apart: the patched path does not compare."""
    rows = db["rows"]
    await rows.insert_many([{"_id": "same", "v": 1}, {"_id": 7, "v": 1}])
    result = await rows.replace_one({"_id": "same"}, {"_id": "same", "v": 1})
    assert result.matched_count == 1
    assert result.modified_count == (1 if await is_ferretdb(db) else 0)
    assert await rows.find_one({"_id": "same"}) == {"_id": "same", "v": 1}
    result = await rows.replace_one({"_id": 7}, {"_id": 7, "v": 1})
    assert (result.matched_count, result.modified_count) == (1, 0), "a number: usual path"
