"""Where Fundtrace reads and writes, from the environment (the contract in the BRIEF).

- `FUNDTRACE_RAW_DIR`  (default `data/raw`): input files, one folder per source format.
- `FUNDTRACE_MARTS_DB` (default `data/marts/fundtrace.duckdb`): the published marts,
  replaced atomically at the end of a successful run.
- `FUNDTRACE_BUILD_DB` (default: `<marts dir>/.build/<marts name>`): the working database
  every layer is built in. It sits next to the marts so that two marts targets never share
  one build database. DuckDB names a database after its file name up to the first dot, so
  a build database named like one of its schemas (`marts.duckdb`, `staging.db`) would make
  every `marts.<table>` ambiguous: the default is then `.build/build_<marts name>`, and such
  an explicit value is refused with the reason.
- `FUNDTRACE_DUCKDB_MEMORY_LIMIT` (default `1GB`): DuckDB's memory limit on every connection
  to the build database; beyond it DuckDB spills to `<build db>.tmp/`.
- `FUNDTRACE_WORKERS` (default 2, at most the CPU count): worker processes for the OCDS, BODS,
  360Giving, council spend and Kohesio parsers and the OCDS merge.
- `FUNDTRACE_REHASH_FILES` (default 0): 1 hashes every raw file on every run instead of reusing
  a file's SHA-256 while its stat is unchanged (read where it is used:
  `assets/raw/file_hashes.py`).

`BuildDatabase` is the `duckdb` resource: a `DuckDBResource` that holds the build database
open for the whole run, so the many short connections of a run do not each reload the catalog
and checkpoint on close.

Relative values are resolved against the current directory; defaults against the repository.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field, PrivateAttr

from assets.common.tables import (
    LAYERS,
    ROW_GROUP_SIZE,
    database_cursor,
    sql_identifier,
    sql_literal,
)

# the schemas of the build database (the layers and the quality tables)
BUILD_SCHEMAS = (*LAYERS, "quality")

REPO_ROOT = Path(__file__).resolve().parent.parent


def _resolve(env_name: str, default: Path) -> Path:
    value = os.environ.get(env_name, "").strip()
    return Path(value).expanduser().resolve() if value else default.resolve()


def raw_dir_from_env() -> Path:
    return _resolve("FUNDTRACE_RAW_DIR", REPO_ROOT / "data" / "raw")


def marts_db_from_env() -> Path:
    return _resolve("FUNDTRACE_MARTS_DB", REPO_ROOT / "data" / "marts" / "fundtrace.duckdb")


# DuckDB's own catalogs: the build database is attached beside them (`open_build_database`)
DUCKDB_CATALOGS = ("memory", "system", "temp")


def catalog_name(path: Path) -> str:
    """The name DuckDB gives the database in a file at `path`: its file name up to the first
    dot."""
    return path.name.split(".", 1)[0]


def catalog_clash(path: Path) -> str | None:
    """The build schema or DuckDB catalog a DuckDB file at `path` would be named like, or
    None."""
    name = catalog_name(path).lower()
    return name if name in (*BUILD_SCHEMAS, *DUCKDB_CATALOGS) else None


def build_db_from_env(marts_db: Path | None = None) -> Path:
    marts = marts_db or marts_db_from_env()
    if os.environ.get("FUNDTRACE_BUILD_DB", "").strip():
        path = _resolve("FUNDTRACE_BUILD_DB", marts)
        clash = catalog_clash(path)
        if clash is not None:
            raise ValueError(
                f"FUNDTRACE_BUILD_DB={path}: DuckDB would name this database {clash!r}, like "
                f"the build's schema or DuckDB's catalog {clash!r}, and every "
                f"{clash}.<table> would be ambiguous; choose another file name"
            )
        return path
    name = marts.name if catalog_clash(marts) is None else f"build_{marts.name}"
    return (marts.parent / ".build" / name).resolve()


# DuckDB's own default is 80% of RAM: one staging step then reached 5.5 GiB at scale 1.
# 1GB kept the whole scale-1 build near 1.4 GiB for ~9% more CPU (docs/scaling.md).
DEFAULT_DUCKDB_MEMORY_LIMIT = "1GB"


def duckdb_config_from_env(build_db: Path) -> dict[str, str]:
    """Connection settings for the build database: bounded memory, spilling next to it."""
    limit = os.environ.get("FUNDTRACE_DUCKDB_MEMORY_LIMIT", "").strip()
    return {
        "memory_limit": limit or DEFAULT_DUCKDB_MEMORY_LIMIT,
        "temp_directory": str(build_db.with_name(build_db.name + ".tmp")),
    }


def workers_from_env() -> int:
    """`FUNDTRACE_WORKERS` (default: 2, or 1 on a one-core machine): processes for the steps
    that parallelise (parsing OCDS, BODS, 360Giving, council spend and Kohesio files, the OCDS
    merge); 1 runs them in-process."""
    value = os.environ.get("FUNDTRACE_WORKERS", "").strip()
    if not value:
        return min(2, os.cpu_count() or 1)
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"FUNDTRACE_WORKERS must be a whole number >= 1, not {value!r}")
    return int(value)


class FundtraceSettings(dg.ConfigurableResource):
    """Input folder and published marts file for this deployment."""

    raw_dir: str
    marts_db: str

    @property
    def raw_path(self) -> Path:
        return Path(self.raw_dir)

    @property
    def marts_path(self) -> Path:
        return Path(self.marts_db)

    def source_dir(self, folder: str) -> Path:
        return self.raw_path / folder


def settings_from_env() -> FundtraceSettings:
    return FundtraceSettings(raw_dir=str(raw_dir_from_env()), marts_db=str(marts_db_from_env()))


def open_build_database(path: Path | str, config: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    """A connection whose default database is the build database at `path`, attached with
    ROW_GROUP_SIZE to an in-memory instance under the name DuckDB would give it.

    A cursor of it starts on the in-memory database: take cursors with
    `assets.common.tables.database_cursor`."""
    con = duckdb.connect(":memory:", config=config)
    try:
        name = sql_identifier(catalog_name(Path(path)))
        con.execute(
            f"ATTACH {sql_literal(os.fspath(path))} AS {name} (ROW_GROUP_SIZE {ROW_GROUP_SIZE})"
        )
        con.execute(f"USE {name}")
    except BaseException:
        con.close()
        raise
    return con


class BuildDatabase(DuckDBResource):
    """`DuckDBResource` for the build database that keeps one connection open from the start
    of a run to its end.

    Every `get_connection()` of a step is then a cursor of it (~0.4 ms) instead of a
    connection that opens the file (~45 ms at scale 1, three times per skipped step), and
    closing it no longer checkpoints: DuckDB checkpoints when its WAL reaches
    `checkpoint_threshold`, and once when the run ends. With the in-process executor this
    spans the run; under another executor it spans each step process. The file is attached
    with ROW_GROUP_SIZE (`open_build_database`).
    """

    lock_timeout_seconds: float = Field(
        default=30.0,
        description="How long a run waits for another process (a run, a SQL client) to let "
        "go of the build database before it fails.",
    )
    _held: duckdb.DuckDBPyConnection | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._held = self._open()

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._held is None:  # outside a run: a connection of its own
            con = self._open()
            try:
                yield con
            finally:
                con.close()
            return
        cur = database_cursor(self._held)
        try:
            yield cur
        finally:
            cur.close()

    def _open(self) -> duckdb.DuckDBPyConnection:
        config = {"custom_user_agent": "dagster", **self.connection_config}
        deadline = time.monotonic() + self.lock_timeout_seconds
        pause = 0.1
        while True:
            try:
                return open_build_database(self.database, config)
            except duckdb.IOException as exc:  # another process holds the file's lock
                if time.monotonic() + pause > deadline:
                    raise RuntimeError(
                        f"the build database {self.database} is in use by another process "
                        f"(waited {self.lock_timeout_seconds:g} s): let the other run finish "
                        f"or close the client holding it. DuckDB said: {exc}"
                    ) from exc
                time.sleep(pause)
                pause = min(pause * 2, 2.0)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None


def build_database(build_db: Path) -> BuildDatabase:
    return BuildDatabase(database=str(build_db), connection_config=duckdb_config_from_env(build_db))
