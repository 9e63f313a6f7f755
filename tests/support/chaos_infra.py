"""A private Kafka + FerretDB for the chaos suite, started with the project's own script.

The chaos suite restarts the broker and the store, so it must never touch the
instance everyone else shares: this one has its own state directory and ports and
is stopped at the end.

Kafka is secured like production by default (SASL_SSL, SCRAM-SHA-512, the ACLs of
deploy/local/kafka/acls.txt under the run's topic prefix) wherever infra.sh can make
it one (it needs openssl); `HITL_CHAOS_KAFKA_SECURITY=plaintext` turns that off.
"""

import asyncio
import os
import shlex
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hitl_shared.kafka_security import KafkaSecuritySettings, client_kwargs

from tests.support.http_server import free_port
from tests.support.infra import Infra

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "local" / "infra.sh"
# Generous: the machine is shared and a cold JVM is slow; infra.sh bounds each wait itself.
COMMAND_TIMEOUT = 180.0
# The Kafka user each service runs as on the secured broker (acls.txt grants each its own).
SERVICE_USERS = {"approval": "hitl-approval", "agent": "hitl-agent", "notifier": "hitl-notifier"}


def chaos_kafka_security() -> str:
    """`sasl_ssl` unless HITL_CHAOS_KAFKA_SECURITY says otherwise or openssl is missing
    (infra.sh makes the broker's CA and certificate with it)."""
    chosen = os.environ.get("HITL_CHAOS_KAFKA_SECURITY", "").strip().lower()
    if chosen in ("plaintext", "sasl_ssl"):
        return chosen
    if chosen:
        raise ValueError(f"HITL_CHAOS_KAFKA_SECURITY={chosen}: use plaintext or sasl_ssl")
    return "sasl_ssl" if shutil.which("openssl") else "plaintext"


@dataclass
class PrivateInfra:
    state_dir: Path
    security: str = field(default_factory=chaos_kafka_security)
    # Becomes the stack's suffix, so the ACLs name the topics and groups the run uses.
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    kafka_port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    mongo_port: int = field(default_factory=free_port)
    log: list[str] = field(default_factory=list)

    @property
    def secured(self) -> bool:
        return self.security == "sasl_ssl"

    @property
    def topic_prefix(self) -> str:
        return f"t{self.suffix}."  # what Stack(suffix=...) uses

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HITL_STATE_DIR": str(self.state_dir),
            "HITL_KAFKA_PORT": str(self.kafka_port),
            "HITL_KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "HITL_MONGO_PORT": str(self.mongo_port),
            "HITL_KAFKA_SECURITY": self.security,
            "HITL_KAFKA_ACL_PREFIX": self.topic_prefix,
        }

    def kafka_env(self, user: str) -> dict[str, str]:
        """The KAFKA_* settings of a client that is `user` (what `infra.sh env` prints)."""
        out = subprocess.run(
            [str(SCRIPT), "env"],
            env={**self.env, "HITL_KAFKA_USER": user},
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        pairs = (shlex.split(line)[1].split("=", 1) for line in out.splitlines() if line)
        return {key: value for key, value in pairs if key.startswith("KAFKA_")}

    def service_env(self) -> dict[str, dict[str, str]]:
        """Per service: its own Kafka user on the secured broker; nothing extra otherwise."""
        if not self.secured:
            return {}
        return {service: self.kafka_env(user) for service, user in SERVICE_USERS.items()}

    def client(self, user: str = "admin") -> dict[str, Any]:
        """aiokafka keyword arguments (bootstrap servers, TLS, SASL) for a client as `user`.
        The test's own clients are `admin`: they write every topic (bad input included)."""
        env = {k.lower(): v for k, v in self.kafka_env(user).items()}
        bootstrap = env.pop("kafka_bootstrap_servers")
        settings = KafkaSecuritySettings.model_validate(env)
        return {"bootstrap_servers": bootstrap, **client_kwargs(settings)}

    @property
    def endpoints(self) -> Infra:
        return Infra(
            kafka_bootstrap_servers=f"127.0.0.1:{self.kafka_port}",
            mongodb_url=f"mongodb://127.0.0.1:{self.mongo_port}/",
        )

    def run(self, command: str) -> None:
        """Blocking: for set-up and tear-down, outside the event loop's busy time."""
        started = time.monotonic()
        done = subprocess.run(
            [str(SCRIPT), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        self._record(command, started, done.returncode, done.stderr)

    async def arun(self, command: str) -> float:
        """Run an infra.sh command without blocking the event loop; its duration in s."""
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            str(SCRIPT),
            command,
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT)
        self._record(command, started, proc.returncode or 0, err.decode(errors="replace"))
        return time.monotonic() - started

    async def restart(self, server: str) -> float:
        """Stop and start `kafka` or `ferretdb`; seconds it was away."""
        return await self.arun(f"stop-{server}") + await self.arun(f"start-{server}")

    def _record(self, command: str, started: float, code: int, stderr: str) -> None:
        took = time.monotonic() - started
        self.log.append(f"infra.sh {command}: exit {code} in {took:.1f}s")
        if code != 0:
            raise RuntimeError(f"infra.sh {command} failed ({code}):\n{stderr[-3000:]}")
