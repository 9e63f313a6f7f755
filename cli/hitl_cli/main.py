"""`hitl`: the stack, runs and approvals from a terminal.

Exit codes: 0 ok, 1 error, 2 usage, 3 conflict (the approval was already decided
or moved on). Base URLs, the reviewer token and the agent API token come from options or HITL_*
variables.
"""

import click

from hitl_cli import approvals, oversight, runs, stack
from hitl_cli.client import Config

DEV_TOKEN = "dev-reviewer-token"
DEV_AGENT_TOKEN = "dev-agent-token"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--approval-url",
    envvar="HITL_APPROVAL_URL",
    default="http://127.0.0.1:8081",
    show_default=True,
    help="Approval service base URL [env HITL_APPROVAL_URL].",
)
@click.option(
    "--agent-url",
    envvar="HITL_AGENT_URL",
    default="http://127.0.0.1:8082",
    show_default=True,
    help="Agent service base URL [env HITL_AGENT_URL].",
)
@click.option(
    "--token",
    envvar="HITL_TOKEN",
    default=DEV_TOKEN,
    show_default="the development token",
    help="Reviewer token [env HITL_TOKEN].",
)
@click.option(
    "--agent-token",
    envvar="HITL_AGENT_TOKEN",
    default=DEV_AGENT_TOKEN,
    show_default="the development token",
    help="Agent API token (roles submit/read/operate) [env HITL_AGENT_TOKEN].",
)
@click.option(
    "--timeout",
    envvar="HITL_TIMEOUT",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds to wait for each HTTP call.",
)
@click.version_option(package_name="hitl-cli")
@click.pass_context
def cli(
    ctx: click.Context,
    approval_url: str,
    agent_url: str,
    token: str,
    agent_token: str,
    timeout: float,
) -> None:
    """hitl: human-in-the-loop approvals for AI agents."""
    ctx.obj = Config(
        approval_url=approval_url,
        agent_url=agent_url,
        token=token,
        timeout=timeout,
        agent_token=agent_token,
    )


for command in (
    stack.up,
    stack.down,
    stack.status,
    runs.submit,
    runs.show_run,
    approvals.list_approvals,
    approvals.show,
    approvals.approve,
    approvals.reject,
    approvals.modify,
    oversight.list_runs,
    oversight.watch,
    oversight.interrupt,
    oversight.halt,
    oversight.resume,
    oversight.cost,
):
    cli.add_command(command)


def main() -> None:
    cli()
