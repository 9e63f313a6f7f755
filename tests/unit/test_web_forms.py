"""The web page's modify form: generated from a tool's JSON schema and parsed back."""

from typing import Any

import pytest
from hitl_approval.entrypoints.web import forms
from hitl_approval.entrypoints.web.present import summary
from hitl_contracts.reading import duration
from pydantic import BaseModel, Field


class TransferArgs(BaseModel):
    to_account: str = Field(min_length=1, description="Recipient account.")
    amount: float = Field(gt=0, le=1_000_000)
    count: int = 1
    urgent: bool = False
    note: str | None = None
    tags: list[str] = Field(default_factory=list)
    currency: str = Field(default="EUR", json_schema_extra={"enum": ["EUR", "USD"]})


SCHEMA: dict[str, Any] = TransferArgs.model_json_schema()
ORIGINAL = {"to_account": "alice", "amount": 500, "count": 1, "urgent": False, "tags": ["a"]}


def form(**values: str) -> dict[str, str]:
    base = {
        "to_account": "alice",
        "amount": "500",
        "count": "1",
        "urgent": "false",
        "note": "",
        "tags": '["a"]',
        "currency": "EUR",
    }
    base.update(values)
    return {forms.PREFIX + k: v for k, v in base.items()}


def test_fields_follow_the_schema_and_show_current_values() -> None:
    fields = {f.name: f for f in forms.fields_for(SCHEMA, ORIGINAL)}
    assert fields["to_account"].kind == "text"
    assert fields["to_account"].required
    assert fields["to_account"].help == "Recipient account."
    assert fields["amount"].kind == "number"
    assert fields["amount"].value == "500"
    assert fields["amount"].exclusive_minimum == 0
    assert fields["count"].kind == "integer"
    assert fields["urgent"].kind == "boolean"
    assert fields["urgent"].value == "false"
    assert fields["note"].nullable
    assert fields["tags"].kind == "json"
    assert fields["currency"].kind == "select"
    assert fields["currency"].options == ("EUR", "USD")
    assert fields["currency"].value == "EUR", "an absent argument shows its default"


def test_parse_types_the_edited_values() -> None:
    parsed = forms.parse(SCHEMA, ORIGINAL, form(amount="80", count="3", urgent="true"))
    assert parsed.errors == {}
    assert parsed.arguments == {
        "to_account": "alice",
        "amount": 80,
        "count": 3,
        "urgent": True,
        "tags": ["a"],
        "currency": "EUR",
    }
    assert forms.parse(SCHEMA, ORIGINAL, form(amount="80.5")).arguments["amount"] == 80.5


@pytest.mark.parametrize(
    ("field", "typed", "message"),
    [
        ("amount", "-5", "must be more than 0"),
        ("amount", "2000000", "must be at most 1000000"),
        ("amount", "lots", "is not a number"),
        ("amount", "nan", "is not a finite number"),
        ("count", "2.5", "is not a whole number"),
        ("to_account", "", "is required"),
        ("tags", "[oops", "not valid JSON"),
        ("currency", "GBP", "choose one of EUR, USD"),
        ("urgent", "maybe", "choose true or false"),
    ],
)
def test_parse_reports_each_bad_field_and_echoes_the_input(
    field: str, typed: str, message: str
) -> None:
    parsed = forms.parse(SCHEMA, ORIGINAL, form(**{field: typed}))
    assert message in parsed.errors[field]
    echoed = next(f for f in parsed.fields if f.name == field)
    assert echoed.value == typed.strip()
    assert echoed.error == parsed.errors[field]


def test_keys_the_schema_does_not_describe_are_kept() -> None:
    parsed = forms.parse(SCHEMA, {**ORIGINAL, "trace": "x-1"}, form())
    assert parsed.arguments["trace"] == "x-1"


def test_a_cleared_nullable_field_becomes_null_only_if_it_was_set() -> None:
    assert "note" not in forms.parse(SCHEMA, ORIGINAL, form()).arguments
    assert forms.parse(SCHEMA, {**ORIGINAL, "note": "hi"}, form()).arguments["note"] is None


def test_without_a_schema_the_arguments_are_edited_as_json() -> None:
    (field,) = forms.fields_for(None, {"path": "/tmp/x"})
    assert field.kind == "json"
    good = forms.parse(None, {}, {forms.PREFIX + forms.RAW_FIELD: '{"path": "/tmp/y"}'})
    assert good.arguments == {"path": "/tmp/y"}
    bad = forms.parse(None, {}, {forms.PREFIX + forms.RAW_FIELD: "[1]"})
    assert "must be a JSON object" in bad.errors[forms.RAW_FIELD]


def test_times_and_arguments_read_well() -> None:
    assert [duration(s) for s in (5, 65, 3600, 3 * 86400 + 7200)] == ["5s", "1m 5s", "1h", "3d 2h"]
    assert summary({"to": "alice", "amount": 80.0}) == "to=alice, amount=80"
    assert summary({"text": "x" * 200}).endswith("…")
