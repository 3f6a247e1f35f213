"""The run event log of the shipped instance config (pipelines/event_log.py): same files and
events as Dagster's SQLite event log, far fewer SQLite connections, commits without fsync."""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from sqlalchemy import event as sa_event

from pipelines import event_log
from pipelines.event_log import FastSqliteEventLogStorage
from pipelines.resources import REPO_ROOT


@dg.asset
def first() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"dagster/row_count": 3})


@dg.asset(deps=[first])
def second() -> None:
    pass


@dg.asset_check(asset=first, blocking=True)
def first_has_rows() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@contextmanager
def _instance(home: Path, yaml_text: str | None, monkeypatch: pytest.MonkeyPatch):
    home.mkdir()
    if yaml_text is None:
        shutil.copyfile(REPO_ROOT / "pipelines" / "dagster.yaml", home / "dagster.yaml")
    else:
        (home / "dagster.yaml").write_text(yaml_text)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        yield instance


@contextmanager
def _counting_sqlite_connects() -> Iterator[list[int]]:
    count = [0]

    def on_connect(*_: object) -> None:
        count[0] += 1

    sa_event.listen(sa.engine.Engine, "connect", on_connect)
    try:
        yield count
    finally:
        sa_event.remove(sa.engine.Engine, "connect", on_connect)


def _run(instance: dg.DagsterInstance) -> tuple[str, list[str]]:
    result = dg.materialize([first, second, first_has_rows], instance=instance)
    assert result.success
    types = [
        e.dagster_event.event_type_value
        for e in instance.all_logs(result.run_id)
        if e.dagster_event is not None
    ]
    return result.run_id, types


def test_shipped_config_selects_it_in_dagsters_usual_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _instance(tmp_path / "home", None, monkeypatch) as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, FastSqliteEventLogStorage)
        run_id, _ = _run(instance)
    assert (tmp_path / "home" / "history" / "runs" / f"{run_id}.db").is_file()
    assert (tmp_path / "home" / "history" / "runs" / "index.db").is_file()


def test_same_events_as_dagsters_sqlite_log_with_few_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = "telemetry:\n  enabled: false\n"
    with _instance(tmp_path / "plain", plain, monkeypatch) as instance:
        assert type(instance.event_log_storage) is SqliteEventLogStorage
        _run(instance)  # databases created and migrated: count the second run only
        with _counting_sqlite_connects() as plain_connects:
            _, plain_types = _run(instance)
    with _instance(tmp_path / "fast", None, monkeypatch) as instance:
        _run(instance)
        with _counting_sqlite_connects() as fast_connects:
            run_id, fast_types = _run(instance)
        # the index (asset and check events) answers as before
        latest = instance.get_latest_materialization_event(dg.AssetKey("first"))
        assert latest is not None and latest.run_id == run_id
    assert fast_types == plain_types
    assert len(fast_types) > 20
    # Dagster's log opens a connection per event (two for asset and check events); this one
    # keeps one per database file. The run storage and the rest connect as before.
    assert plain_connects[0] > 2 * len(plain_types)
    assert fast_connects[0] + 2 * len(fast_types) <= plain_connects[0]


def test_commits_are_not_fsynced_one_by_one(tmp_path: Path) -> None:
    storage = FastSqliteEventLogStorage(str(tmp_path / "runs"))
    with storage.index_connection() as conn:
        assert conn.execute(sa.text("PRAGMA synchronous")).scalar() == 1  # NORMAL
        assert str(conn.execute(sa.text("PRAGMA journal_mode")).scalar()).lower() == "wal"
    storage.dispose()


def test_only_recent_databases_stay_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_log, "MAX_OPEN_DATABASES", 3)
    storage = FastSqliteEventLogStorage(str(tmp_path / "runs"))
    for n in range(6):
        with storage.run_connection(f"run{n}") as conn:
            conn.execute(sa.text("SELECT 1"))
    assert list(storage._engines) == ["run3", "run4", "run5"]
    storage.dispose()
    assert not storage._engines


def test_wipe_closes_kept_connections_and_starts_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _instance(tmp_path / "home", None, monkeypatch) as instance:
        old_run, _ = _run(instance)
        storage = instance.event_log_storage
        assert isinstance(storage, FastSqliteEventLogStorage) and old_run in storage._engines
        storage.wipe()  # deletes the run files: no connection may stay open on them
        assert set(storage._engines) <= {"index"}  # the index is emptied, not deleted
        assert not instance.all_logs(old_run)
        run_id, types = _run(instance)
        assert "STEP_SUCCESS" in types
        latest = instance.get_latest_materialization_event(dg.AssetKey("first"))
        assert latest is not None and latest.run_id == run_id


def test_needs_a_home_or_a_base_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with pytest.raises(RuntimeError, match="DAGSTER_HOME"):
        FastSqliteEventLogStorage.from_config_value(None, {})


@dg.asset
def logs_a_warning() -> None:
    import logging

    logging.getLogger("fundtrace.memory").warning("DuckDB holds memory it cannot evict yet")


def test_our_python_log_warnings_reach_the_run_event_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _instance(tmp_path / "home", None, monkeypatch) as instance:
        result = dg.materialize([logs_a_warning], instance=instance)
        messages = [e.user_message for e in instance.all_logs(result.run_id)]
    assert "DuckDB holds memory it cannot evict yet" in messages
