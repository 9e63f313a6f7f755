"""The CLI's pure parts: `--set` edits, the SSE reader, tables and times."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hitl_cli import assign, sse
from hitl_cli.output import arguments, left, table
from hitl_cli.runs import describe

SCHEMA: dict[str, Any] = {
    "properties": {
        "to_account": {"type": "string"},
        "amount": {"type": "number"},
        "count": {"type": "integer"},
        "urgent": {"type": "boolean"},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    }
}


def test_set_types_values_by_the_schema() -> None:
    edited = assign.apply(
        {"to_account": "alice", "amount": 500},
        ["amount=80", "to_account=123", "count=2", "urgent=true", "note=null"],
        SCHEMA,
    )
    assert edited == {"to_account": "123", "amount": 80, "count": 2, "urgent": True, "note": None}
    assert assign.apply({}, ["amount=80.5"], SCHEMA) == {"amount": 80.5}


def test_set_without_a_schema_reads_json_or_text() -> None:
    edited = assign.apply({}, ["n=3", "flag=false", "name=bob", 'obj={"a": 1}'], None)
    assert edited == {"n": 3, "flag": False, "name": "bob", "obj": {"a": 1}}


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("amount=lots", "amount must be a number"),
        ("count=1.5", "count must be a number"),
        ("urgent=yes", "urgent must be true or false"),
        ("no-equals", "expected key=value"),
        ("=5", "expected key=value"),
    ],
)
def test_bad_assignments_are_refused(assignment: str, message: str) -> None:
    with pytest.raises(assign.BadAssignment, match=message):
        assign.apply({}, [assignment], SCHEMA)


def test_sse_reader_handles_ids_comments_and_multiline_data() -> None:
    lines = [
        "retry: 1000",
        ": a comment",
        "id: 1",
        "event: started",
        'data: {"seq": 1}',
        "",
        "event: note",
        "data: line one",
        "data: line two",
        "",
        "data: trailing",
    ]
    got = list(sse.messages(lines))
    assert got[0] == sse.Message("started", '{"seq": 1}', "1")
    assert got[0].json() == {"seq": 1}
    assert got[1] == sse.Message("note", "line one\nline two", "1")
    assert got[2].event == "message"


def test_tables_align_and_times_count_down() -> None:
    text = table(["id", "tool"], [["abc", "transfer"], ["abcdef", "x"]])
    assert text.splitlines() == ["ID      TOOL", "abc     transfer", "abcdef  x"]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert left((now + timedelta(minutes=5, seconds=3)).isoformat(), now) == "5m 3s"
    assert left((now - timedelta(seconds=1)).isoformat(), now) == "expired"
    assert arguments('{"amount": 80}') == "amount=80"


def test_events_read_as_sentences() -> None:
    paused = describe(
        "approval_required",
        {
            "approvals": [
                {
                    "correlation_id": "c1",
                    "tool": "transfer",
                    "arguments": {"amount": 500},
                    "risk_level": "high",
                    "reason": "over 100",
                }
            ]
        },
    )
    assert paused[0] == "paused for approval"
    assert "needs approval: transfer(amount=500) [high risk] over 100" in paused[1]
    assert "hitl approve c1" in paused[2]
    assert describe("tool_executed", {"tool": "transfer", "ok": True, "result": "done"}) == [
        "transfer ok: done"
    ]
