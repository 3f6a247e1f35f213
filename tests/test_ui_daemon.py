"""`make ui` starts the webserver AND the daemon, so the nightly schedule really fires."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.e2e

QUERY = """
{ schedulesOrError(repositorySelector: {repositoryName: "__repository__",
                                        repositoryLocationName: "pipelines.definitions"}) {
    ... on Schedules { results { name scheduleState { status } } } }
  instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str = QUERY) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())["data"]


@contextlib.contextmanager
def _dagster_dev(tmp_path: Path, **env_extra: str) -> Iterator[int]:
    """`make ui`'s command (webserver and daemon) on a free port, with a fresh DAGSTER_HOME
    holding the shipped dagster.yaml; yields the port."""
    dagster = Path(sys.executable).with_name("dagster")
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPO_ROOT / "pipelines" / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    env = {
        "PATH": f"{dagster.parent}:/usr/bin:/bin",
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": str(REPO_ROOT),
        "FUNDTRACE_MARTS_DB": str(tmp_path / "marts" / "fundtrace.duckdb"),
        **env_extra,
    }
    proc = subprocess.Popen(
        [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port
    finally:
        proc.send_signal(signal.SIGINT)  # SIGTERM can leave `dagster dev` hanging
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_dev_server_runs_scheduler_with_nightly_schedule_on(tmp_path: Path) -> None:
    with _dagster_dev(tmp_path) as port:
        data: dict = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                data = _graphql(port)
                daemons = data["instance"]["daemonHealth"]["allDaemonStatuses"]
                if any(d["daemonType"] == "SCHEDULER" and d["healthy"] for d in daemons):
                    break
            except (OSError, KeyError, TypeError):
                pass
            time.sleep(1)
        schedules = {
            s["name"]: s["scheduleState"]["status"] for s in data["schedulesOrError"]["results"]
        }
        assert schedules == {"fundtrace_nightly": "RUNNING"}
        daemons = {
            d["daemonType"]: d["healthy"]
            for d in data["instance"]["daemonHealth"]["allDaemonStatuses"]
        }
        assert daemons.get("SCHEDULER") is True


RUNS = """
{ runsOrError { ... on Runs { results { runId jobName status tags { key value } } } } }
"""


def _runs(port: int) -> list[dict]:
    runs = _graphql(port, RUNS)["runsOrError"]["results"]
    for run in runs:
        run["tags"] = {t["key"]: t["value"] for t in run["tags"]}
    return runs


def _wait_for(port: int, done: Callable[[list[dict]], bool], seconds: float) -> list[dict]:
    runs: list[dict] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            runs = _runs(port)
        except (OSError, KeyError, TypeError):
            runs = []
        if any(r["status"] == "FAILURE" for r in runs):
            break
        if done(runs):
            break
        time.sleep(2)
    return runs


@pytest.mark.skipif(
    os.environ.get("FUNDTRACE_SLOW_TESTS") != "1",
    reason="slow (13 daemon-launched runs, ~2 min): set FUNDTRACE_SLOW_TESTS=1 (make test does)",
)
def test_partitioned_raw_layer_runs_from_the_sensor_on_the_daemon(tmp_path: Path) -> None:
    """FUNDTRACE_RAW_PARTITIONS=file under `make ui`'s daemon: the sensor's first tick ingests
    each folder in one run, then runs the downstream job; a new file is then a run of its own
    partition, followed by the downstream job again."""
    raw = tmp_path / "raw"
    shutil.copytree(REPO_ROOT / "data" / "raw", raw)
    marts = tmp_path / "marts" / "fundtrace.duckdb"

    def downstream_done(count: int) -> Callable[[list[dict]], bool]:
        return lambda runs: (
            sum(
                1
                for r in runs
                if r["tags"].get("fundtrace/downstream") == "1" and r["status"] == "SUCCESS"
            )
            >= count
        )

    with _dagster_dev(
        tmp_path, FUNDTRACE_RAW_DIR=str(raw), FUNDTRACE_RAW_PARTITIONS="file"
    ) as port:
        runs = _wait_for(port, downstream_done(1), 300)
        assert not [r for r in runs if r["status"] == "FAILURE"], runs
        raw_runs = [r for r in runs if r["jobName"].startswith("raw_files_")]
        assert len(raw_runs) == 10 and all(r["status"] == "SUCCESS" for r in raw_runs)
        assert all("dagster/asset_partition_range_start" in r["tags"] for r in raw_runs)
        assert downstream_done(1)(runs), [(r["jobName"], r["status"]) for r in runs]
        assert marts.exists()

        new = "private/second_funder.csv"
        shutil.copyfile(raw / "private" / "harbourton_private_funding.csv", raw / new)
        runs = _wait_for(port, downstream_done(2), 240)
        assert not [r for r in runs if r["status"] == "FAILURE"], runs
        partition_runs = [r for r in runs if r["tags"].get("dagster/partition") == new]
        assert [r["jobName"] for r in partition_runs] == ["raw_files_private"]
        assert downstream_done(2)(runs), [(r["jobName"], r["status"]) for r in runs]
        assert len(runs) == 13  # nothing else was run: 10 folders, 1 file, 2 downstream
