"""`hitl approvals`, `show`, `approve`, `reject`, `modify`: the approval REST API."""

import json
from typing import Any

import click
from hitl_contracts import Decision, RiskLevel
from hitl_contracts.reading import value

from hitl_cli import assign
from hitl_cli.client import Config, ConflictError, approval_api
from hitl_cli.errors import Conflicted
from hitl_cli.output import age, arguments, emit_json, left, table

# An approval is pending until it ends in one of the decisions.
STATUSES = ["pending", *(decision.value for decision in Decision), "all"]
RISKS = [risk.value for risk in RiskLevel]

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.command("approvals")
@click.option("--status", type=click.Choice(STATUSES), default="pending", show_default=True)
@click.option("--agent", help="Only this agent's approvals.")
@click.option("--risk", type=click.Choice(RISKS), help="Only this risk level.")
@click.option("--run-id", help="Only this run's approvals.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@json_option
@click.pass_obj
def list_approvals(
    config: Config,
    status: str,
    agent: str | None,
    risk: str | None,
    run_id: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List approvals, newest first (pending ones by default)."""
    params = {"status": None if status == "all" else status, "agent": agent}
    params.update(risk_level=risk, run_id=run_id, limit=str(limit))
    with approval_api(config) as api:
        page = api.call("GET", "/v1/approvals", params={k: v for k, v in params.items() if v})
    if as_json:
        emit_json(page)
        return
    rows = []
    for item in page["items"]:
        req = item["request"]
        pending = item["status"] == "pending"
        rows.append(
            [
                item["correlation_id"],
                req["tool"],
                req["agent"],
                req["risk_level"],
                item["status"],
                age(req["requested_at"]),
                left(item.get("expires_at") or req["expires_at"]) if pending else "-",
                arguments(req["arguments"]),
            ]
        )
    if not rows:
        click.echo(f"no {'' if status == 'all' else status + ' '}approvals", err=True)
        return
    headers = ["id", "tool", "agent", "risk", "status", "age", "left", "arguments"]
    click.echo(table(headers, rows))
    if page.get("next_cursor"):
        click.echo(f"(showing {len(rows)}; narrow the filters or raise --limit)", err=True)


def _describe_decision(decision: dict[str, Any]) -> str:
    who = "the timeout" if decision["decision"] == "expired" else decision["reviewer"]
    text = f"{decision['decision']} by {who} via {decision['channel']} at {decision['decided_at']}"
    return text + (f": {decision['comment']}" if decision.get("comment") else "")


@click.command("show")
@click.argument("approval_id")
@json_option
@click.pass_obj
def show(config: Config, approval_id: str, as_json: bool) -> None:
    """Everything about one approval: request, reasoning, arguments, decision, history."""
    with approval_api(config) as api:
        approval = api.call("GET", f"/v1/approvals/{approval_id}")
        history = api.call("GET", f"/v1/approvals/{approval_id}/history")
    if as_json:
        emit_json({"approval": approval, "history": history})
        return
    req = approval["request"]
    lines = [
        f"approval   {approval['correlation_id']}  (version {approval['version']})",
        f"status     {approval['status']}"
        + (
            f"  ({left(approval['expires_at'])} left, until {approval['expires_at']})"
            if approval["status"] == "pending"
            else ""
        ),
        f"agent      {req['agent']}   run {req['run_id']}",
        f"tool       {req['tool']}   risk {req['risk_level']}",
        f"request    {req['context']['user_request']}",
    ]
    if req["context"].get("agent_reasoning"):
        lines.append(f"reasoning  {req['context']['agent_reasoning']}")
    lines.append(f"why        {req['reason']}")
    lines.append("arguments")
    lines += [f"  {k} = {value(v)}" for k, v in req["arguments"].items()]
    quorum = approval.get("policy", {}).get("quorum", 1)
    if quorum > 1 and approval["status"] == "pending":
        lines.append(f"quorum     {len(approval.get('approvers', []))} of {quorum} approvals")
    if approval.get("decision"):
        lines.append(f"decision   {_describe_decision(approval['decision'])}")
        if approval["decision"].get("arguments"):
            lines.append(f"final      {arguments(approval['decision']['arguments'], 200)}")
    click.echo("\n".join(lines))
    click.echo("\nhistory")
    rows = [
        [h["at"], h["type"], h["actor"], h["channel"], str(h["detail"].get("comment") or "")]
        for h in history
    ]
    click.echo(table(["at", "what", "who", "via", "comment"], rows))


def _decide(
    config: Config, approval_id: str, body: dict[str, Any], as_json: bool, if_match: int | None
) -> None:
    headers = {"If-Match": f'"{if_match}"'} if if_match is not None else {}
    with approval_api(config) as api:
        try:
            result = api.call(
                "POST", f"/v1/approvals/{approval_id}/decision", json=body, headers=headers
            )
        except ConflictError as exc:
            if as_json:
                emit_json(exc.body)
            current = exc.body.get("approval") or {}
            decided = current.get("decision")
            reason = f"already {_describe_decision(decided)}" if decided else exc.message
            raise Conflicted(f"not recorded: approval {approval_id} is {reason}") from None
    if as_json:
        emit_json(result)
        return
    req, decided = result["request"], result.get("decision")
    if decided is None:
        quorum = result.get("policy", {}).get("quorum", 1)
        click.echo(
            f"recorded your approval of {req['tool']}: {len(result.get('approvers', []))} of "
            f"{quorum} approvals; it stays pending until the rest"
        )
        return
    final = f" ({arguments(decided['arguments'], 200)})" if decided.get("arguments") else ""
    click.echo(f"{decided['decision']}: {req['tool']}{final}  [{approval_id}]")


comment_option = click.option("--comment", default="", help="Goes back to the agent.")
if_match_option = click.option(
    "--if-match", type=int, help="Only if the approval is still at this version (else exit 3)."
)


@click.command("approve")
@click.argument("approval_id")
@comment_option
@if_match_option
@json_option
@click.pass_obj
def approve(
    config: Config, approval_id: str, comment: str, if_match: int | None, as_json: bool
) -> None:
    """Approve the action as the agent proposed it."""
    _decide(config, approval_id, {"decision": "approve", "comment": comment}, as_json, if_match)


@click.command("reject")
@click.argument("approval_id")
@click.option("--comment", required=True, help="Why; the agent passes it to the model.")
@if_match_option
@json_option
@click.pass_obj
def reject(
    config: Config, approval_id: str, comment: str, if_match: int | None, as_json: bool
) -> None:
    """Reject the action, saying why."""
    _decide(config, approval_id, {"decision": "reject", "comment": comment}, as_json, if_match)


@click.command("modify")
@click.argument("approval_id")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Edit one argument.")
@click.option("--arguments", "replace_with", metavar="JSON", help="Replace all arguments.")
@comment_option
@if_match_option
@json_option
@click.pass_obj
def modify(
    config: Config,
    approval_id: str,
    assignments: tuple[str, ...],
    replace_with: str | None,
    comment: str,
    if_match: int | None,
    as_json: bool,
) -> None:
    """Approve with edited arguments (`--set amount=80`)."""
    if not assignments and replace_with is None:
        raise click.UsageError(
            "say what to change: --set KEY=VALUE (repeatable) or --arguments JSON"
        )
    base: dict[str, Any] = {}
    schema = None
    if replace_with is not None:
        try:
            base = json.loads(replace_with)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--arguments") from None
        if not isinstance(base, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--arguments")
    if assignments:
        with approval_api(config) as api:
            request = api.call("GET", f"/v1/approvals/{approval_id}")["request"]
        schema = request.get("arguments_schema")
        base = base if replace_with is not None else request["arguments"]
    try:
        edited = assign.apply(base, list(assignments), schema)
    except assign.BadAssignment as exc:
        raise click.BadParameter(str(exc), param_hint="--set") from None
    body = {"decision": "modify", "arguments": edited, "comment": comment}
    _decide(config, approval_id, body, as_json, if_match)
