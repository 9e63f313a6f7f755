"""`hitl runs`, `hitl watch`, `hitl interrupt`, `hitl halt`, `hitl resume`, `hitl cost`.

Supervising runs that are not paused: list them, watch every run's events live,
pause one at its next step (a `supervisor` approval then decides: `hitl approve ID
--comment 'note for the model'` goes on, `hitl reject ID` stops it), stop every run
of an agent at once and, as an admin, let them go on.
"""

from typing import Any
from urllib.parse import quote

import click
import httpx

from hitl_cli import sse
from hitl_cli.client import Config, agent_api
from hitl_cli.output import emit_json, table


def _segment(value: str) -> str:
    return quote(value, safe="")


@click.command("runs")
@click.option("--agent", help="Only this agent's runs.")
@click.option("--status", "statuses", multiple=True, help="Only runs in this status (repeatable).")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_runs(
    config: Config, agent: str | None, statuses: tuple[str, ...], limit: int, as_json: bool
) -> None:
    """Recent runs, newest first, with their status, tokens and cost."""
    params: dict[str, Any] = {"limit": limit, "status": list(statuses)}
    if agent:
        params["agent"] = agent
    with agent_api(config) as api:
        page = api.call("GET", "/v1/runs", params=params)
    if as_json:
        emit_json(page)
        return
    if page["halted_agents"]:
        click.echo(f"HALTED: {', '.join(page['halted_agents'])}")
    rows = [
        [
            r["run_id"],
            r["agent"],
            r["status"],
            str(r["steps"]),
            str(r["usage"]["total_tokens"]),
            f"{r['cost']:.4f} {r['currency']}",
            r["input"][:40],
        ]
        for r in page["items"]
    ]
    click.echo(table(["run", "agent", "status", "steps", "tokens", "cost", "input"], rows))


@click.command("watch")
@click.option("--agent", help="Only this agent's runs.")
@click.option("--status", "statuses", multiple=True, help="Only events leaving runs so.")
@click.option("--json", "as_json", is_flag=True, help="One JSON event per line.")
@click.pass_obj
def watch(config: Config, agent: str | None, statuses: tuple[str, ...], as_json: bool) -> None:
    """Every run's lifecycle events as they happen (Ctrl-C to stop)."""
    params: dict[str, Any] = {"status": list(statuses)}
    if agent:
        params["agent"] = agent
    with agent_api(config) as api:
        api.http.timeout = httpx.Timeout(config.timeout, read=None)
        for message in sse.messages(api.stream_lines("/v1/run-events", params=params)):
            data = message.json() or {}
            if as_json:
                click.echo(message.data)
                continue
            stamp = str(data.get("occurred_at", ""))[11:19]
            click.echo(
                f"{stamp}  {data.get('run_id')}  {data.get('agent')}  "
                f"{data.get('type')} -> {data.get('status')}"
            )


@click.command("interrupt")
@click.argument("run_id")
@click.option("--reason", required=True, help="Why: the reviewer and the audit log see it.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def interrupt(config: Config, run_id: str, reason: str, as_json: bool) -> None:
    """Pause a running run at its next step; a `supervisor` approval then decides."""
    with agent_api(config) as api:
        flag = api.call("POST", f"/v1/runs/{_segment(run_id)}/interrupt", json={"reason": reason})
    if as_json:
        emit_json(flag)
        return
    click.echo(f"run {run_id}: interrupt {flag['state']} (by {flag['by']})")
    click.echo("  it pauses at its next step; then: hitl approvals --status pending")


@click.command("halt")
@click.argument("agent")
@click.option("--reason", required=True, help="Why: shown on the web page and audited.")
@click.pass_obj
def halt(config: Config, agent: str, reason: str) -> None:
    """Emergency stop: no run of AGENT takes another step until an admin resumes it."""
    with agent_api(config) as api:
        state = api.call("POST", f"/v1/agents/{_segment(agent)}/halt", json={"reason": reason})
    click.echo(f"agent {agent} halted by {state['by']}: {state['reason']}")


@click.command("resume")
@click.argument("agent")
@click.option("--reason", default="", help="Why it is safe again (audited).")
@click.pass_obj
def resume(config: Config, agent: str, reason: str) -> None:
    """Lift an agent's halt (admins only); its parked runs go on."""
    with agent_api(config) as api:
        result = api.call("POST", f"/v1/agents/{_segment(agent)}/resume", json={"reason": reason})
    runs = result["resumed_runs"]
    click.echo(f"agent {agent} resumed; {len(runs)} parked run(s) going on")
    for run_id in runs:
        click.echo(f"  {run_id}")


@click.command("cost")
@click.argument("run_id", required=False)
@click.option("--agent", help="Only this agent (without RUN_ID).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def cost(config: Config, run_id: str | None, agent: str | None, as_json: bool) -> None:
    """What a run (or, without RUN_ID, each agent) cost, and the loops prevented."""
    with agent_api(config) as api:
        if run_id:
            result = api.call("GET", f"/v1/runs/{_segment(run_id)}/cost")
        else:
            result = api.call("GET", "/v1/costs", params={"agent": agent} if agent else {})
    if as_json:
        emit_json(result)
        return
    if run_id:
        usage = result["usage"]
        click.echo(
            f"run {run_id} ({result['agent']}): {usage['total_tokens']} tokens, "
            f"{result['cost']:.4f} {result['currency']}"
            + (f", loop prevented ({result['loop_prevented']})" if result["loop_prevented"] else "")
        )
        return
    rows = [
        [
            c["agent"],
            str(c["runs"]),
            str(c["total_tokens"]),
            f"{c['cost']:.4f} {c['currency']}",
            str(c["loops_prevented"]),
        ]
        for c in result
    ]
    click.echo(table(["agent", "runs", "tokens", "cost", "loops prevented"], rows))
