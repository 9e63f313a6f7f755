"""Operators' per-agent policy file (AGENT_POLICIES_FILE): tighten without code changes.

```json
{
  "banking": {"tools": {"transfer": {"risk_level": "critical", "timeout_seconds": 600}}},
  "banking-strict": {"extends": "banking",
                     "tools": {"deposit": {"require_approval_when":
                                           [{"field": "amount", "op": "gt", "value": 50}]}}},
  "banking-router": {"extends": "banking", "style": "router", "confidence_threshold": 0.8},
  "banking-shadowed": {"extends": "banking",
                       "shadow": [{"name": "transfer-250", "tools": {"transfer":
                                   {"require_approval_when":
                                    [{"field": "amount", "op": "gt", "value": 250}]}}}]}
}
```

`shadow`: candidate policies run beside the live one (shadow mode): each tool call gets a
`shadow_decision` run event saying what each would have done; nothing else changes.
"""

import json
from pathlib import Path

from hitl_contracts.rules import CandidatePolicy
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError

from hitl_agent.domain.policy import ToolOverride
from hitl_agent.domain.run import Style


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    extends: str | None = Field(
        default=None, description="Define a new agent as a variant of this built-in one."
    )
    style: Style | None = None
    system_prompt: str | None = None
    confidence_threshold: float | None = Field(default=None, ge=0, le=1)
    max_steps: int | None = Field(default=None, ge=1)
    token_budget: int | None = Field(default=None, ge=1)
    max_repeated_failures: int | None = Field(default=None, ge=1)
    tools: dict[str, ToolOverride] = Field(default_factory=dict)
    shadow: tuple[CandidatePolicy, ...] = Field(
        default=(), max_length=5, description="Candidate policies run in shadow mode."
    )


class PoliciesFile(RootModel[dict[str, AgentConfig]]):
    pass


class PolicyFileError(ValueError):
    pass


def load_policies(path: str) -> dict[str, AgentConfig]:
    if not path:
        return {}
    try:
        raw = json.loads(Path(path).read_text())
        return PoliciesFile.model_validate(raw).root
    except (OSError, ValueError, ValidationError) as exc:
        raise PolicyFileError(f"AGENT_POLICIES_FILE {path}: {exc}") from exc
