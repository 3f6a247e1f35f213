"""Operations: file-drop sensor, failure notification, atomic publishing under readers."""

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import dagster as dg
import duckdb
import pytest

from assets.marts.core import MONEY_FLOWS
from assets.marts.publish import publish_marts
from pipelines.sensors import (
    changed_folders,
    failure_payload,
    post_webhook,
    raw_files_sensor,
    raw_fingerprint,
    run_failure_notifier,
)

# ------------------------------------------------------------------ file-drop sensor


def test_fingerprint_and_changed_folders(tmp_path: Path) -> None:
    (tmp_path / "360giving").mkdir()
    (tmp_path / "360giving" / "a.csv").write_text("x")
    (tmp_path / ".hidden").write_text("ignored")
    first = raw_fingerprint(tmp_path)
    assert list(first) == ["360giving/a.csv"]
    (tmp_path / "council_spend").mkdir()
    (tmp_path / "council_spend" / "q1.csv").write_text("y")
    second = raw_fingerprint(tmp_path)
    assert changed_folders(first, second) == {"council_spend"}
    (tmp_path / "360giving" / "a.csv").unlink()
    assert changed_folders(second, raw_fingerprint(tmp_path)) == {"360giving"}
    assert changed_folders(second, second) == set()


def test_sensor_requests_the_changed_source_and_downstream(
    fundtrace_env: dict[str, Path],
) -> None:
    from pipelines.definitions import build_definitions

    defs = build_definitions()
    repo = defs.get_repository_def()
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(instance=instance, repository_def=repo)
        first = raw_files_sensor(ctx)
        assert isinstance(first, dg.SensorResult) and not first.run_requests
        cursor = first.cursor

        ctx = dg.build_sensor_context(instance=instance, repository_def=repo, cursor=cursor)
        unchanged = raw_files_sensor(ctx)
        assert isinstance(unchanged, dg.SkipReason)

        new_file = fundtrace_env["raw"] / "360giving" / "extra.json"
        new_file.write_text('{"grants": []}')
        ctx = dg.build_sensor_context(instance=instance, repository_def=repo, cursor=cursor)
        result = raw_files_sensor(ctx)
    assert isinstance(result, dg.SensorResult)
    assert len(result.run_requests or []) == 1
    request = (result.run_requests or [])[0]
    selected = {k.to_user_string() for k in request.asset_selection or []}
    assert "raw/raw_360giving_grants" in selected
    assert "marts/published_marts" in selected
    assert "raw/ref_ecb_rates" not in selected  # untouched sources are not re-run
    assert "360giving" in json.dumps(request.tags)


# ------------------------------------------------------------------ failure notification


class _Capture(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Capture.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    _Capture.received = []
    server = HTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


def test_failure_payload_names_run_steps_and_what_is_kept() -> None:
    payload = failure_payload("r1", "fundtrace_all", "boom", ["staging__x"])
    assert payload["run_id"] == "r1" and payload["failed_steps"] == ["staging__x"]
    assert "staging__x" in payload["text"] and "previous marts" in payload["text"]


def test_run_failure_sensor_posts_to_webhook(webhook: str, monkeypatch: pytest.MonkeyPatch) -> None:
    @dg.op
    def explode() -> None:
        raise RuntimeError("disk on fire")

    @dg.job(name="fundtrace_all")
    def failing_job() -> None:
        explode()

    monkeypatch.setenv("FUNDTRACE_ALERT_WEBHOOK_URL", webhook)
    with dg.instance_for_test() as instance:
        result = failing_job.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        failure = next(
            e for e in result.all_events if e.event_type == dg.DagsterEventType.PIPELINE_FAILURE
        )
        ctx = dg.build_run_status_sensor_context(
            sensor_name="fundtrace_run_failure_notifier",
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=run,
        ).for_run_failure()
        run_failure_notifier(ctx)
    assert len(_Capture.received) == 1
    sent = _Capture.received[0]
    assert sent["run_id"] == result.run_id
    assert sent["failed_steps"] == ["explode"]


def test_webhook_down_is_reported_not_raised(webhook: str) -> None:
    with pytest.raises(OSError):
        post_webhook("http://127.0.0.1:9/nothing-listens-here", {"text": "x"}, timeout=2)


# ------------------------------------------------------------------ atomic publishing

READER = textwrap.dedent(
    """
    import json, sys, time
    import duckdb
    path, seconds = sys.argv[1], float(sys.argv[2])
    end = time.monotonic() + seconds
    seen, errors = [], []
    while time.monotonic() < end:
        try:
            con = duckdb.connect(path, read_only=True)
            n, total = con.execute(
                "SELECT count(*), CAST(coalesce(sum(amount_original), 0) AS VARCHAR) "
                "FROM marts.money_flows").fetchone()
            tables = con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'marts'").fetchone()[0]
            con.close()
            seen.append([n, total, tables])
        except Exception as exc:  # any error is a failure of atomic publishing
            errors.append(repr(exc))
    print(json.dumps({"seen": seen, "errors": errors}))
    """
)


def _build_state(build_db: Path, rows: int) -> None:
    con = duckdb.connect(str(build_db))
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    con.execute(MONEY_FLOWS.ddl(replace=True))
    con.execute(
        f"INSERT INTO {MONEY_FLOWS.qualified} (flow_id, flow_type, from_org_id, to_org_id, "
        "stream_id, controller_org_id, control_basis, funding_level, flow_date, amount_original, "
        "currency_original, source_system, source_file, source_row, source_record_id) "
        "SELECT 'f' || i, 'grant', 'A', 'B', 'S', 'A', 'funder', 'local', DATE '2024-01-01', i, "
        "'GBP', 's', "
        f"'f', i, 'r' || i FROM range({rows}) t(i)"
    )
    con.close()


def test_readers_never_see_a_partial_mart(tmp_path: Path) -> None:
    build_a, build_b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    _build_state(build_a, 50_000)
    _build_state(build_b, 80_000)
    target = tmp_path / "published" / "fundtrace.duckdb"
    con = duckdb.connect(str(build_a))
    publish_marts(con, target, [MONEY_FLOWS])
    con.close()
    valid = set()
    for db in (build_a, build_b):
        c = duckdb.connect(str(db), read_only=True)
        n, total = c.execute(
            "SELECT count(*), CAST(sum(amount_original) AS VARCHAR) FROM marts.money_flows"
        ).fetchone()  # type: ignore[misc]
        valid.add((n, total, 1))
        c.close()

    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(target), "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    publishes = 0
    deadline = time.monotonic() + 7
    while time.monotonic() < deadline:
        for db in (build_b, build_a):
            c = duckdb.connect(str(db))
            publish_marts(c, target, [MONEY_FLOWS])
            c.close()
            publishes += 1
    out, _ = reader.communicate(timeout=60)
    report = json.loads(out)
    assert report["errors"] == [], report["errors"][:3]
    observed = {tuple(s) for s in report["seen"]}
    assert len(report["seen"]) > 20, "the reader hardly ran"
    assert observed <= valid, f"partial states seen: {observed - valid}"
    assert publishes >= 4
    print(f"reader: {len(report['seen'])} reads, states {sorted(observed)}, {publishes} publishes")
    assert not list(target.parent.glob("*.tmp*")), "temporary publish files left behind"


def test_failed_publish_keeps_previous_file(tmp_path: Path) -> None:
    build = tmp_path / "a.duckdb"
    _build_state(build, 10)
    target = tmp_path / "out" / "fundtrace.duckdb"
    con = duckdb.connect(str(build))
    publish_marts(con, target, [MONEY_FLOWS])
    before = target.read_bytes()
    con.execute("DROP TABLE marts.money_flows")  # the next publish cannot read its source
    with pytest.raises(duckdb.Error):
        publish_marts(con, target, [MONEY_FLOWS])
    con.close()
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["fundtrace.duckdb"]
