"""Settings of the Slack and email integrations (read once, at start-up)."""

import functools

from hitl_shared.settings import CommonSettings


class IntegrationSettings(CommonSettings):
    # From the Slack app's "Basic Information" page; empty: the Slack endpoint answers 503.
    approval_slack_signing_secret: str = ""
    # Slack signs a timestamp; older requests are replays and refused.
    approval_slack_max_age_seconds: int = 300
    # The Slack workspace (team id, `T0123...`) whose users may decide: a valid
    # signature proves the request came from Slack, not from which workspace. Empty:
    # any workspace the app is installed in (refused in production when Slack is on).
    approval_slack_team_id: str = ""

    def check_production(self) -> None:
        self.require_link_secret()
        if self.approval_slack_signing_secret and not self.approval_slack_team_id:
            raise ValueError(
                "production Slack needs APPROVAL_SLACK_TEAM_ID: Slack user ids are unique "
                "only within a workspace"
            )


@functools.cache
def current() -> IntegrationSettings:
    return IntegrationSettings()
