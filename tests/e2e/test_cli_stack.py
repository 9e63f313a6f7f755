"""`hitl up`, `status`, `down`: the real deploy scripts, on private ports and state.

The stack started here uses the shared Kafka and store (through
KAFKA_BOOTSTRAP_SERVERS / MONGODB_URL, so the scripts start no infrastructure) with
its own topic prefix, database, service ports and HITL_STATE_DIR, so `hitl down`
stops only what `hitl up` started.
"""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hitl_cli.main import cli
from pymongo import MongoClient

from tests.support import leftovers
from tests.support.http_server import free_port
from tests.support.infra import Infra


@pytest.fixture
def private_env(infra: Infra, tmp_path: Path) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    ports = {name: str(free_port()) for name in ("approval", "agent", "notifier")}
    env = {
        "HITL_ENV": "test",
        "HITL_STATE_DIR": str(tmp_path / "state"),
        # Never the shared instance's ports, even if a script tried to start one.
        "HITL_KAFKA_PORT": str(free_port()),
        "HITL_KAFKA_CONTROLLER_PORT": str(free_port()),
        "HITL_MONGO_PORT": str(free_port()),
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
        "MONGODB_URL": infra.mongodb_url,
        "MONGODB_DATABASE": f"hitl_test_cli_{suffix}",
        "HITL_TOPIC_PREFIX": f"t{suffix}.",
        "OPENAI_API_KEY": "",
        "APPROVAL_PORT": ports["approval"],
        "AGENT_PORT": ports["agent"],
        "NOTIFIER_PORT": ports["notifier"],
        "APPROVAL_PUBLIC_URL": f"http://127.0.0.1:{ports['approval']}",
        "HITL_APPROVAL_URL": f"http://127.0.0.1:{ports['approval']}",
        "HITL_AGENT_URL": f"http://127.0.0.1:{ports['agent']}",
    }
    leftovers.made(env["HITL_TOPIC_PREFIX"], env["MONGODB_DATABASE"])
    try:
        yield env
    finally:
        CliRunner().invoke(cli, ["down"], env=env)
        client: MongoClient[dict[str, Any]]
        with MongoClient(infra.mongodb_url) as client:
            client.drop_database(env["MONGODB_DATABASE"])


def hitl(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_up_starts_the_services_status_reports_them_down_stops_them(
    private_env: dict[str, str],
) -> None:
    up = hitl(private_env, "up")
    assert up.exit_code == 0, up.output

    status = hitl(private_env, "status", "--json")
    assert status.exit_code == 0, status.output
    report = json.loads(status.stdout)
    assert report["ready"] is True
    assert report["local"]["services"]["running"] is True
    assert "approval: running" in report["local"]["services"]["detail"]

    # The offline planner runs a small transfer straight through on the new stack.
    run = hitl(private_env, "submit", "Transfer 50 to Bob", "--follow", "--timeout", "60")
    assert run.exit_code == 0, run.output
    assert "Transferred 50.00 from checking to bob" in run.stdout

    down = hitl(private_env, "down")
    assert down.exit_code == 0, down.output
    after = hitl(private_env, "status")
    assert after.exit_code == 1, after.output
    assert "approval  NOT READY" in after.stdout
    assert "approval: stopped" in after.stdout
