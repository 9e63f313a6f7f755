"""A private Kafka + FerretDB for the chaos suite, started with the project's own script.

The chaos suite restarts the broker and the store, so it must never touch the
instance everyone else shares: this one has its own state directory and ports and
is stopped at the end.
"""

import asyncio
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.http_server import free_port
from tests.support.infra import Infra

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "local" / "infra.sh"
# Generous: the machine is shared and a cold JVM is slow; infra.sh bounds each wait itself.
COMMAND_TIMEOUT = 180.0


@dataclass
class PrivateInfra:
    state_dir: Path
    kafka_port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    mongo_port: int = field(default_factory=free_port)
    log: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HITL_STATE_DIR": str(self.state_dir),
            "HITL_KAFKA_PORT": str(self.kafka_port),
            "HITL_KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "HITL_MONGO_PORT": str(self.mongo_port),
        }

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
