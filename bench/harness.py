"""The services under test: real processes with their own topic prefix and database.

Reuses the e2e harness (`tests.support.stack.Stack`), so the benchmark runs exactly
what the tests run. All three services run (the notifier consumes every request, as in
production), so CPU and memory figures cover the whole deployment.
"""

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from bench.cpu import pid_from_file
from tests.support import leftovers
from tests.support.infra import Infra
from tests.support.stack import Stack

SERVICES = ("approval", "agent", "notifier")
# A deadline, not a wait: on two cores shared with other jobs (load 20+) a service has
# been seen to need just over a minute to answer /healthz.
START_TIMEOUT_S = 300.0
# Enough money for every approved transfer the benchmark makes to succeed.
SEED_ACCOUNTS = {"checking": 1e12, "alice": 0, "bob": 0}


def infra_from_env() -> Infra:
    kafka, mongo = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("MONGODB_URL")
    if not (kafka and mongo):
        raise SystemExit(
            "KAFKA_BOOTSTRAP_SERVERS and MONGODB_URL must be set; run deploy/bench.sh, or "
            'eval "$(deploy/local/infra.sh env)" first'
        )
    for address in (kafka, mongo):
        if "127.0.0.1" not in address and "localhost" not in address:
            raise SystemExit(f"the benchmark only runs against loopback, not {address}")
    return Infra(kafka, mongo)


def infra_pids() -> dict[str, int]:
    """Kafka, FerretDB (and its PostgreSQL) started by deploy/local/infra.sh, for CPU
    accounting."""
    state = Path(os.environ.get("HITL_STATE_DIR", Path.home() / ".local/state/hitl"))
    pids = {
        "kafka": pid_from_file(state / "kafka/kafka.pid"),
        "ferretdb": pid_from_file(state / "ferretdb/ferretdb.pid"),
        "postgresql": pid_from_file(state / "ferretdb/postgres.pid")
        if os.environ.get("HITL_STORE_BACKEND") == "postgresql"
        else None,
    }
    return {name: pid for name, pid in pids.items() if pid is not None}


@contextlib.asynccontextmanager
async def running_stack(
    infra: Infra, env: dict[str, str], *, keep_logs: bool = False
) -> AsyncIterator[Stack]:
    """Start approval + agent on a fresh prefix and database; remove both afterwards."""
    logs = Path(tempfile.mkdtemp(prefix="hitl-bench-"))
    stack = Stack(
        infra,
        logs,
        env_extra={"AGENT_SEED_ACCOUNTS": json.dumps(SEED_ACCOUNTS), **env},
        suffix="bench" + os.urandom(4).hex(),
    )
    try:
        for name in SERVICES:
            stack.start(name, timeout=START_TIMEOUT_S)
        yield stack
    except BaseException:
        print(f"[bench] service logs kept in {logs}", file=sys.stderr)
        raise
    else:
        if keep_logs:
            print(f"[bench] service logs in {logs}", file=sys.stderr)
        else:
            shutil.rmtree(logs, ignore_errors=True)
    finally:
        stack.close()
        await leftovers.drop(
            infra.kafka_bootstrap_servers, infra.mongodb_url, {stack.prefix: stack.database}
        )
