"""bench/history.py copies a finished run's documents as raw BSON with fresh ids."""

import uuid

import bson
from bson import ObjectId

from bench.history import OBJECT_ID, _copy, _cut, _fresh


def _keys(template: list[bytes]) -> set[bytes]:
    return {template[i] for i in range(1, len(template), 2)} - {OBJECT_ID}


def test_a_copy_is_the_same_document_with_fresh_ids_everywhere() -> None:
    run, approval = str(uuid.uuid4()), str(uuid.uuid4())
    object_id = ObjectId()
    original = {
        "_id": object_id,
        "run_id": run,
        "detail": {"call": "call_0123456789abcdef", "refs": [run, approval, 2.5]},
        "note": f"approval {approval} for run {run}",
        "amount": 500.0,
    }
    template = _cut(bson.encode(original), object_id)
    keys = _keys(template)
    assert keys == {run.encode(), approval.encode(), b"0123456789abcdef"}

    mappings = [{k: _fresh(k) for k in keys} for _ in range(2)]
    first, second = (bson.decode(_copy(template, m).raw) for m in mappings)
    for copy, mapping in ((first, mappings[0]), (second, mappings[1])):
        new_run = mapping[run.encode()].decode()
        new_approval = mapping[approval.encode()].decode()
        assert isinstance(copy["_id"], ObjectId)
        assert copy["_id"] != original["_id"]
        assert copy["run_id"] == new_run != run
        assert copy["detail"]["refs"] == [new_run, new_approval, 2.5]
        assert copy["detail"]["call"] == "call_" + mapping[b"0123456789abcdef"].decode()
        assert copy["note"] == f"approval {new_approval} for run {new_run}"
        assert copy["amount"] == 500.0
        assert list(copy) == list(original)  # same fields, same order
    assert first["_id"] != second["_id"]
    assert first["run_id"] != second["run_id"]


def test_a_string_id_is_replaced_like_any_other_mention() -> None:
    run = str(uuid.uuid4())
    original = {"_id": f"{run}:3", "run_id": run}
    template = _cut(bson.encode(original), None)
    mapping = {k: _fresh(k) for k in _keys(template)}
    copy = bson.decode(_copy(template, mapping).raw)
    new_run = mapping[run.encode()].decode()
    assert copy == {"_id": f"{new_run}:3", "run_id": new_run}
    assert uuid.UUID(new_run).version == 4
