"""Approval service settings."""

from pathlib import Path
from typing import Literal

from hitl_shared.settings import CommonSettings
from pydantic import Field, ValidationError

from hitl_approval.domain.policy import PolicyBook


class ApprovalSettings(CommonSettings):
    approval_host: str = "127.0.0.1"
    approval_port: int = 8081
    # Public base URL used in links sent to reviewers.
    approval_public_url: str = "http://127.0.0.1:8081"
    # How often this replica expires what it knows is due (from memory, cheap).
    approval_sweep_interval_seconds: float = 1.0
    # How often the store is scanned for any overdue approval (other replicas', restarts).
    approval_full_sweep_interval_seconds: float = 30.0
    approval_outbox_interval_seconds: float = 1.0
    # An unpublished outbox entry younger than this is still being published inline.
    approval_outbox_grace_seconds: float = 2.0
    # A replica silent this long is dead: others relay the decisions it stored.
    approval_replica_timeout_seconds: float = 5.0
    # JSON list of {"name", "token_sha256", "roles", "groups"}; see README "Reviewers".
    approval_reviewers: str = ""
    approval_reviewers_file: str = ""
    # Development only: a token that acts as reviewer "dev" with every role.
    approval_dev_token: str = Field(default="dev-reviewer-token")
    # JSON {"default": {...}, "rules": [...]}; see README "Approval policies".
    approval_policies: str = ""
    approval_policies_file: str = ""
    # How long a decision's Idempotency-Key replays its first response.
    approval_idempotency_retention_seconds: float = 86400.0
    # Waiting for a decision (GET ?wait=, GET /events): the longest a long-poll is held,
    # the longest one SSE response lasts (clients reconnect with Last-Event-ID), and how
    # often each watched approval is re-read in case no event told this replica of a change.
    approval_wait_max_seconds: float = Field(default=60.0, gt=0)
    approval_stream_max_seconds: float = Field(default=300.0, gt=0)
    approval_watch_refresh_seconds: float = Field(default=10.0, gt=0)
    # Test-only fault: exit right after a decision is stored, before it is published.
    approval_fault_crash_after_commit: bool = False
    # The Ed25519 key that signs every approval.decided (PEM, PKCS#8): a file, or the PEM
    # text itself. Neither, outside production: a development key kept in the store.
    approval_signing_key_file: str = ""
    approval_signing_key: str = ""
    # Public keys of earlier signing keys (a JWK set), still published at GET /v1/keys so
    # decisions signed before a rotation keep verifying.
    approval_retired_keys_file: str = ""
    # Four-eyes with no known submitter (requested_by empty): approve anyway, or refuse.
    # Unset: refuse in production, allow elsewhere.
    approval_four_eyes_unknown_submitter: Literal["allow", "refuse"] | None = None
    # How long one store operation of a request may take before the caller gets 503.
    approval_store_timeout_ms: int = 1500
    # How long a request waits for its decision's inline publish; past it the decision
    # stands (stored) and the outbox relay publishes it once the broker answers.
    approval_publish_timeout_seconds: float = 1.0
    # Decision analytics (README "Decision analytics and what-if"): how often decisions
    # are written to the daily rollup (reports lag by at most this), and whether this
    # service reads agents' shadow-mode records from agent.runs (the Kafka principal then
    # needs Read on agent.runs and the group hitl-approval-shadow).
    approval_analytics_flush_seconds: float = Field(default=1.0, gt=0)
    approval_shadow_feed: bool = False
    # How often the expected wait shown on pending approvals is recomputed from the rollup.
    approval_expected_wait_refresh_seconds: float = Field(default=60.0, gt=0)
    # Slack: from the Slack app's "Basic Information" page; empty: the Slack endpoint answers 503.
    approval_slack_signing_secret: str = ""
    # Slack signs a timestamp; older requests are replays and refused.
    approval_slack_max_age_seconds: int = 300
    # The Slack workspace (team id, `T0123...`) whose users may decide: a valid
    # signature proves the request came from Slack, not from which workspace. Empty:
    # any workspace the app is installed in (refused in production when Slack is on).
    approval_slack_team_id: str = ""
    # The reviewer web page's runs view (live runs, interrupt, halt): the agent service
    # and a token of a `delegate` principal there (it acts for the signed-in reviewer,
    # whose own roles in the agent's directory apply). Empty token: the view is off.
    approval_agent_url: str = "http://127.0.0.1:8082"
    approval_agent_token: str = ""

    @property
    def refuse_unknown_submitter(self) -> bool:
        choice = self.approval_four_eyes_unknown_submitter
        if choice is None:
            return self.hitl_env == "production"
        return choice == "refuse"

    def check_production(self) -> None:
        # Every refusal at once (see CommonSettings): one restart per fix wastes a deploy.
        problems = []
        if not (self.approval_signing_key or self.approval_signing_key_file):
            problems.append(
                "production needs APPROVAL_SIGNING_KEY_FILE or APPROVAL_SIGNING_KEY (an Ed25519 "
                "private key, PEM PKCS#8: `openssl genpkey -algorithm ed25519`); agents act "
                "only on decisions it signs, and the development key is refused"
            )
        if not (self.approval_reviewers or self.approval_reviewers_file):
            problems.append(
                "production needs APPROVAL_REVIEWERS or APPROVAL_REVIEWERS_FILE; "
                "the development token is refused"
            )
        if self.approval_fault_crash_after_commit:
            problems.append("APPROVAL_FAULT_CRASH_AFTER_COMMIT is a test fault; not in production")
        try:
            self.require_link_secret()  # the email links' pages verify them
        except ValueError as exc:
            problems.append(str(exc))
        if self.approval_slack_signing_secret and not self.approval_slack_team_id:
            problems.append(
                "production Slack needs APPROVAL_SLACK_TEAM_ID: Slack user ids are unique "
                "only within a workspace"
            )
        if problems:
            raise ValueError("; ".join(problems))

    def policy_book(self) -> PolicyBook:
        """The configured policies; a mistake stops the service at start-up, with the reason."""
        if self.approval_policies and self.approval_policies_file:
            raise ValueError("set APPROVAL_POLICIES or APPROVAL_POLICIES_FILE, not both")
        source, raw = "APPROVAL_POLICIES", self.approval_policies
        if self.approval_policies_file:
            path = Path(self.approval_policies_file)
            source, raw = f"APPROVAL_POLICIES_FILE {path}", path.read_text()
        if not raw:
            return PolicyBook()
        try:
            return PolicyBook.model_validate_json(raw)
        except ValidationError as exc:
            raise ValueError(f"{source}: not a valid policy book: {exc}") from exc
