"""Benchmark hitl on this machine: `python -m bench.run [--quick] [--out FILE]`.

Each scenario gets fresh approval + agent processes, a fresh topic prefix and a
fresh database on the Kafka and MongoDB-compatible store named by
KAFKA_BOOTSTRAP_SERVERS / MONGODB_URL (loopback only). Figures are printed and
written to a JSON file. Nothing here asserts a speed: it measures and reports.
"""

import argparse
import asyncio
import json
import os
import platform
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hitl_shared.settings import CommonSettings
from pymongo import AsyncMongoClient

from bench import report
from bench.cpu import CpuMeter, load_average
from bench.harness import infra_from_env, infra_pids, running_stack
from bench.scenarios import decisions, ingest, listable, resume, store
from tests.support.infra import Infra
from tests.support.stack import Stack

SCENARIOS = ("store", "listable", "resume", "ingest", "decisions")


@dataclass(frozen=True)
class Mode:
    name: str
    store_sizes: list[int]
    listable_count: int
    resume_seconds: float
    ingest_count: int
    decision_count: int
    decision_concurrency: int


MODES = {
    # Sized so the default run takes minutes, not hours, on FerretDB 1.24 (see README).
    "default": Mode("default", [100, 1000, 5000], 100, 2, 2000, 200, 32),
    "quick": Mode("quick", [100, 1000], 20, 1, 500, 50, 16),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smaller counts (a minute or two in all)"
    )
    parser.add_argument("--out", default="bench-results.json", help="JSON file to write")
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {SCENARIOS}"
    )
    parser.add_argument("--rate", type=float, default=50.0, help="decisions/s for resume")
    parser.add_argument(
        "--verb", choices=("approve", "reject"), default="approve", help="decision for resume"
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep each stack's service logs (path printed)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the services (repeatable), e.g. KAFKA_FETCH_MAX_WAIT_MS=500",
    )
    return parser.parse_args()


async def store_version(infra: Infra) -> str:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url)
    try:
        info = await client.admin.command("buildInfo")
    finally:
        await client.close()
    if ferret := info.get("ferretdbVersion"):
        return f"FerretDB {ferret} (speaks MongoDB {info.get('version')})"
    return f"MongoDB {info.get('version')}"


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + (" (dirty tree)" if git("status", "-s") else "")


def configuration(infra: Infra, env: dict[str, str], version: str) -> dict[str, Any]:
    # The services read the same environment plus `env`; so does this.
    overrides: dict[str, Any] = {k.lower(): v for k, v in env.items() if k.startswith("KAFKA_")}
    settings = CommonSettings(**overrides)
    return {
        "kafka": infra.kafka_bootstrap_servers,
        "store": version,
        "kafka_partitions": settings.kafka_partitions,
        "kafka_fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
        "kafka_linger_ms": settings.kafka_linger_ms,
        "producer": "acks=all, idempotent (hitl_shared.kafka.make_broker)",
        "services": "approval + agent, one uvicorn worker each, LOG_LEVEL "
        + env.get("LOG_LEVEL", os.environ.get("LOG_LEVEL", "INFO")),
        "agent_model": "offline planner (no OPENAI_API_KEY)",
        "service_env": env,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "commit": git_commit(),
    }


async def measured(
    name: str,
    infra: Infra,
    env: dict[str, str],
    body: Callable[[Stack], Awaitable[dict[str, Any]]],
    *,
    keep_logs: bool,
) -> dict[str, Any]:
    """Run one scenario on a fresh stack, with CPU per process and load average."""
    report.progress(f"{name}: starting a fresh stack")
    async with running_stack(infra, env, keep_logs=keep_logs) as stack:
        pids = {n: p.pid for n, p in stack.procs.items()} | infra_pids()
        meter = CpuMeter({**pids, "bench": os.getpid()})
        before = load_average()
        meter.start(time.perf_counter())
        started = time.perf_counter()
        result = await body(stack)
        result["wall_s"] = round(time.perf_counter() - started, 1)
        result["cpu"] = meter.stop(time.perf_counter())
        result["load_average"] = {"before": before, "after": load_average()}
    report.progress(f"{name}: done in {result['wall_s']} s")
    return result


def write(path: str, results: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(results, indent=2) + "\n")


async def main() -> None:
    args = parse_args()
    mode = MODES["quick" if args.quick else "default"]
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
    env = dict(item.split("=", 1) for item in args.env)
    infra = infra_from_env()
    results: dict[str, Any] = {
        "mode": asdict(mode),
        "configuration": configuration(infra, env, await store_version(infra)),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    resume_count = round(args.rate * mode.resume_seconds)
    bodies: dict[str, Callable[[Stack], Awaitable[dict[str, Any]]]] = {
        "listable": lambda s: listable.run(infra, s, count=mode.listable_count),
        "resume": lambda s: resume.run(
            infra, s, count=resume_count, rate=args.rate, verb=args.verb
        ),
        "ingest": lambda s: ingest.run(infra, s, count=mode.ingest_count, timeout=300),
        "decisions": lambda s: decisions.run(
            infra, s, count=mode.decision_count, concurrency=mode.decision_concurrency, timeout=300
        ),
    }
    for name in chosen:
        if name == "store":
            report.progress("store: probing operation cost by collection size")
            results["store"] = await store.run(infra, sizes=mode.store_sizes)
        else:
            results[name] = await measured(name, infra, env, bodies[name], keep_logs=args.keep_logs)
        write(args.out, results)  # after each scenario, so an interrupted run keeps its figures
    report.print_summary(results)
    print(f"\nfull figures: {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
