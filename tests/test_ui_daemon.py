"""`make ui` starts the webserver AND the daemon, so the nightly schedule really fires."""

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
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


def _graphql(port: int) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": QUERY}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())["data"]


def test_dev_server_runs_scheduler_with_nightly_schedule_on(tmp_path: Path) -> None:
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
    }
    # the same command `make ui` runs, on a free port
    proc = subprocess.Popen(
        [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
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
    finally:
        proc.send_signal(signal.SIGINT)  # SIGTERM can leave `dagster dev` hanging
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
