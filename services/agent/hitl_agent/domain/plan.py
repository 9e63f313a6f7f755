"""The structured-output router's action plan: what the model must answer with."""

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class PlannedAction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tool: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)
    confidence: float | None = Field(default=None, ge=0, le=1)


class ActionPlan(BaseModel):
    """A typed list of actions; an empty list means the model is done."""

    model_config = ConfigDict(extra="ignore")

    reasoning: str = ""
    confidence: float = Field(ge=0, le=1, description="How sure the model is of the plan.")
    actions: list[PlannedAction] = Field(default_factory=list)
    final_answer: str | None = None

    def confidence_of(self, action: PlannedAction) -> float:
        return self.confidence if action.confidence is None else action.confidence


class InvalidPlan(ValueError):
    pass


def parse_plan(content: str | None) -> ActionPlan:
    try:
        return ActionPlan.model_validate(json.loads(content or ""))
    except (ValueError, ValidationError) as exc:
        raise InvalidPlan(f"not a valid action plan: {exc}") from exc


def plan_schema(tools: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """JSON schema of an ActionPlan whose actions are typed per tool."""
    action_variants = [
        {
            "type": "object",
            "properties": {
                "tool": {"type": "string", "const": name},
                "arguments": schema,
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            },
            "required": ["tool", "arguments"],
        }
        for name, schema in tools.items()
    ]
    return {
        "type": "object",
        "properties": {
            "reasoning": {"type": "string", "description": "Why these actions."},
            "confidence": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "How sure you are that this plan is what the user wants.",
            },
            "actions": {"type": "array", "items": {"anyOf": action_variants}},
            "final_answer": {
                "type": ["string", "null"],
                "description": "The answer to the user once no more actions are needed.",
            },
        },
        "required": ["reasoning", "confidence", "actions"],
    }
