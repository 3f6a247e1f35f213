"""`BuildDatabase`: the build database stays open for the run and is released at its end."""

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.definitions import build_definitions
from pipelines.resources import BuildDatabase, build_database

REPO_ROOT = Path(__file__).resolve().parents[1]


def _other_config_connects(db: Path) -> bool:
    """DuckDB refuses a connection with other settings while the file is open in-process."""
    try:
        duckdb.connect(str(db), config={"threads": 1}).close()
    except duckdb.ConnectionException:
        return False
    return True


def test_database_held_for_the_run_and_released_after(tmp_path: Path) -> None:
    db = tmp_path / "build.duckdb"
    seen: dict[str, bool] = {}

    @dg.asset
    def first(duckdb: BuildDatabase) -> None:
        seen["held_in_first"] = not _other_config_connects(db)
        with duckdb.get_connection() as con:
            con.execute("CREATE TABLE t AS SELECT range AS i FROM range(5)")

    @dg.asset(deps=[first])
    def second(duckdb: BuildDatabase) -> None:
        with duckdb.get_connection() as con:
            seen["rows_in_second"] = con.execute("SELECT count(*) FROM t").fetchall()[0][0] == 5

    result = dg.materialize(
        [first, second],
        resources={"duckdb": build_database(db)},
    )
    assert result.success
    assert seen == {"held_in_first": True, "rows_in_second": True}
    # released at the end of the run: another process (or setting) can open it, and the rows
    # written inside the run are in the file
    assert _other_config_connects(db)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT sum(i) FROM t").fetchall()[0][0] == 10


def test_released_when_a_step_fails(tmp_path: Path) -> None:
    db = tmp_path / "build.duckdb"

    @dg.asset
    def broken(duckdb: BuildDatabase) -> None:
        with duckdb.get_connection() as con:
            con.execute("CREATE TABLE kept AS SELECT 1 AS x")
        raise RuntimeError("boom")

    result = dg.materialize(
        [broken], resources={"duckdb": build_database(db)}, raise_on_error=False
    )
    assert not result.success
    assert _other_config_connects(db)


def test_definitions_use_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUNDTRACE_MARTS_DB", str(tmp_path / "marts.duckdb"))
    resource = (build_definitions().resources or {})["duckdb"]
    assert isinstance(resource, BuildDatabase)
    assert (resource.connection_config or {}).get("memory_limit")


def test_shipped_instance_config_runs_one_run_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a run holds the build database: a second run queues instead of failing on its lock
    shutil.copyfile(REPO_ROOT / "pipelines" / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None and queue.max_concurrent_runs == 1
