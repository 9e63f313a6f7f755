"""Approval service settings."""

from hitl_shared.settings import CommonSettings
from pydantic import Field


class ApprovalSettings(CommonSettings):
    approval_host: str = "127.0.0.1"
    approval_port: int = 8081
    # Public base URL used in links sent to reviewers.
    approval_public_url: str = "http://127.0.0.1:8081"
    approval_default_timeout_seconds: float = 1800.0
    approval_sweep_interval_seconds: float = 1.0
    approval_outbox_interval_seconds: float = 1.0
    # An unpublished outbox entry younger than this is still being published inline.
    approval_outbox_grace_seconds: float = 2.0
    # JSON list of {"name", "token_sha256", "roles"}; see README "Reviewer auth".
    approval_reviewers: str = ""
    approval_reviewers_file: str = ""
    # Development only: a token that acts as reviewer "dev" with every role.
    approval_dev_token: str = Field(default="dev-reviewer-token")

    def check_production(self) -> None:
        if not (self.approval_reviewers or self.approval_reviewers_file):
            raise ValueError(
                "production needs APPROVAL_REVIEWERS or APPROVAL_REVIEWERS_FILE; "
                "the development token is refused"
            )
