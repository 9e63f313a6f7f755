"""The benchmark's CPU meter: a child metered under its own name is not counted twice."""

import os
import subprocess
import sys
import time

from bench.cpu import CpuMeter


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
