"""The three services as real processes, isolated per test module.

Each stack gets its own topic prefix, consumer groups and database, so stacks that
share one broker and one store never see each other's messages or documents.
"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from hitl_contracts.signing import DecisionSigner, private_key_pem

from tests.support import leftovers
from tests.support.http_server import free_port
from tests.support.infra import Infra

DEV_TOKEN = "dev-reviewer-token"
# The agent API's development principal (`developer`: submit, read, operate).
DEV_AGENT_TOKEN = "dev-agent-token"

MODULES = {
    "approval": "hitl_approval.main",
    "agent": "hitl_agent.main",
    "notifier": "hitl_notifier.main",
}


@dataclass
class Stack:
    infra: Infra
    logs: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    # Per service on top of `env` (e.g. each its own Kafka user).
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # The stack's decision key: the approval service signs with it, the agent trusts only
    # its public half (pinned), and tests sign decisions they publish themselves with it.
    signer: DecisionSigner = field(default_factory=DecisionSigner.generate)

    def __post_init__(self) -> None:
        self.ports = {name: free_port() for name in MODULES}
        self.prefix = f"t{self.suffix}."
        self.database = f"hitl_test_{self.suffix}"
        leftovers.made(self.prefix, self.database)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HITL_ENV": "test",
            "KAFKA_BOOTSTRAP_SERVERS": self.infra.kafka_bootstrap_servers,
            "MONGODB_URL": self.infra.mongodb_url,
            "MONGODB_DATABASE": self.database,
            "HITL_TOPIC_PREFIX": self.prefix,
            "APPROVAL_PORT": str(self.ports["approval"]),
            "AGENT_PORT": str(self.ports["agent"]),
            "NOTIFIER_PORT": str(self.ports["notifier"]),
            "APPROVAL_PUBLIC_URL": self.url("approval"),
            "OPENAI_API_KEY": "",
            # The demo agents (hitl_demo, found by its entry point) are hosted; requests
            # that name no agent go to banking.
            "AGENT_DEFAULT_AGENT": "banking",
            # Test modules move money from one checking account all day long.
            "AGENT_ACCOUNT_DAILY_LIMIT": "100000000",
            "APPROVAL_SIGNING_KEY": private_key_pem(self.signer.key).decode(),
            "AGENT_DECISION_KEYS": json.dumps({"keys": [self.signer.public_jwk()]}),
            **self.env_extra,
        }

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(
        self,
        name: str,
        *,
        # A deadline, not a sleep: on two cores shared by many test runs a service
        # took over a minute just to import.
        timeout: float = 180.0,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            command or [sys.executable, "-m", MODULES[name]],
            env={**self.env, **self.service_env.get(name, {}), **(env or {})},
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise RuntimeError(
                    f"{name} exited at start-up; see {self.logs / name}.log:\n"
                    + self.log_tail(name)
                )
            try:
                if httpx.get(self.url(name) + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} not healthy after {timeout}s:\n" + self.log_tail(name))

    def start_agent_worker(
        self,
        name: str,
        *,
        apps: list[str],
        hitl_agent: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """One more agent worker, `hitl-agent --app ...`, hosting only those apps.

        `hitl_agent`: the command, e.g. the script of a user's own virtualenv; by
        default this interpreter's runtime. `stop(name)` stops it; call again to restart.
        """
        port = self.ports.setdefault(name, free_port())
        command = hitl_agent or [sys.executable, "-m", MODULES["agent"]]
        for app in apps:
            command = [*command, "--app", app]
        # The agent service's own extras too (e.g. its Kafka user).
        extra = {**self.service_env.get("agent", {}), "AGENT_PORT": str(port), **(env or {})}
        self.start(name, command=command, env=extra)

    def start_all(self) -> None:
        for name in MODULES:
            self.start(name)

    def stop(self, name: str, *, kill: bool = False) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )

    def reviewer(self, token: str = DEV_TOKEN) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url("approval"), headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def agent(self, token: str = DEV_AGENT_TOKEN, *, name: str = "agent") -> httpx.AsyncClient:
        """A client of the agent service (or of the extra agent worker `name`)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url(name), headers=headers, timeout=30)


async def approvals_of(
    client: httpx.AsyncClient, run_id: str, status: str | None = None
) -> list[Any]:
    params = {"run_id": run_id, **({"status": status} if status else {})}
    response = await client.get("/v1/approvals", params=params)
    response.raise_for_status()
    items: list[Any] = response.json()["items"]
    return items
