"""`hitl up`, `down`, `status`: the local stack through the repository's deploy scripts."""

import os
import subprocess
from pathlib import Path

import click
import httpx

from hitl_cli.client import Config
from hitl_cli.errors import Failed
from hitl_cli.output import emit_json


def repo_root() -> Path:
    """The checkout whose deploy/ scripts to run: HITL_ROOT, else the one this CLI lives in."""
    root = Path(os.environ.get("HITL_ROOT") or Path(__file__).resolve().parents[2])
    if not (root / "deploy" / "demo.sh").exists():
        raise Failed(
            f"no hitl checkout at {root} (deploy/demo.sh is missing); "
            "set HITL_ROOT to the repository's directory"
        )
    return root


def _run(args: list[str]) -> int:
    root = repo_root()
    return subprocess.run([str(root / args[0]), *args[1:]], cwd=root, check=False).returncode


@click.command("up")
def up() -> None:
    """Start Kafka, FerretDB and the three services (deploy/demo.sh --up)."""
    if code := _run(["deploy/demo.sh", "--up"]):
        raise Failed(f"deploy/demo.sh --up failed (exit {code}); see the lines above")


@click.command("down")
def down() -> None:
    """Stop the services and the local infrastructure (deploy/demo.sh --down)."""
    if code := _run(["deploy/demo.sh", "--down"]):
        raise Failed(f"deploy/demo.sh --down failed (exit {code}); see the lines above")


def _script_status(script: str) -> tuple[bool, str]:
    root = repo_root()
    done = subprocess.run(
        [str(root / script), "status"], cwd=root, capture_output=True, text=True, check=False
    )
    return done.returncode == 0, (done.stdout + done.stderr).strip()


def _ready(name: str, url: str, timeout: float) -> dict[str, object]:
    try:
        response = httpx.get(url.rstrip("/") + "/readyz", timeout=timeout)
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return {"service": name, "url": url, "ready": False, "detail": f"unreachable: {exc}"}
    ready = response.status_code == 200
    return {"service": name, "url": url, "ready": ready, "detail": body.get("checks", body)}


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def status(config: Config, as_json: bool) -> None:
    """Are the services ready? Also shows what the local scripts started. Exit 1 if not."""
    endpoints = [
        _ready("approval", config.approval_url, config.timeout),
        _ready("agent", config.agent_url, config.timeout),
    ]
    infra_ok, infra = _script_status("deploy/local/infra.sh")
    services_ok, services = _script_status("deploy/local/services.sh")
    ready = all(e["ready"] for e in endpoints)
    if as_json:
        emit_json(
            {
                "ready": ready,
                "endpoints": endpoints,
                "local": {
                    "infrastructure": {"running": infra_ok, "detail": infra},
                    "services": {"running": services_ok, "detail": services},
                },
            }
        )
    else:
        for e in endpoints:
            state = "ready" if e["ready"] else "NOT READY"
            click.echo(f"{e['service']:<9} {state:<10} {e['url']}  {e['detail']}")
        click.echo("\nlocal infrastructure (deploy/local/infra.sh status):")
        click.echo("  " + infra.replace("\n", "\n  "))
        click.echo("local services (deploy/local/services.sh status):")
        click.echo("  " + services.replace("\n", "\n  "))
    if not ready:
        raise Failed("not every service is ready; start the stack with `hitl up`")
