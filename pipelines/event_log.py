"""Dagster's SQLite event log with connections kept open and commits without an fsync.

Every step of a run logs ~17 events, and Dagster's `SqliteEventLogStorage` stores each one
through a new SQLAlchemy engine and SQLite connection, committed with a full fsync of the
write-ahead log; asset and check events are then copied into the index database the same way.
That cost ~1.2 ms a connection on the benchmark machine: a re-run of the benchmark's small
data (scale 0.01) in which nothing had changed opened ~1,400 of them and took 4.7 s; with this
storage it takes 2.5 s.

`FastSqliteEventLogStorage` keeps the same files in the same place (one database per run
plus `index.db`, under `$DAGSTER_HOME/history/runs/`), so the UI, the daemon and runs stored
before all read them as before. It differs in two ways:

- one engine per database file, whose pool keeps its connection open between events (the most
  recently used files only: older engines are disposed, so a webserver that reads thousands of
  runs does not hold thousands of files open);
- `PRAGMA synchronous = NORMAL`: in SQLite's WAL mode (which Dagster sets) a commit is then not
  flushed to disk on its own but with the next checkpoint. A crash of the process loses
  nothing; a crash of the operating system or a power cut can lose the last events of a run,
  never corrupt the file. Fundtrace's data lives in DuckDB, which is unaffected: the event log
  only records what the runs did.

`pipelines/dagster.yaml` selects it; `DAGSTER_HOME` folders created before keep the dagster.yaml
they were given (copy the new one over to switch).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from dagster import Field, StringSource
from dagster._core.instance.ref import _event_logs_directory
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SqliteEventLogStorage,
)
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine

# open database files kept: the running run's, the index, and a few a webserver reads
MAX_OPEN_DATABASES = 8


def default_base_dir() -> str:
    """Where Dagster's default instance keeps the run event logs of `$DAGSTER_HOME` (asked of
    Dagster, so both stay in one place)."""
    home = os.environ.get("DAGSTER_HOME", "").strip()
    if not home:
        raise RuntimeError(
            "FastSqliteEventLogStorage needs DAGSTER_HOME set, or a base_dir in its config"
        )
    return _event_logs_directory(home)


def _fast_commits(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


class FastSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` with one kept-open engine per database file and WAL commits
    that are not fsynced one by one (see the module docstring)."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        super().__init__(base_dir, inst_data)

    @classmethod
    def config_type(cls) -> Any:
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(  # pyright: ignore[reportIncompatibleMethodOverride]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any] | None
    ) -> FastSqliteEventLogStorage:
        base_dir = (config_value or {}).get("base_dir") or default_base_dir()
        return cls(base_dir=base_dir, inst_data=inst_data)

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = create_engine(
            self.conn_string_for_shard(shard),
            poolclass=sa.pool.QueuePool,
            pool_size=1,
            # the pool hands its connection to whichever thread holds _db_lock
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        sa_event.listen(engine, "connect", _fast_commits)
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        self._engines[shard] = engine
        while len(self._engines) > MAX_OPEN_DATABASES:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock, self._engine(shard).connect() as conn, conn.begin():
            yield conn

    def dispose_engines(self) -> None:
        """Close every kept connection (their files may be deleted or replaced next)."""
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self.dispose_engines()
        super().wipe()

    def upgrade(self) -> None:
        self.dispose_engines()
        super().upgrade()

    def dispose(self) -> None:
        self.dispose_engines()
        super().dispose()
