"""The Dagster UI as an operator sees it, in headless Chromium.

Builds the demo marts into a temporary Dagster instance (so row counts and check results exist),
serves it with `dagster-webserver` on a free port, and checks that the lineage graph shows the
raw -> staging -> intermediate -> marts chain and that a mart's page shows its row count, owners,
kinds, freshness policy and GX check. Screenshots land in tests/artifacts/.
"""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = Path(os.environ.get("FUNDTRACE_CHROMIUM", "/usr/bin/chromium"))
# the machines this runs on may have no outside network: without these flags Chromium stalls
# on background connections (updates, sync, QUIC probes)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000
MART = "money_flows"
# every path from a raw 360Giving file to the money_flows mart: short enough to read
CHAIN_SELECTION = 'key:"raw/raw_360giving_grants"+ and +key:"marts/money_flows"'
LAYERS = ("raw", "staging", "intermediate", "marts")

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

if not CHROMIUM.exists():
    pytest.skip(
        f"no Chromium at {CHROMIUM}: install the Debian package `chromium` "
        "(`make browser` does it when run as root with apt-get)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api")


@dataclass(frozen=True)
class DemoUI:
    url: str
    marts_db: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_serving(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"dagster-webserver did not answer at {url} within {timeout_s:.0f}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)  # lets the webserver stop its code server
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def _serve_demo(tmp: Path, **env_extra: str) -> Iterator[DemoUI]:
    """The demo built by `make run`'s command into a fresh instance, served by
    dagster-webserver (`env_extra`: more environment for both)."""
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO_ROOT / "pipelines" / "dagster.yaml", home / "dagster.yaml")
    raw = tmp / "raw"
    shutil.copytree(REPO_ROOT / "data" / "raw", raw)
    bin_dir = Path(sys.executable).parent
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp),
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": str(REPO_ROOT),
        "FUNDTRACE_RAW_DIR": str(raw),
        "FUNDTRACE_MARTS_DB": str(tmp / "marts" / "fundtrace.duckdb"),
        **env_extra,
    }
    # the same command as `make run`, so the UI shows what an operator would see
    build = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            str(bin_dir / "dagster-webserver"),
            *("-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # one process group: nothing outlives the test
    )
    try:
        _wait_until_serving(url, proc, timeout_s=90)
        yield DemoUI(url=url, marts_db=Path(env["FUNDTRACE_MARTS_DB"]))
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def demo_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoUI]:
    """The demo build, recorded in a fresh instance, served by dagster-webserver."""
    with _serve_demo(tmp_path_factory.mktemp("ui")) as ui:
        yield ui


@pytest.fixture(scope="module")
def browser(demo_ui: DemoUI) -> Iterator["Browser"]:
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: "Browser") -> Iterator["Page"]:
    with _open_page(browser) as page:
        yield page


@contextlib.contextmanager
def _open_page(browser: "Browser") -> Iterator["Page"]:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    # no "join the community" dialog, navigation folded: more room for the graph
    context.add_init_script(
        "localStorage.setItem('communityNux', '1');"
        "localStorage.setItem('dagster-nav-collapsed', 'true');"
    )
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()


def _screenshot(page: "Page", name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path


def test_lineage_graph_shows_raw_to_marts_chain(demo_ui: DemoUI, page: "Page") -> None:
    expanded = ",".join(f"global@global:{layer}" for layer in LAYERS)
    page.set_viewport_size({"width": 1600, "height": 560})
    page.goto(
        f"{demo_ui.url}/asset-groups~{urllib.parse.quote(CHAIN_SELECTION, safe='')}/"
        f"?{urllib.parse.urlencode({'expanded': expanded})}"
    )
    # long names are shortened in the zoomed-out graph (raw_360giv…_grants)
    nodes = {
        "raw": page.get_by_text(re.compile(r"^raw_360giv")),
        "staging": page.get_by_text(re.compile(r"^stg_360giv")),
        "intermediate": page.get_by_text("int_money_flows", exact=True),
        "marts": page.get_by_text(MART, exact=True),
    }
    xs = []
    for layer, node in nodes.items():
        node.first.wait_for(state="visible")
        box = node.first.bounding_box()
        assert box is not None, f"no {layer} node in the lineage graph"
        xs.append(box["x"])
    page.wait_for_timeout(500)  # edges are drawn after the nodes
    _screenshot(page, "lineage.png")
    # left to right is upstream to downstream: the chain runs raw -> staging -> marts
    assert xs == sorted(xs), dict(zip(nodes, xs, strict=True))


def test_mart_page_shows_row_count_metadata_and_checks(demo_ui: DemoUI, page: "Page") -> None:
    con = duckdb.connect(str(demo_ui.marts_db), read_only=True)
    rows = int(con.execute(f"SELECT count(*) FROM marts.{MART}").fetchall()[0][0])
    con.close()
    assert rows > 0

    page.goto(f"{demo_ui.url}/assets/marts/{MART}")
    page.get_by_text("Row count", exact=True).wait_for()
    page.get_by_text("Fails if more than 26 hours since last materialization").wait_for()
    body = page.inner_text("body")
    assert re.search(rf"Row count\s+{rows:,}\b", body), f"row count {rows:,} not shown"
    for shown in ("data-engineering", "Great Expectations", "DuckDB", "layer: marts"):
        assert shown in body, f"{shown!r} not on the {MART} page"
    assert "Grain: one award, payment or contract" in body
    _screenshot(page, f"mart_{MART}.png")

    page.goto(f"{demo_ui.url}/assets/marts/{MART}?view=checks")
    page.get_by_text("Evaluation result").wait_for()
    checks = page.inner_text("body")
    assert f"gx_{MART}" in checks
    assert re.search(r"Evaluation result\s+Passed", checks), "the GX check did not pass"
    _screenshot(page, f"mart_{MART}_checks.png")


def test_partitioned_raw_asset_lists_its_files_as_partitions(
    browser: "Browser", tmp_path: Path
) -> None:
    """FUNDTRACE_RAW_PARTITIONS=file: a raw asset's partitions page lists the folder's files,
    each materialized by `make run`."""
    with _serve_demo(tmp_path, FUNDTRACE_RAW_PARTITIONS="file") as ui, _open_page(browser) as page:
        page.goto(f"{ui.url}/assets/raw/raw_private_funding?view=partitions")
        page.get_by_text("private/harbourton_private_funding.csv").first.wait_for()
        page.get_by_text("private/", exact=True).first.wait_for()  # the folder's own key
        page.get_by_text("Materialized (2)").first.wait_for()  # both, by make run
        assert "Missing (0)" in page.inner_text("body")
        # a file's partition: its run's metadata, the table's rows among it
        page.get_by_text("private/harbourton_private_funding.csv").first.click()
        page.get_by_text("table_row_count").first.wait_for()
        page.wait_for_timeout(500)
        _screenshot(page, "raw_partitions.png")
