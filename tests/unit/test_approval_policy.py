"""Policy resolution and the policy/reviewer configuration formats."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hitl_approval.domain.policy import Policy, PolicyBook
from hitl_approval.entrypoints.auth import by_name, hash_token, load_reviewers
from hitl_approval.settings import ApprovalSettings
from hitl_contracts import ApprovalRequested, OnTimeout, RequestContext

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def request(**overrides: object) -> ApprovalRequested:
    fields: dict[str, object] = {
        "correlation_id": "c1",
        "run_id": "r1",
        "agent": "banking",
        "tool": "transfer",
        "arguments": {},
        "reason": "r",
        "context": RequestContext(user_request="u"),
        "requested_at": T0,
        "expires_at": T0 + timedelta(minutes=30),
    }
    return ApprovalRequested.model_validate({**fields, **overrides})


BOOK = PolicyBook.model_validate(
    {
        "default": {"four_eyes": True, "groups": ["reviewers"]},
        "rules": [
            {"match": {"risk_level": "critical"}, "quorum": 2},
            {
                "match": {"agent": "banking", "tool": "transfer"},
                "groups": ["finance"],
                "timeout_seconds": 900,
            },
            {"match": {"agent": "files"}, "on_timeout": "escalate", "escalation_seconds": 600},
        ],
    }
)


def test_nothing_configured_means_one_approval_and_four_eyes() -> None:
    assert PolicyBook().resolve(request()) == Policy(quorum=1, four_eyes=True)


def test_rules_layer_over_the_default_field_by_field() -> None:
    policy = BOOK.resolve(request(risk_level="critical"))
    assert policy.quorum == 2
    assert policy.groups == ["finance"], "the later, more specific rule wins"
    assert policy.timeout_seconds == 900
    assert policy.four_eyes


def test_unmatched_rules_leave_the_default() -> None:
    policy = BOOK.resolve(request(agent="files", tool="delete_files"))
    assert (policy.quorum, policy.groups) == (1, ["reviewers"])
    assert policy.on_timeout is OnTimeout.ESCALATE
    assert policy.escalation_seconds == 600


def test_policies_load_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "policies.json"
    path.write_text(BOOK.model_dump_json())
    settings = ApprovalSettings(approval_policies_file=str(path))
    assert settings.policy_book() == BOOK


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ('{"rules": [{"match": {"tool": "x"}, "quorum": 0}]}', "quorum"),
        ('{"rules": [{"match": {"risk": "high"}}]}', "risk"),
        ('{"default": {"four_eyes": "sometimes"}}', "four_eyes"),
        ("not json", "APPROVAL_POLICIES"),
    ],
)
def test_a_bad_policy_stops_start_up_with_the_reason(raw: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        ApprovalSettings(approval_policies=raw).policy_book()


def test_reviewers_load_with_groups_and_extra_attributes(tmp_path: Path) -> None:
    path = tmp_path / "reviewers.json"
    path.write_text(
        json.dumps(
            [
                {
                    "name": "ann",
                    "token_sha256": hash_token("ann-token"),
                    "roles": ["reviewer"],
                    "groups": ["finance"],
                    "email": "ann@example.com",
                },
                {"name": "ops-bot", "token_sha256": hash_token("agent-token"), "roles": ["agent"]},
            ]
        )
    )
    table = load_reviewers(
        ApprovalSettings(approval_reviewers_file=str(path), approval_dev_token="")
    )
    ann = table[hash_token("ann-token")]
    assert ann.groups == frozenset({"finance"})
    assert ann.attributes == {"email": "ann@example.com"}
    assert ann.can("reviewer")
    assert not ann.can("admin")
    bot = table[hash_token("agent-token")]
    assert bot.can("agent")
    assert not bot.can("reviewer")
    assert set(by_name(table)) == {"ann", "ops-bot"}


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"name": "x", "token_sha256": "plaintext"}, "token_sha256"),
        ({"name": "x", "token_sha256": "0" * 64, "roles": ["root"]}, "roles"),
        ({"token_sha256": "0" * 64}, "name"),
    ],
)
def test_a_bad_reviewer_entry_stops_start_up_with_the_reason(
    entry: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        load_reviewers(ApprovalSettings(approval_reviewers=json.dumps([entry])))


def test_the_dev_token_is_refused_in_production() -> None:
    with pytest.raises(ValueError, match="APPROVAL_REVIEWERS"):
        ApprovalSettings(hitl_env="production")
    reviewers = json.dumps([{"name": "ann", "token_sha256": hash_token("t")}])
    table = load_reviewers(
        ApprovalSettings(
            hitl_env="production", approval_reviewers=reviewers, kafka_allow_insecure=True
        )
    )
    assert hash_token("dev-reviewer-token") not in table
