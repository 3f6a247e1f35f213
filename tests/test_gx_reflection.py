"""GX's column reflection read from DuckDB's catalog (pipelines/gx_reflection.py) gives what
duckdb-engine's pg_catalog queries give, on every table of a built database and on the cases
the fast path hands back to them."""

import shutil
import warnings
from pathlib import Path
from typing import Any

import duckdb
import duckdb_engine
import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from pipelines import gx_reflection, quality


def _engine(con: duckdb.DuckDBPyConnection, fast: bool) -> sa.Engine:
    engine = sa.create_engine(
        "duckdb:///:memory:", creator=lambda: duckdb_engine.ConnectionWrapper(con.cursor())
    )
    if fast:
        gx_reflection.install(engine)
    return engine


def _columns(engine: sa.Engine, table: str, schema: str | None) -> list[tuple[Any, ...]]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Did not recognize type '")
        cols = sa.inspect(engine).get_columns(table, schema=schema)
    return [
        (c["name"], repr(c["type"]), c["nullable"], c["default"], c.get("autoincrement"),
         c.get("comment"), c.get("computed"), c.get("identity"))
        for c in cols
    ]  # fmt: skip


def _primary_key(engine: sa.Engine, table: str, schema: str | None) -> Any:
    try:
        return sa.inspect(engine).get_pk_constraint(table, schema=schema)
    except sa_exc.ProgrammingError as exc:  # DuckDB cannot run the pg_constraint query
        return type(exc).__name__


def test_same_columns_as_duckdb_engine_on_every_built_table(
    demo_build: dict[str, Path], tmp_path: Path
) -> None:
    db = tmp_path / "build.duckdb"
    shutil.copyfile(demo_build["build"], db)
    con = duckdb.connect(str(db), read_only=True)
    try:
        slow, fast = _engine(con, fast=False), _engine(con, fast=True)
        tables = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() "
            "WHERE database_name = current_database() ORDER BY ALL"
        ).fetchall()
        types = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT data_type FROM duckdb_columns() "
                "WHERE database_name = current_database()"
            ).fetchall()
        }
        assert len(tables) > 40 and {"VARCHAR", "BIGINT", "DATE", "TIMESTAMP", "BOOLEAN"} <= types
        assert any(t.startswith("DECIMAL") for t in types) and "VARCHAR[]" in types
        for schema, table in tables:
            for named in (schema, None):
                expected = _columns(slow, table, named)
                assert expected, (schema, table)
                assert _columns(fast, table, named) == expected, (schema, table, named)
            assert _primary_key(slow, table, schema) == "ProgrammingError"
            assert _primary_key(fast, table, schema) == {"constrained_columns": [], "name": None}
    finally:
        con.close()


def test_what_the_fast_query_could_get_wrong_takes_the_original_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    con = duckdb.connect()
    con.execute("CREATE TYPE mood AS ENUM ('happy', 'sad')")
    con.execute("CREATE SCHEMA a")
    con.execute("CREATE SCHEMA b")
    con.execute("CREATE TABLE a.with_enum (m mood, n INTEGER)")
    con.execute("CREATE TABLE a.with_default (n INTEGER DEFAULT 7, s VARCHAR NOT NULL)")
    con.execute("CREATE TABLE a.twice (x VARCHAR)")
    con.execute("CREATE TABLE b.twice (y BIGINT)")
    con.execute("CREATE TABLE a.plain (x VARCHAR, d DECIMAL(9, 2))")
    con.execute("CREATE TABLE a.keyed (id INTEGER PRIMARY KEY, x VARCHAR)")
    cases = [("with_enum", "a"), ("with_default", "a"), ("twice", None), ("plain", "a"),
             ("twice", "b"), ("keyed", "a")]  # fmt: skip
    slow = _engine(con, fast=False)
    expected = {case: (_columns(slow, *case), _primary_key(slow, *case)) for case in cases}
    assert expected[("keyed", "a")][1] == "ProgrammingError"  # as for a table without a key
    dialect_class = type(slow.dialect)
    original = dialect_class.get_columns
    handed_back: list[tuple[str, str | None]] = []

    def counting(self: Any, connection: Any, table: str, schema: str | None = None, **kw: Any):
        handed_back.append((table, schema))
        return original(self, connection, table, schema=schema, **kw)

    monkeypatch.setattr(dialect_class, "get_columns", counting)
    fast = _engine(con, fast=True)  # its original method is now the counting one
    for case in cases:
        columns, key = expected[case]
        assert _columns(fast, *case) == columns, case
        # no key: an empty one at once; a key: the original query (which DuckDB fails)
        no_key = {"constrained_columns": [], "name": None}
        assert _primary_key(fast, *case) == (key if case == ("keyed", "a") else no_key), case
    assert handed_back == [("with_enum", "a"), ("with_default", "a"), ("twice", None)]
    with pytest.raises(sa_exc.NoSuchTableError):
        sa.inspect(fast).get_columns("missing", schema="a")
    con.close()


def test_run_suite_reflects_through_duckdbs_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA staging")
    con.execute("CREATE TABLE staging.t AS SELECT range AS id, 'x' AS name FROM range(5)")
    calls: list[str] = []
    fast_columns = gx_reflection._get_columns

    def recording(dialect: Any, original: Any, connection: Any, table: str, *a: Any, **kw: Any):
        calls.append(table)
        return fast_columns(dialect, original, connection, table, *a, **kw)

    monkeypatch.setattr(gx_reflection, "_get_columns", recording)
    suite = {
        "name": "staging__t",
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "nope"}},
        ],
    }
    outcome = quality.run_suite(con, "staging", "t", suite)
    assert calls and set(calls) == {"t"}
    first, missing = outcome.expectations
    assert first.success and not first.errored
    assert missing.errored  # a missing column is still an error, never a pass
    con.close()
