"""Settings of the Slack and email integrations (read once, at start-up)."""

import functools

from hitl_shared.settings import CommonSettings


class IntegrationSettings(CommonSettings):
    # From the Slack app's "Basic Information" page; empty: the Slack endpoint answers 503.
    approval_slack_signing_secret: str = ""
    # Slack signs a timestamp; older requests are replays and refused.
    approval_slack_max_age_seconds: int = 300

    def check_production(self) -> None:
        self.require_link_secret()


@functools.cache
def current() -> IntegrationSettings:
    return IntegrationSettings()
