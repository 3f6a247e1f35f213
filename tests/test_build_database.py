"""`BuildDatabase`: the build database stays open for the run and is released at its end."""

import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.common.tables import ROW_GROUP_SIZE, database_cursor
from pipelines.definitions import build_definitions
from pipelines.resources import (
    BuildDatabase,
    build_database,
    build_db_from_env,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def _other_config_connects(db: Path) -> bool:
    """DuckDB refuses another connection to the file while a run holds it in-process (it is
    attached to the run's instance: `open_build_database`)."""
    try:
        duckdb.connect(str(db), config={"threads": 1}).close()
    except duckdb.ResourceInUseException:
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


def test_build_database_is_never_named_like_one_of_its_schemas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB names a file's database after its name up to the first dot: a build database
    called marts.duckdb made every `marts.<table>` ambiguous and failed the marts steps."""
    monkeypatch.delenv("FUNDTRACE_BUILD_DB", raising=False)
    out = tmp_path / "out"
    monkeypatch.setenv("FUNDTRACE_MARTS_DB", str(out / "fundtrace.duckdb"))
    assert build_db_from_env() == out / ".build" / "fundtrace.duckdb"  # the default as before
    monkeypatch.setenv("FUNDTRACE_MARTS_DB", str(out / "marts.duckdb"))
    db = build_db_from_env()
    assert db == out / ".build" / "build_marts.duckdb"
    db.parent.mkdir(parents=True)
    con = duckdb.connect(str(db))
    con.execute("CREATE SCHEMA marts; CREATE TABLE marts.t AS SELECT 1 AS x")
    assert con.execute("SELECT x FROM marts.t").fetchall() == [(1,)]
    con.close()
    for name in ("Staging.db", "quality.v2.duckdb", "memory.duckdb", "temp.db"):
        monkeypatch.setenv("FUNDTRACE_BUILD_DB", str(tmp_path / name))
        with pytest.raises(ValueError, match="ambiguous"):
            build_db_from_env()
    monkeypatch.setenv("FUNDTRACE_BUILD_DB", str(tmp_path / "staging_work.duckdb"))
    assert build_db_from_env() == tmp_path / "staging_work.duckdb"


def _row_groups(con: duckdb.DuckDBPyConnection, table: str) -> int:
    sql = f"SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('{table}')"
    return con.execute(sql).fetchall()[0][0]


def test_tables_are_written_in_row_groups_of_the_build_size(tmp_path: Path) -> None:
    """The build database is attached with ROW_GROUP_SIZE, in a run's steps and outside
    a run: a table of a few of them spans as many row groups (at DuckDB's default of 122,880
    it would be one, which one thread writes and scans)."""
    db = tmp_path / "build.duckdb"
    rows = 3 * ROW_GROUP_SIZE + 5
    assert rows < 122_880

    @dg.asset
    def wide(duckdb: BuildDatabase) -> None:
        with duckdb.get_connection() as con:
            con.execute(
                f"CREATE TABLE t AS SELECT range AS i, 'x' || range AS s FROM range({rows})"
            )

    assert dg.materialize([wide], resources={"duckdb": build_database(db)}).success
    with build_database(db).get_connection() as con:
        con.execute("CREATE TABLE u AS SELECT * FROM t")
        assert (_row_groups(con, "t"), _row_groups(con, "u")) == (4, 4)
        assert con.execute("SELECT count(*), sum(i) FROM u").fetchall() == [
            (rows, rows * (rows - 1) // 2)
        ]
    # a plain connection to the file (an analyst's) reads the same tables
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM t").fetchall() == [(rows,)]


def test_cursors_of_a_step_see_the_build_database(tmp_path: Path) -> None:
    """The build database is attached to an in-memory instance: a plain cursor starts on the
    in-memory database, `database_cursor` on the connection's own."""
    db = tmp_path / "build_x.duckdb"
    with build_database(db).get_connection() as con:
        assert con.execute("SELECT current_database()").fetchall() == [("build_x",)]
        con.execute("CREATE SCHEMA staging; CREATE TABLE staging.t AS SELECT 42 AS a")
        plain = con.cursor()
        assert plain.execute("SELECT current_database()").fetchall() == [("memory",)]
        plain.close()
        cur = database_cursor(con)
        assert cur.execute("SELECT a FROM staging.t").fetchall() == [(42,)]
        cur.close()


def test_shipped_instance_config_runs_one_run_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a run holds the build database: a second run queues instead of failing on its lock
    shutil.copyfile(REPO_ROOT / "pipelines" / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None and queue.max_concurrent_runs == 1
        # queued runs start within a second of the last one, not Dagster's default 5 s
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, dg.QueuedRunCoordinator)
        assert coordinator.dequeue_interval_seconds == 1


def test_a_database_held_by_another_process_fails_the_run_clearly(tmp_path: Path) -> None:
    db = tmp_path / "build.duckdb"
    duckdb.connect(str(db)).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(db)!r}); print('held', flush=True); "
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"

        @dg.asset
        def needs_it(duckdb: BuildDatabase) -> None:
            raise AssertionError("must not run without the database")

        resource = BuildDatabase(database=str(db), lock_timeout_seconds=0.5)
        with pytest.raises(Exception) as failure:
            dg.materialize([needs_it], resources={"duckdb": resource})
        chain = []
        exc: BaseException | None = failure.value
        while exc is not None:
            chain.append(str(exc))
            exc = exc.__cause__
        assert any("in use by another process" in text for text in chain), chain
    finally:
        holder.kill()
        holder.wait()
