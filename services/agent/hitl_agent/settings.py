"""Agent service settings."""

from hitl_shared.settings import CommonSettings
from pydantic import Field


class AgentSettings(CommonSettings):
    agent_host: str = "127.0.0.1"
    agent_port: int = 8082
    # Empty: the deterministic offline planner stands in for the model.
    openai_api_key: str = ""
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    agent_max_steps: int = 12
    agent_approval_timeout_seconds: float = 1800.0
    # Opening balances of the banking demo, created once if missing.
    agent_seed_accounts: dict[str, float] = Field(
        default_factory=lambda: {"checking": 1000.0, "alice": 0.0, "bob": 0.0}
    )
    agent_transfer_approval_threshold: float = 100.0

    @property
    def uses_offline_planner(self) -> bool:
        return not self.openai_api_key
