"""`request_human_intervention`: the model asks a person when it is stuck or unsure.

Nothing executes: the reviewer's free-text answer (the decision's comment) comes
back to the model as this tool's result.
"""

from hitl_contracts import RiskLevel
from pydantic import Field

from hitl_agent.domain.policy import ToolPolicy
from hitl_agent.tools.registry import Execution, PolicyArgs, Tool

NAME = "request_human_intervention"


class InterventionArgs(PolicyArgs):
    reason: str = Field(min_length=1, description="What you need a human for.")
    context: str = Field(default="", description="What you know so far.")
    action_type: str = Field(
        default="question", description="e.g. question, clarification, permission."
    )


async def _never_runs(args: InterventionArgs, run: Execution) -> str:
    raise AssertionError("request_human_intervention is answered by a human, not executed")


def intervention_tool() -> Tool:
    return Tool(
        NAME,
        "Ask a human operator for help when you are stuck, unsure, or the request is "
        "ambiguous. Their answer comes back as the result.",
        InterventionArgs,
        _never_runs,
        policy=ToolPolicy(requires_approval=True, risk_level=RiskLevel.MEDIUM),
        answered_by_human=True,
    )
