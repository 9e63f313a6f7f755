"""A private SASL_SSL broker (deploy/local/infra.sh, HITL_KAFKA_SECURITY=sasl_ssl) for a test.

Own ports and state dir, so the shared plaintext broker is never touched; stopped
afterwards (the state dir is the test's tmp dir). `env(user)` gives the KAFKA_* settings a client of that
Kafka user needs (what `infra.sh env` prints).
"""

import contextlib
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.http_server import free_port

INFRA = Path(__file__).resolve().parents[2] / "deploy" / "local" / "infra.sh"


@dataclass(frozen=True)
class SecureKafka:
    script_env: dict[str, str]

    @property
    def bootstrap(self) -> str:
        return self.env("admin")["KAFKA_BOOTSTRAP_SERVERS"]

    def env(self, user: str) -> dict[str, str]:
        out = subprocess.run(
            [str(INFRA), "env"],
            env={**self.script_env, "HITL_KAFKA_USER": user},
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        pairs = (shlex.split(line)[1].split("=", 1) for line in out.splitlines() if line)
        return {key: value for key, value in pairs if key.startswith("KAFKA_")}

    def secrets(self) -> Path:
        return Path(self.script_env["HITL_STATE_DIR"]) / "kafka-sasl_ssl" / "secrets"


@contextlib.contextmanager
def secure_kafka(state_dir: Path) -> Iterator[SecureKafka]:
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")) or not shutil.which("openssl"):
        pytest.skip("the SASL_SSL broker runs from Kafka's jars: needs java 17 and openssl")
    script_env = {
        **os.environ,
        "HITL_KAFKA_SECURITY": "sasl_ssl",
        "HITL_STATE_DIR": str(state_dir),
        "HITL_KAFKA_PORT": str(free_port()),
        "HITL_KAFKA_CONTROLLER_PORT": str(free_port()),
    }
    subprocess.run([str(INFRA), "start-kafka"], env=script_env, check=True, timeout=180)
    try:
        yield SecureKafka(script_env)
    finally:
        subprocess.run([str(INFRA), "stop-kafka"], env=script_env, check=False, timeout=60)
