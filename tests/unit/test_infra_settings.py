"""deploy/local/infra.sh: FerretDB's Go processors and SQLite's WAL checkpoint size are
checked settings, and the processors applied."""

import os
import re
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest

INFRA = Path(__file__).resolve().parents[2] / "deploy" / "local" / "infra.sh"


def infra_env(setting: str, value: str) -> subprocess.CompletedProcess[str]:
    """`infra.sh env` with one setting given: it checks every setting before anything."""
    return subprocess.run(
        ["bash", str(INFRA), "env"],
        env={**os.environ, setting: value},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("value", ["x", "0", "-1", "1.5", "99999"])
def test_a_bad_gomaxprocs_stops_the_script_naming_the_setting(value: str) -> None:
    done = infra_env("HITL_FERRETDB_GOMAXPROCS", value)
    assert done.returncode == 2
    assert f"HITL_FERRETDB_GOMAXPROCS={value}: a whole number of processors" in done.stderr


@pytest.mark.parametrize("value", ["x", "0", "-5", "2.5", "10000000", "1000;rm"])
def test_a_bad_wal_autocheckpoint_stops_the_script_naming_the_setting(value: str) -> None:
    # The value goes into FerretDB's SQLite URL: only a plain number may.
    done = infra_env("HITL_SQLITE_WAL_AUTOCHECKPOINT", value)
    assert done.returncode == 2
    assert f"HITL_SQLITE_WAL_AUTOCHECKPOINT={value}: a whole number of pages" in done.stderr


def test_a_good_wal_autocheckpoint_passes_the_check() -> None:
    done = infra_env("HITL_SQLITE_WAL_AUTOCHECKPOINT", "10000")
    assert done.returncode == 0, done.stderr
    assert "MONGODB_URL=" in done.stdout


def _ferretdb_on(port: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"/ferretdb") and f":{port}".encode() in b" ".join(argv):
            found.append(int(proc.name))
    return found


def test_the_ferretdb_the_scripts_started_runs_on_the_configured_processors() -> None:
    url = os.environ.get("MONGODB_URL", "")
    port = urlparse(url).port if url.startswith("mongodb://") else None
    pids = _ferretdb_on(port) if port else []
    if not pids:
        pytest.skip("no FerretDB started by deploy/local/infra.sh on this machine's MONGODB_URL")
    try:
        environ = Path(f"/proc/{pids[0]}/environ").read_bytes().decode(errors="replace")
    except PermissionError:
        pytest.skip("the FerretDB on MONGODB_URL runs as another user")
    values = re.findall(r"(?:^|\0)GOMAXPROCS=([^\0]*)", environ)
    if not values:
        pytest.skip("this FerretDB was started before infra.sh set GOMAXPROCS: restart it")
    cores = int(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout)
    expected = os.environ.get("HITL_FERRETDB_GOMAXPROCS") or ("1" if cores <= 2 else str(cores))
    assert values == [expected]


def _warn_if_crowded(tmp_path: Path, state_name: str) -> subprocess.CompletedProcess[str]:
    """kafka_warn_if_crowded (bound 50) on the Kafka state `tmp_path/state_name`."""
    lib = INFRA.parent / "lib"
    script = (
        "set -euo pipefail; "  # as infra.sh runs it
        f'source "{lib}/common.sh"; source "{lib}/kafka.sh"; '
        "KAFKA_CROWDED_PARTITIONS=50; kafka_warn_if_crowded; echo after"
    )
    done = subprocess.run(
        ["bash", "-c", script],
        env={
            **os.environ,
            "HITL_CACHE_DIR": str(tmp_path / "cache"),
            "HITL_STATE_DIR": str(tmp_path),
            "HITL_KAFKA_STATE_NAME": state_name,
            "HITL_KAFKA_VERSION": "x",
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "after\n"
    return done


def _crowding_warning(tmp_path: Path, partitions: int) -> str:
    """The warning for a data dir holding `partitions` partition directories."""
    data = tmp_path / "kafka" / "data"
    data.mkdir(parents=True)
    for n in range(partitions):
        (data / f"t{n:08x}.approval.requested-0").mkdir()
    (data / "__cluster_metadata-0").mkdir()  # counted too: it is a partition
    for n in range(20):  # marked for deletion by Kafka: not counted
        (data / f"tgone{n:04d}.agent.runs-0.0123abcd-delete").mkdir()
    return _warn_if_crowded(tmp_path, "kafka").stderr


def test_a_crowded_kafka_is_reported_at_start_up(tmp_path: Path) -> None:
    warning = _crowding_warning(tmp_path, 60)
    assert "WARNING: kafka holds 61 partitions (over 50)" in warning
    assert "reset` wipes its data" in warning


def test_a_kafka_with_few_partitions_says_nothing(tmp_path: Path) -> None:
    assert _crowding_warning(tmp_path, 10) == ""


def test_a_kafka_without_its_data_dir_yet_says_nothing(tmp_path: Path) -> None:
    assert "WARNING" not in _warn_if_crowded(tmp_path, "missing").stderr
