"""CPU seconds per process from /proc: who was busy during a scenario."""

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
# The meter's name for the CPU time of every process it was not given.
OTHER = "other"


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def tree(pid: int) -> list[int]:
    """`pid` and its live descendants: PostgreSQL serves each connection from a child
    process of its postmaster, and those do its work."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        found.append(current := todo.pop())
        todo += children.get(current, [])
    return found


def cpu_seconds(pid: int, *, apart: frozenset[int] = frozenset()) -> float | None:
    """CPU time of `pid` and its descendants, live ones and those it has reaped; a
    descendant in `apart` (metered under its own name) is left out with its own."""
    if (fields := _stat(pid)) is None:
        return None
    # utime, stime, cutime, cstime are fields 14-17 of stat; after the ")" split 11-14.
    own = sum(int(x) for x in fields[11:15])
    skipped = {p for a in apart for p in tree(a)} if apart else set()
    for child in tree(pid)[1:]:
        if child not in skipped and (child_fields := _stat(child)):
            own += sum(int(x) for x in child_fields[11:15])
    return own / TICKS


def machine_busy_seconds() -> float:
    """CPU time every core spent working since boot, from /proc/stat: user, nice, system,
    irq and softirq (guest time is inside user and nice; steal is another guest's)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return (user + nice + system + irq + softirq) / TICKS


def pid_from_file(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass
class CpuMeter:
    """Samples named processes at start and stop; reports CPU seconds and cores used.

    Also `other`: what the rest of the machine used meanwhile (all cores' busy time less
    the processes named), so a run that shared the cores with something says so.
    """

    pids: dict[str, int]
    _start: dict[str, float] = field(default_factory=dict)
    _wall: float = 0.0
    _machine: float = 0.0

    def _read(self, pid: int) -> float | None:
        # The benchmark starts the services as its children: each is metered on its
        # own, so the benchmark's figure is its own process (and its other children).
        return cpu_seconds(pid, apart=frozenset(p for p in self.pids.values() if p != pid))

    def start(self, now: float) -> None:
        self._wall = now
        self._machine = machine_busy_seconds()
        self._start = {n: s for n, p in self.pids.items() if (s := self._read(p)) is not None}

    def stop(self, now: float) -> dict[str, dict[str, float]]:
        wall = max(now - self._wall, 1e-9)
        used: dict[str, dict[str, float]] = {}
        for name, pid in self.pids.items():
            end = self._read(pid)
            if end is None or name not in self._start:
                continue
            busy = end - self._start[name]
            used[name] = {"cpu_s": round(busy, 2), "cores": round(busy / wall, 2)}
        rest = max(
            machine_busy_seconds() - self._machine - sum(u["cpu_s"] for u in used.values()), 0.0
        )
        used[OTHER] = {"cpu_s": round(rest, 2), "cores": round(rest / wall, 2)}
        return used


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def loop_ms() -> float:
    """CPU milliseconds a fixed pure-Python loop takes (the best of three): how fast
    this machine's cores are right now. On the shared 2-core machine five times this
    loop took 243 to 410 ms within half a minute, idle: figures of two runs compare only
    with this beside them."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        sum(i * i for i in range(1_000_000))
        best = min(best, time.process_time() - started)
    return round(best * 1000, 1)


def pss_mib(pid: int) -> float | None:
    """Proportional set size: the process's fair share of memory, shared pages split."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory(pids: dict[str, int]) -> dict[str, float]:
    """PSS per named process, its descendants included (PostgreSQL's backends)."""
    out: dict[str, float] = {}
    for name, pid in pids.items():
        if (mib := pss_mib(pid)) is not None:
            out[name] = round(mib + sum(pss_mib(c) or 0.0 for c in tree(pid)[1:]), 1)
    return out


async def quiet(
    pids: dict[str, int], *, below: float = 0.15, window: float = 1.0, limit: float = 30.0
) -> float:
    """Wait until the processes together use under `below` cores over `window` seconds
    (a backlog drained), at most `limit` seconds; returns the seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        meter = CpuMeter(pids)
        meter.start(time.perf_counter())
        await asyncio.sleep(window)
        used = meter.stop(time.perf_counter())
        if sum(u["cores"] for name, u in used.items() if name != OTHER) < below:
            break
    return round(time.perf_counter() - started, 1)
