"""Benchmark hitl on this machine: `python -m bench.run [--quick] [--out FILE]`.

Each scenario gets fresh approval + agent processes, a fresh topic prefix and a
fresh database on the Kafka and MongoDB-compatible store named by
KAFKA_BOOTSTRAP_SERVERS / MONGODB_URL (loopback only). Figures are printed and
written to a JSON file. Nothing here asserts a speed: it measures and reports.
"""

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from hitl_shared.settings import CommonSettings
from pymongo import AsyncMongoClient

from bench import history, report
from bench.cpu import CpuMeter, load_average, loop_ms, memory, quiet
from bench.harness import infra_from_env, infra_pids, running_stack
from bench.scenarios import decisions, effects, ingest, listable, resume, store
from bench.scenarios.common import clear_pending, store_size
from bench.tap import RunTap, tapping
from tests.support.infra import Infra
from tests.support.stack import Stack

WARMUP_ROUND = 400
QUIET_LIMIT_S = 30.0  # bench.cpu.quiet's own limit: it gives up waiting after this
SCENARIOS = ("store", "started", "listable", "resume", "effects", "ingest", "decisions")


@dataclass(frozen=True)
class Mode:
    name: str
    history: list[int]  # finished runs in the store before the scenarios, one stack each
    store_sizes: list[int]
    started_count: int
    listable_count: int
    rates: list[float]  # open-loop decisions/s for decision -> effect
    resume_seconds: float
    resume_max: int
    clients: list[int]  # closed-loop reviewers for decisions/s and effects/s
    effects_count: int
    ingest_count: int
    decision_count: int
    decision_concurrency: int
    # Decisions taken (16 clients, unmeasured) on each fresh stack before the scenarios:
    # a fresh broker's JVM spends a fifth of a core compiling (C2) under its first
    # minutes of load, which a broker that has run for a while no longer does (600
    # left it at 0.28 of a core during 50/s, 2,000 at 0.12).
    warmup_count: int
    # Each unit (a scenario, one rate or client count of it) this many times on every
    # history size; figures compared across sizes are the median of the rounds.
    rounds: int


# Sized so the default run takes minutes, not hours, on FerretDB 1.24 (see README).
DEFAULT = Mode(
    name="default",
    history=[1000],
    store_sizes=[100, 1000, 5000],
    started_count=40,
    listable_count=40,
    rates=[5, 50, 200],
    # 10 s of decisions per rate: 50 samples at 5/s, 500 at 50/s (3 s gave 20 and 150,
    # so a p99 was the worst one or two decisions and one slow second moved p50).
    resume_seconds=10,
    resume_max=1000,
    clients=[16, 64],
    effects_count=200,
    ingest_count=2000,
    decision_count=200,
    decision_concurrency=32,
    warmup_count=2000,
    rounds=1,
)
MODES = {
    "default": DEFAULT,
    "quick": replace(
        DEFAULT,
        name="quick",
        store_sizes=[100, 1000],
        started_count=10,
        listable_count=10,
        rates=[5, 50],
        resume_seconds=2,
        resume_max=100,
        clients=[16],
        effects_count=60,
        ingest_count=500,
        decision_count=50,
        decision_concurrency=16,
        warmup_count=200,
    ),
    # The history axis of the README table: every figure at 1k and at 100k finished runs.
    "full": replace(DEFAULT, name="full", history=[1000, 100_000], rounds=3),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--mode",
        choices=sorted(MODES),
        default="default",
        help="quick: a few minutes; default: more rates and clients; "
        "full: also at 100k finished runs of history (long)",
    )
    parser.add_argument("--quick", action="store_true", help="same as --mode quick")
    parser.add_argument(
        "--history", default="", help="comma-separated history sizes, overriding the mode's"
    )
    parser.add_argument(
        "--rates", default="", help="comma-separated decisions/s for resume, overriding the mode's"
    )
    parser.add_argument(
        "--resume-seconds",
        type=float,
        default=None,
        help="seconds of open-loop decisions per rate for resume (default: the mode's, "
        "capped at its resume_max decisions; given here, not capped)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="decisions taken unmeasured on each fresh stack first (0: none; default: the mode's)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="times each unit runs on every history size, interleaved (default: the mode's; "
        "the history comparison takes each figure's median over the rounds)",
    )
    parser.add_argument("--out", default="bench-results.json", help="JSON file to write")
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {SCENARIOS}"
    )
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
        "store_backend": os.environ.get("HITL_STORE_BACKEND", "sqlite"),
        # The store's settings deploy/local/infra.sh was given (unset: its defaults).
        "store_settings": {
            k: v
            for k, v in sorted(os.environ.items())
            if k.startswith(("HITL_SQLITE_", "HITL_FERRETDB_"))
        },
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


@dataclass
class Session:
    """One stack with a given history; the units of a round run on it in turn."""

    infra: Infra
    stack: Stack
    tap: RunTap
    pids: dict[str, int]
    entry: dict[str, Any]  # this history size's figures, as written to the JSON
    # The other history sizes' services, alive and idle while this one is measured:
    # metered apart, so their CPU shows (and is not counted as the benchmark's own).
    others: dict[str, int] = field(default_factory=dict)

    async def measured(
        self, name: str, body: Callable[[], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        report.progress(f"{name}: running")
        meter = CpuMeter({**self.pids, **self.others, "bench": os.getpid()})
        before, speed = load_average(), loop_ms()
        with collector_paused():
            meter.start(time.perf_counter())
            started = time.perf_counter()
            result = await body()
            result["wall_s"] = round(time.perf_counter() - started, 1)
            result["cpu"] = meter.stop(time.perf_counter())
        result["load_average"] = {"before": before, "after": load_average()}
        result["loop_ms"] = {"before": speed, "after": loop_ms()}
        result["pss_mib_after"] = memory(self.pids)
        report.progress(f"{name}: done in {result['wall_s']} s")
        return result


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No collection of the benchmark's own heap while a unit is measured.

    The benchmark is the client: it keeps every event it taps, and a full collection of
    its heap (200+ MiB) stopped its event loop for 100-190 ms, during which decisions
    were neither sent nor seen done. Each of the slowest decisions of a 50/s unit sat on
    one of those pauses (matched by time with a `gc.callbacks` probe), so the p99 was
    the client's. Collected before the unit, off the clock; after it the collector is
    as it was (its next collection takes what the unit left).
    """
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class Unit:
    """One measurement: a scenario, or one rate / client count of it (`key`)."""

    scenario: str
    key: str | None
    label: str
    body: Callable[[Session], Awaitable[dict[str, Any]]]


async def with_histories(
    infra: Infra,
    env: dict[str, str],
    sizes: list[int],
    units: list[Unit],
    *,
    rounds: int,
    warmup: int,
    keep_logs: bool,
    save: Callable[[], None],
    entries: list[dict[str, Any]],
) -> None:
    """A stack per history size, all alive at once; each unit runs on every stack in
    turn (in reverse order every other round), so the figures the history axis compares
    were taken minutes apart at most, not one stack's whole run apart: this machine's
    speed drifts by up to 1.7x over minutes, and the sizes measured one after the other
    compared that drift as much as the history."""
    sessions: list[Session] = []
    async with contextlib.AsyncExitStack() as exits:
        for size in sizes:
            report.progress(f"history {size}: starting a fresh stack")
            stack = await exits.enter_async_context(running_stack(infra, env, keep_logs=keep_logs))
            tap = await exits.enter_async_context(
                tapping(infra.kafka_bootstrap_servers, stack.prefix + "agent.runs")
            )
            pids = {n: p.pid for n, p in stack.procs.items()} | infra_pids()
            entry: dict[str, Any] = {"history_runs": size, "rounds": []}
            entries.append(entry)
            sessions.append(Session(infra, stack, tap, pids, entry))
            report.progress(f"history {size}: seeding finished runs")
            entry["seeded"] = await history.seed(infra, stack, tap, size)
            save()
        for s in sessions:
            s.others = {
                f"{name}@{o.entry['history_runs']}": o.pids[name]
                for o in sessions
                if o is not s
                for name in o.stack.procs
            }
        every_pid = infra_pids() | {
            f"{name}@{s.entry['history_runs']}": proc.pid
            for s in sessions
            for name, proc in s.stack.procs.items()
        }
        await asyncio.sleep(2)  # let the services go idle before the idle reading
        for s in sessions:
            s.entry["pss_mib_idle"] = memory(s.pids)
        for s in sessions if warmup else []:
            size = s.entry["history_runs"]
            report.progress(f"history {size}: warming up ({warmup} decisions, unmeasured)")
            started = time.perf_counter()
            # In rounds, so the pending queue the warm-up builds stays as small as the
            # scenarios' (a listing of 2,000 pending approvals is slow on FerretDB).
            for left in range(warmup, 0, -WARMUP_ROUND):
                await effects.run(infra, s.stack, s.tap, count=min(left, WARMUP_ROUND), clients=16)
            seconds = round(time.perf_counter() - started, 1)
            # Until its tail (outbox relays, notifications) is done, not into the scenarios.
            s.entry["warmup"] = {
                "decisions": warmup,
                "seconds": seconds,
                "settled_s": await quiet(every_pid),
            }
            save()
        for number in range(rounds):
            order = sessions if number % 2 == 0 else sessions[::-1]
            for s in sessions:
                s.entry["rounds"].append({})
            for unit in units:
                for s in order:
                    # The previous unit's tail (on this stack or another) is not this one's.
                    settled = await quiet(every_pid, limit=QUIET_LIMIT_S)
                    size = s.entry["history_runs"]
                    if settled >= QUIET_LIMIT_S:
                        report.progress(
                            f"history {size}: still busy after {settled} s; measuring anyway"
                        )
                    result = await s.measured(
                        f"history {size}, round {number + 1}/{rounds}: {unit.label}",
                        lambda s=s, unit=unit: unit.body(s),  # type: ignore[misc]
                    )
                    result["settled_before_s"] = settled
                    result["cleared_pending"] = await clear_pending(s.stack)
                    figures = s.entry["rounds"][number]
                    if unit.key is None:
                        figures[unit.scenario] = result
                    else:
                        figures.setdefault(unit.scenario, {})[unit.key] = result
                    save()  # after each unit, so an interrupted run keeps its figures
        # Once, after the scenarios: FerretDB answers collStats on SQLite by reading every
        # page of the database (its `dbstat` table): at 100k runs of history, seconds of
        # a core and the disk's attention, which after each scenario (and each warm-up
        # round) loaded the next one.
        for s in sessions:
            s.entry["store_after"] = await store_size(infra.mongodb_url, s.stack.database)
        save()


def write(path: str, results: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(results, indent=2) + "\n")


def _numbers(text: str, kind: type[float] | type[int]) -> list[Any]:
    return [kind(x) for x in text.split(",") if x.strip()]


async def main() -> None:
    args = parse_args()
    if args.resume_seconds is not None and not 0 < args.resume_seconds <= 3600:
        raise SystemExit(f"--resume-seconds {args.resume_seconds}: give 0 < seconds <= 3600")
    mode = MODES["quick" if args.quick else args.mode]
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
    sizes = _numbers(args.history, int) if args.history else mode.history
    rates = _numbers(args.rates, float) if args.rates else mode.rates
    warmup = mode.warmup_count if args.warmup is None else max(0, args.warmup)
    rounds = mode.rounds if args.rounds is None else args.rounds
    if not 1 <= rounds <= 20:
        raise SystemExit(f"--rounds {rounds}: give 1 to 20")
    if len(sizes) > 1 and rounds % 2 == 0:
        # The median of an even count averages the middle two: one slow round would move it.
        raise SystemExit(f"--rounds {rounds}: comparing history sizes takes an odd number")
    env = dict(item.split("=", 1) for item in args.env)
    infra = infra_from_env()
    results: dict[str, Any] = {
        "mode": asdict(mode)
        | {"history": sizes, "rates": rates, "warmup_count": warmup, "rounds": rounds}
        | ({} if args.resume_seconds is None else {"resume_seconds": args.resume_seconds}),
        "configuration": configuration(infra, env, await store_version(infra)),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "by_history": [],
    }

    def count_at(rate: float) -> int:
        if args.resume_seconds is None:
            return max(20, min(round(rate * mode.resume_seconds), mode.resume_max))
        seconds: float = args.resume_seconds
        return max(20, round(rate * seconds))

    plain: dict[str, Callable[[Session], Awaitable[dict[str, Any]]]] = {
        "started": lambda s: listable.started(infra, s.stack, s.tap, count=mode.started_count),
        "listable": lambda s: listable.run(infra, s.stack, count=mode.listable_count),
        "ingest": lambda s: ingest.run(infra, s.stack, count=mode.ingest_count, timeout=300),
        "decisions": lambda s: decisions.run(
            infra,
            s.stack,
            count=mode.decision_count,
            concurrency=mode.decision_concurrency,
            timeout=300,
        ),
    }
    units: list[Unit] = []
    for name in chosen:
        if name == "resume":
            units += [
                Unit(
                    "resume",
                    str(rate),
                    f"resume at {rate}/s",
                    lambda s, r=rate: resume.run(  # type: ignore[misc]
                        infra, s.stack, s.tap, count=count_at(r), rate=r, verb=args.verb
                    ),
                )
                for rate in rates
            ]
        elif name == "effects":
            units += [
                Unit(
                    "effects",
                    str(n),
                    f"effects with {n} clients",
                    lambda s, n=n: effects.run(  # type: ignore[misc]
                        infra, s.stack, s.tap, count=mode.effects_count, clients=n
                    ),
                )
                for n in mode.clients
            ]
        elif name in plain:
            units.append(Unit(name, None, name, plain[name]))
    if "store" in chosen:
        report.progress("store: probing operation cost by collection size")
        results["store"] = await store.run(infra, sizes=mode.store_sizes)
        write(args.out, results)
    if units:
        await with_histories(
            infra,
            env,
            sizes,
            units,
            rounds=rounds,
            warmup=warmup,
            keep_logs=args.keep_logs,
            save=lambda: write(args.out, results),
            entries=results["by_history"],
        )
    results["history_ratios"] = report.history_ratios(results)
    write(args.out, results)
    report.print_summary(results)
    print(f"\nfull figures: {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
