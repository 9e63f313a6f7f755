"""`hitl submit`: start a run and, with --follow, print its events until it ends."""

import json
import time
from typing import Any

import click
import httpx

from hitl_cli import sse
from hitl_cli.client import Config, agent_api
from hitl_cli.errors import Failed
from hitl_cli.output import arguments, emit_json

ENDED = {"completed", "failed", "cancelled"}


def _approval_lines(approvals: list[dict[str, Any]]) -> list[str]:
    lines = []
    for a in approvals:
        lines.append(
            f"  needs approval: {a['tool']}({arguments(a.get('arguments'), 120)}) "
            f"[{a.get('risk_level', '?')} risk] {a.get('reason', '')}".rstrip()
        )
        cid = a["correlation_id"]
        lines.append(f"    hitl approve {cid}")
        lines.append(f"    hitl modify {cid} --set key=value")
        lines.append(f"    hitl reject {cid} --comment 'why'")
    return lines


def describe(event: str, detail: dict[str, Any]) -> list[str]:
    """One event as a person reads it (first line) plus any indented details."""
    if event == "started":
        return [f"started (model {detail.get('model', '?')})"]
    if event == "model_replied":
        if detail.get("error"):
            return [f"model reply unusable: {detail['error']}"]
        calls = [f"{a['tool']}({arguments(a.get('arguments'), 80)})" for a in detail["actions"]]
        return [f"model wants: {', '.join(calls)}" if calls else "model answered"]
    if event == "approval_required":
        why = f" ({detail['guard']})" if detail.get("guard") else ""
        return [f"paused for approval{why}", *_approval_lines(detail.get("approvals", []))]
    if event == "decision_applied":
        comment = f": {detail['comment']}" if detail.get("comment") else ""
        return [
            f"{detail.get('tool')} {detail.get('decision')} by {detail.get('reviewer')}{comment}"
        ]
    if event == "tool_executed":
        state = "ok" if detail.get("ok") else "failed"
        return [f"{detail.get('tool')} {state}: {detail.get('result', '')}"]
    if event == "completed":
        return ["completed", f"  {detail.get('output', '')}"]
    if event == "failed":
        return [f"failed: {detail.get('error', '')}"]
    if event == "cancelled":
        by = f" by {detail['by']}" if detail.get("by") else ""
        return [f"cancelled{by}: {detail.get('reason', '')}"]
    if event == "decision_refused":
        return [f"decision refused ({detail.get('code')}): {detail.get('reason', '')}"]
    if event == "resumed":
        return ["resumed"]
    if event == "interrupted":
        return [f"interrupted by {detail.get('by')}: {detail.get('reason', '')}"]
    if event == "halted":
        return [f"halted (agent stopped by {detail.get('by')}): {detail.get('reason', '')}"]
    return [f"{event} {json.dumps(detail)}"]


def follow_run(config: Config, run_id: str, *, as_json: bool, timeout: float | None) -> str:
    """Print the run's events until it ends; returns how it ended."""
    deadline = None if timeout is None else time.monotonic() + timeout
    after = 0
    with agent_api(config) as agent:
        # Waiting for a human can take long: only --timeout bounds a quiet stream.
        agent.http.timeout = httpx.Timeout(config.timeout, read=timeout)
        while True:
            lines = agent.stream_lines(f"/v1/runs/{run_id}/events", params={"after": after})
            try:
                for message in sse.messages(lines):
                    after = int(message.id or after)
                    _print_event(message, as_json)
                    if message.event in ENDED:
                        return message.event
            except Failed:
                if deadline is None or time.monotonic() < deadline:
                    raise
            # The agent closes the stream when the run pauses; reconnecting waits for the rest.
            if deadline is not None and time.monotonic() >= deadline:
                raise Failed(
                    f"run {run_id} has not ended after {timeout:g}s; "
                    f"follow it again with `hitl run {run_id}`"
                )


def _print_event(message: sse.Message, as_json: bool) -> None:
    data = message.json() or {}
    if as_json:
        click.echo(json.dumps(data))
        return
    stamp = str(data.get("occurred_at", ""))[11:19]
    try:
        first, *rest = describe(message.event, data.get("detail") or {})
    except (KeyError, TypeError, AttributeError):
        # An event shape this CLI does not know yet: show it raw rather than stop following.
        first, rest = f"{message.event} {json.dumps(data.get('detail'))}", []
    click.echo(f"{stamp}  {first}")
    for line in rest:
        click.echo(line)


@click.command("submit")
@click.argument("text")
@click.option("--agent", default="banking", show_default=True, help="Which agent runs it.")
@click.option("--follow", is_flag=True, help="Print the run's events until it ends.")
@click.option("--timeout", type=float, help="With --follow: give up after this many seconds.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (one event per line with --follow)."
)
@click.pass_obj
def submit(
    config: Config, text: str, agent: str, follow: bool, timeout: float | None, as_json: bool
) -> None:
    """Give an agent a task: `hitl submit "Transfer 500 to Alice" --follow`."""
    with agent_api(config) as api:
        run = api.call("POST", "/v1/runs", json={"input": text, "agent": agent})
    run_id = run["run_id"]
    if not follow:
        if as_json:
            emit_json(run)
        else:
            click.echo(run_id)
        return
    if not as_json:
        click.echo(f"run {run_id}")
    ended = follow_run(config, run_id, as_json=as_json, timeout=timeout)
    if ended != "completed":
        raise Failed(f"run {run_id} {ended}")


@click.command("run")
@click.argument("run_id")
@click.option("--follow", is_flag=True, help="Print the run's events until it ends.")
@click.option("--timeout", type=float, help="With --follow: give up after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def show_run(
    config: Config, run_id: str, follow: bool, timeout: float | None, as_json: bool
) -> None:
    """A run's status, pending approvals and output (or --follow its events)."""
    if follow:
        ended = follow_run(config, run_id, as_json=as_json, timeout=timeout)
        if ended != "completed":
            raise Failed(f"run {run_id} {ended}")
        return
    with agent_api(config) as api:
        run = api.call("GET", f"/v1/runs/{run_id}")
    if as_json:
        emit_json(run)
        return
    click.echo(f"run      {run['run_id']}  ({run['agent']})")
    click.echo(f"status   {run['status']}")
    click.echo(f"input    {run['input']}")
    for line in _approval_lines(run.get("pending_approvals", [])):
        click.echo(line)
    if run.get("output"):
        click.echo(f"output   {run['output']}")
    if run.get("error"):
        click.echo(f"error    {run['error']}")
