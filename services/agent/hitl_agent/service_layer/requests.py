"""What a reviewer gets: the approval request built from a held call."""

from hitl_contracts import ApprovalRequested, RequestContext

from hitl_agent.domain.run import PendingCall, Run
from hitl_agent.service_layer.agents import AgentSpec


def approval_request(run: Run, pending: PendingCall, spec: AgentSpec) -> ApprovalRequested:
    tool = spec.registry.get(pending.tool)
    return ApprovalRequested(
        correlation_id=pending.correlation_id,
        run_id=run.run_id,
        agent=run.agent,
        tool=pending.tool,
        tool_call_id=pending.tool_call_id,
        arguments=pending.arguments,
        reason=pending.reason,
        risk_level=pending.risk_level,
        context=RequestContext(
            user_request=run.input,
            agent_reasoning=pending.reasoning,
            kind=pending.kind.value,
            **pending.context,
        ),
        requested_at=pending.requested_at,
        expires_at=pending.expires_at,
        arguments_schema=tool.args_schema() if tool else None,
        requested_by=run.submitted_by,
        edit_policy=tool.policy.edit if tool else None,
    )


def summary(pending: PendingCall) -> dict[str, object]:
    """A held call as run events and the runs API show it."""
    return {
        "correlation_id": pending.correlation_id,
        "tool": pending.tool,
        "tool_call_id": pending.tool_call_id,
        "arguments": pending.arguments,
        "reason": pending.reason,
        "risk_level": pending.risk_level.value,
        "kind": pending.kind.value,
        "expires_at": pending.expires_at.isoformat(),
        "context": pending.context,
    }
