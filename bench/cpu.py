"""CPU seconds per process from /proc: who was busy during a scenario."""

import os
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # utime and stime are fields 14 and 15 of stat; after the ")" split they are 11 and 12.
    return (int(fields[11]) + int(fields[12])) / TICKS


def pid_from_file(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass
class CpuMeter:
    """Samples named processes at start and stop; reports CPU seconds and cores used."""

    pids: dict[str, int]
    _start: dict[str, float] = field(default_factory=dict)
    _wall: float = 0.0

    def start(self, now: float) -> None:
        self._wall = now
        self._start = {n: s for n, p in self.pids.items() if (s := cpu_seconds(p)) is not None}

    def stop(self, now: float) -> dict[str, dict[str, float]]:
        wall = max(now - self._wall, 1e-9)
        used: dict[str, dict[str, float]] = {}
        for name, pid in self.pids.items():
            end = cpu_seconds(pid)
            if end is None or name not in self._start:
                continue
            busy = end - self._start[name]
            used[name] = {"cpu_s": round(busy, 2), "cores": round(busy / wall, 2)}
        return used


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


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
    return {name: mib for name, pid in pids.items() if (mib := pss_mib(pid)) is not None}
