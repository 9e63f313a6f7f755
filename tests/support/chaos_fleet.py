"""The services of one chaos run as real processes that can be SIGKILLed and restarted.

Built on a `Stack` (topic prefix, database, environment); adds named replicas (two
agents in one consumer group) and start/kill/restart that never block the event
loop, so the load and the reviewers keep going while a service is down.
"""

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import httpx

from tests.support.http_server import free_port
from tests.support.stack import MODULES, Stack

START_TIMEOUT = 150.0
ATTEMPT_TIMEOUT = 60.0


@dataclass
class Replica:
    name: str
    module: str
    port: int
    service: str
    # On top of the stack's environment and its service's (e.g. how it gets decision keys).
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0


@dataclass
class Fleet:
    stack: Stack
    replicas: dict[str, Replica] = field(default_factory=dict)

    def add(self, name: str, service: str, env: dict[str, str] | None = None) -> Replica:
        """A replica of `service` (approval, agent, notifier); the first one uses the stack's port."""
        taken = any(r.module == MODULES[service] for r in self.replicas.values())
        port = free_port() if taken else self.stack.ports[service]
        replica = Replica(name, MODULES[service], port, service, dict(env or {}))
        self.replicas[name] = replica
        return replica

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.replicas[name].port}"

    async def start(self, name: str) -> None:
        """Start (again) until healthy. A start that dies or hangs (the store or the broker
        is away) is killed and tried again, within START_TIMEOUT."""
        replica = self.replicas[name]
        deadline = time.monotonic() + START_TIMEOUT
        async with httpx.AsyncClient(timeout=1) as http:
            while True:
                proc = self._spawn(replica)
                attempt_ends = min(deadline, time.monotonic() + ATTEMPT_TIMEOUT)
                while proc.poll() is None and time.monotonic() < attempt_ends:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get(self.url(name) + "/healthz")).status_code == 200:
                            return
                    await asyncio.sleep(0.1)
                if proc.poll() is None:
                    proc.kill()
                    await asyncio.to_thread(proc.wait, 10)
                if time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"{name} not healthy after {START_TIMEOUT}s:\n{self.tail(name)}"
                    )
                await asyncio.sleep(0.5)

    def _spawn(self, replica: Replica) -> subprocess.Popen[bytes]:
        env = {
            **self.stack.env,
            **self.stack.service_env.get(replica.service, {}),
            **replica.env,
            f"{replica.service.upper()}_PORT": str(replica.port),
        }
        with (self.stack.logs / f"{replica.name}.log").open("ab") as log:
            replica.proc = subprocess.Popen(
                [sys.executable, "-m", replica.module], env=env, stdout=log, stderr=log
            )
        replica.starts += 1
        return replica.proc

    def kill(self, name: str) -> None:
        replica = self.replicas[name]
        if replica.proc is not None and replica.proc.poll() is None:
            replica.proc.send_signal(signal.SIGKILL)
            replica.proc.wait(timeout=10)
            replica.kills += 1

    def running(self, name: str) -> bool:
        proc = self.replicas[name].proc
        return proc is not None and proc.poll() is None

    def stop_all(self) -> None:
        for replica in self.replicas.values():
            proc = replica.proc
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.stack.logs / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
