"""The faults of a chaos run: SIGKILLed services, a broker restart, a store restart, bad input.

The schedule (what, in which order, at which moment, how long a killed service stays
down) is drawn from the run's seeded generator; faults run one after another while
the load goes on; every killed service is back and healthy when `unleash` returns.
"""

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tests.support.chaos_fleet import Fleet
from tests.support.chaos_infra import PrivateInfra


@dataclass(frozen=True)
class Fault:
    at: float  # seconds from the start of the load
    action: str  # "kill", "restart" or "bad-input"
    target: str  # replica name, "kafka", "ferretdb", or the bad-input wave number
    downtime: float = 0.0  # how long a killed service stays down


@dataclass
class Journal:
    lines: list[str] = field(default_factory=list)
    kills: Counter[str] = field(default_factory=Counter)
    restarts: dict[str, float] = field(default_factory=dict)  # server -> seconds away
    started: float = field(default_factory=time.monotonic)

    def note(self, text: str) -> None:
        self.lines.append(f"{time.monotonic() - self.started:7.1f}s  {text}")


def schedule(
    rng: random.Random,
    replicas: list[str],
    *,
    window: float,
    kills_per_replica: int,
    bad_input_waves: int,
) -> list[Fault]:
    actions: list[tuple[str, str]] = [
        ("kill", r) for r in replicas for _ in range(kills_per_replica)
    ]
    actions += [("restart", "kafka"), ("restart", "ferretdb")]
    actions += [("bad-input", str(wave)) for wave in range(bad_input_waves)]
    rng.shuffle(actions)
    moments = sorted(rng.uniform(0.05 * window, 0.9 * window) for _ in actions)
    return [
        Fault(at, action, target, downtime=rng.uniform(0.2, 3.0) if action == "kill" else 0.0)
        for at, (action, target) in zip(moments, actions, strict=True)
    ]


async def unleash(
    faults: list[Fault],
    *,
    fleet: Fleet,
    infra: PrivateInfra,
    bad_input: Callable[[int], Awaitable[int]],
    journal: Journal,
) -> None:
    """Run each fault at its moment. A killed service comes back in the background, so
    faults overlap (a kill during a broker restart); a broker or store restart, and a
    second kill of the same replica, wait for what is already under way."""
    started = time.monotonic()
    revivals: dict[str, asyncio.Task[None]] = {}

    async def revive(name: str, downtime: float) -> None:
        await asyncio.sleep(downtime)
        await fleet.start(name)
        journal.note(f"{name} restarted and healthy")

    for fault in faults:
        await asyncio.sleep(max(0.0, fault.at - (time.monotonic() - started)))
        if fault.action == "kill":
            if fault.target in revivals:
                await revivals.pop(fault.target)
            fleet.kill(fault.target)
            journal.kills[fault.target] += 1
            journal.note(f"SIGKILL {fault.target}; down for {fault.downtime:.1f}s")
            revivals[fault.target] = asyncio.create_task(revive(fault.target, fault.downtime))
        elif fault.action == "restart":
            journal.note(f"restarting {fault.target}")
            away = await infra.restart(fault.target)
            journal.restarts[fault.target] = away
            journal.note(f"{fault.target} back after {away:.1f}s")
        else:
            count = await bad_input(int(fault.target))
            journal.note(f"bad input wave {fault.target}: {count} malformed messages sent")
    await asyncio.gather(*revivals.values())
