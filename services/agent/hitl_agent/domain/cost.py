"""What a run cost: its tokens (counted at every model reply) priced per agent.

Pure rules, no I/O. The price table comes from AGENT_PRICES / AGENT_PRICES_FILE;
without one every price is zero (the figures then say tokens only).
"""

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from hitl_agent.domain.run import PendingCall, PendingKind, Usage


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_per_million: float = Field(default=0.0, ge=0)
    completion_per_million: float = Field(default=0.0, ge=0)

    def of(self, usage: Usage) -> float:
        return (
            usage.prompt_tokens * self.prompt_per_million
            + usage.completion_tokens * self.completion_per_million
        ) / 1_000_000


class PriceTable(BaseModel):
    """`default` prices every agent not listed under `agents` (each its own model)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = Field(default="USD", min_length=1, max_length=8)
    default: Price = Price()
    agents: dict[str, Price] = Field(default_factory=dict)

    def price(self, agent: str) -> Price:
        return self.agents.get(agent, self.default)

    def cost(self, agent: str, usage: Usage) -> float:
        return round(self.price(agent).of(usage), 6)

    @classmethod
    def load(cls, *, inline: str = "", file: str = "") -> "PriceTable":
        raw = inline or (Path(file).read_text() if file else "")
        if not raw:
            return cls()
        try:
            return cls.model_validate(json.loads(raw))
        except ValueError as exc:
            source = "AGENT_PRICES" if inline else f"AGENT_PRICES_FILE {file}"
            raise ValueError(f"{source}: not a valid price table: {exc}") from exc


def loop_prevented(pending_calls: list[PendingCall]) -> str | None:
    """Why a run (its held calls) counts as a loop prevented: a person stopped it when
    a guard or an interrupt paused it ("guard", "interrupt"), else None."""
    for pending in pending_calls:
        stopped = pending.resolved and pending.decision not in ("approved", "modified")
        if stopped and pending.kind is PendingKind.GUARD:
            return "guard"
        if stopped and pending.kind is PendingKind.SUPERVISOR:
            return "interrupt"
    return None
