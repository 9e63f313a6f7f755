"""The benchmark's CPU meter: a child metered under its own name is not counted twice;
waiting for the processes to go quiet."""

import asyncio
import os
import signal
import subprocess
import sys
import time

from bench.cpu import CpuMeter, quiet


def test_a_metered_child_counts_under_its_own_name_not_also_under_its_parent() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        meter = CpuMeter({"service": busy.pid, "bench": os.getpid()})
        meter.start(time.perf_counter())
        time.sleep(1.0)
        used = meter.stop(time.perf_counter())
    finally:
        busy.kill()
        busy.wait()
    assert used["service"]["cores"] > 0.3, used
    # This process only sleeps: far below the child, which spun all along.
    assert used["bench"]["cores"] < 0.2, used


def test_what_the_rest_of_the_machine_used_is_reported_as_other() -> None:
    # Not this process's child (its parent exits at once): nobody named counts it.
    spawner = subprocess.run(
        ["sh", "-c", f"{sys.executable} -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        text=True,
        check=True,
    )
    unnamed = int(spawner.stdout)
    try:
        meter = CpuMeter({"bench": os.getpid()})
        meter.start(time.perf_counter())
        time.sleep(1.0)
        used = meter.stop(time.perf_counter())
    finally:
        os.kill(unnamed, signal.SIGKILL)
    # The spinning process is nobody named: it shows under `other`, about a core.
    assert used["other"]["cores"] > 0.5, used
    assert used["bench"]["cores"] < 0.2, used


def test_quiet_returns_once_the_processes_are_idle_and_gives_up_on_a_busy_one() -> None:
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        waited_idle = asyncio.run(quiet({"idle": idle.pid}, window=0.3, limit=5))
        waited_busy = asyncio.run(quiet({"busy": busy.pid}, window=0.3, limit=1.5))
    finally:
        for proc in (idle, busy):
            proc.kill()
            proc.wait()
    assert waited_idle < 1.5, waited_idle
    assert waited_busy >= 1.5, waited_busy
