"""The demo's own settings (the environment names predate the move out of the runtime)."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DemoSettings(BaseSettings):
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore")

    # Opening balances of the banking demo, created once if missing.
    agent_seed_accounts: dict[str, float] = Field(
        default_factory=lambda: {"checking": 1000.0, "alice": 0.0, "bob": 0.0}
    )
    # Transfers and deposits above this need approval; so do smaller ones once the run's
    # unapproved total would pass it, or the account's last-24-hours total the daily limit.
    agent_transfer_approval_threshold: float = 100.0
    agent_account_daily_limit: float = Field(default=1000.0, ge=0)
    # The files demo agent works only inside this directory.
    agent_files_sandbox: Path = Path("~/.local/state/hitl/files-sandbox")
