"""Policy resolution and the policy/reviewer configuration formats."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hitl_approval.domain.policy import Policy, PolicyBook
from hitl_approval.entrypoints.rest.auth import hash_token, load_reviewers
from hitl_approval.settings import ApprovalSettings
from hitl_contracts import ApprovalRequested, OnTimeout
from hitl_contracts.signing import private_key_pem

from tests.factories import approval_request

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def request(**overrides: Any) -> ApprovalRequested:
    fields: dict[str, Any] = {"correlation_id": "c1", "run_id": "r1", "arguments": {}}
    return approval_request(at=T0, reason="r", user_request="u", **{**fields, **overrides})


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
                {"name": "viewer", "token_sha256": hash_token("view-token"), "roles": []},
                {"name": "Bea", "token_sha256": hash_token("bea-token")},
            ]
        )
    )
    directory = load_reviewers(
        ApprovalSettings(approval_reviewers_file=str(path), approval_dev_token="")
    )
    ann = directory.authenticate("ann-token")
    assert ann is not None
    assert ann.groups == frozenset({"finance"})
    assert ann.attributes == {"email": "ann@example.com"}
    assert ann.can("reviewer")
    assert not ann.can("admin")
    bot = directory.authenticate("agent-token")
    assert bot is not None
    assert bot.can("agent")
    assert not bot.can("reviewer")
    # Explicit "roles": [] holds no role; no "roles" at all is a reviewer.
    viewer = directory.authenticate("view-token")
    assert viewer is not None
    assert viewer.roles == frozenset()
    assert directory.named("BEA") is not None
    assert directory.named("bea").can("reviewer")  # type: ignore[union-attr]
    assert set(directory.names) == {"ann", "ops-bot", "viewer", "bea"}


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


PEM = private_key_pem(Ed25519PrivateKey.generate()).decode()


def test_the_dev_token_is_refused_in_production() -> None:
    with pytest.raises(ValueError, match="APPROVAL_REVIEWERS"):
        ApprovalSettings(hitl_env="production", kafka_allow_insecure=True, approval_signing_key=PEM)
    reviewers = json.dumps([{"name": "ann", "token_sha256": hash_token("t")}])
    directory = load_reviewers(
        ApprovalSettings(
            hitl_env="production",
            kafka_allow_insecure=True,
            approval_reviewers=reviewers,
            approval_signing_key=PEM,
            hitl_link_secret="s" * 32,
        )
    )
    assert directory.authenticate("dev-reviewer-token") is None


def test_production_refuses_to_start_without_a_signing_key() -> None:
    reviewers = json.dumps([{"name": "ann", "token_sha256": hash_token("t")}])
    with pytest.raises(ValueError, match="APPROVAL_SIGNING_KEY"):
        ApprovalSettings(
            hitl_env="production", kafka_allow_insecure=True, approval_reviewers=reviewers
        )
    settings = ApprovalSettings(
        hitl_env="production",
        kafka_allow_insecure=True,
        approval_reviewers=reviewers,
        approval_signing_key=PEM,
        hitl_link_secret="s" * 32,
    )
    # Production refuses an unknown submitter under four-eyes unless told otherwise.
    assert settings.refuse_unknown_submitter
    assert not ApprovalSettings().refuse_unknown_submitter
    assert ApprovalSettings(approval_four_eyes_unknown_submitter="refuse").refuse_unknown_submitter


def test_production_refuses_the_development_link_secret_and_slack_without_a_team() -> None:
    reviewers = json.dumps([{"name": "ann", "token_sha256": hash_token("t")}])
    ready: dict[str, Any] = {
        "hitl_env": "production",
        "kafka_allow_insecure": True,
        "approval_reviewers": reviewers,
        "approval_signing_key": PEM,
    }
    with pytest.raises(ValueError, match="HITL_LINK_SECRET"):
        ApprovalSettings(**ready)
    with pytest.raises(ValueError, match="APPROVAL_SLACK_TEAM_ID"):
        ApprovalSettings(**ready, hitl_link_secret="s" * 32, approval_slack_signing_secret="x")
    slack = ApprovalSettings(
        **ready,
        hitl_link_secret="s" * 32,
        approval_slack_signing_secret="x",
        approval_slack_team_id="T1",
    )
    assert slack.approval_slack_team_id == "T1"


def test_policy_waits_are_bounded() -> None:
    with pytest.raises(ValueError, match="escalation_seconds"):
        ApprovalSettings(
            approval_policies=json.dumps({"default": {"escalation_seconds": 1e15}})
        ).policy_book()
