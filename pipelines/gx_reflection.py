"""Column reflection for GX's SQLAlchemy engine on DuckDB, read from DuckDB's own catalog.

Every GX suite reflects its table's columns (the `table.column_types` metric behind
`table.columns`) and asks for its primary key. duckdb-engine answers both with SQLAlchemy's
PostgreSQL queries over DuckDB's `pg_catalog` emulation: ~30 ms for the columns of one table
and ~7 ms for a primary-key query that DuckDB cannot run (GX catches the error and goes on
without a key). At scale 1 that was ~1.2 s of the 33 suites of a full build (docs/scaling.md).

`install(engine)` gives that engine's dialect (that instance only: no library is patched) a
`get_columns` that reads the same facts in one query of `duckdb_columns()`, typed by the very
`format_pg_type` macro the emulation's `format_type` uses and by the dialect's own
`_get_columns_info`, so GX gets the same column list, types, nullability and comments. The
macro is given the column's type from `duckdb_types()` by DuckDB's own type id: `format_type`
takes the id `pg_attribute` shows, which DuckDB 2.0.0 took from DuckDB's ids and 2.0.1 maps to
PostgreSQL's OIDs (`format_type(data_type_id, …)` typed a DOUBLE `int4` there). Where the
fast query could differ from the emulation (an ENUM column, a column default, a table name in
two schemas when no schema is given) it hands over to the original method. A table without a
primary key gets an empty one at once; a table with one takes the original path, as before.
`tests/test_gx_reflection.py` compares both paths on every table of a built database.
"""

from __future__ import annotations

from types import MethodType
from typing import Any

import sqlalchemy as sa

_COLUMNS_SQL = sa.text(
    """
    SELECT c.schema_name, c.table_name, c.column_name AS name,
      pg_catalog.format_pg_type(t.logical_type, t.type_name)
        || CASE WHEN c.data_type ILIKE '%decimal%'
                THEN concat('(', c.numeric_precision, ',', c.numeric_scale, ')') ELSE '' END
        AS format_type,
      c.column_default AS "default", NOT c.is_nullable AS not_null, '' AS generated,
      NULL AS identity_options, c.comment, NULL AS collation,
      t.logical_type = 'ENUM' AS is_enum
    FROM duckdb_columns() c
    LEFT JOIN duckdb_types() t ON t.type_oid = c.data_type_id
    WHERE c.database_name = current_database() AND c.table_name = :table
      AND (CAST(:schema AS VARCHAR) IS NULL OR c.schema_name = :schema)
    ORDER BY c.schema_name, c.column_index
    """
)

_PRIMARY_KEY_SQL = sa.text(
    """
    SELECT count(*) FROM duckdb_constraints()
    WHERE database_name = current_database() AND table_name = :table
      AND (CAST(:schema AS VARCHAR) IS NULL OR schema_name = :schema)
      AND constraint_type = 'PRIMARY KEY'
    """
)


def _get_columns(
    dialect: Any,
    original: Any,
    connection: sa.Connection,
    table_name: str,
    schema: str | None = None,
    **kw: Any,
) -> list[dict[str, Any]]:
    params = {"table": table_name, "schema": schema}
    rows = [dict(r) for r in connection.execute(_COLUMNS_SQL, params).mappings()]
    if (
        not rows
        or len({r["schema_name"] for r in rows}) > 1
        or any(r["is_enum"] or r["default"] is not None for r in rows)
    ):
        return original(connection, table_name, schema=schema, **kw)
    columns = dialect._get_columns_info(rows, {}, {}, schema)
    return dialect._value_or_raise(columns, table_name, schema)


def _get_pk_constraint(
    original: Any,
    connection: sa.Connection,
    table_name: str,
    schema: str | None = None,
    **kw: Any,
) -> dict[str, Any]:
    found = connection.execute(_PRIMARY_KEY_SQL, {"table": table_name, "schema": schema})
    if found.scalar_one():
        return original(connection, table_name, schema=schema, **kw)
    return {"constrained_columns": [], "name": None}


def install(engine: sa.Engine) -> None:
    """Reflect columns and primary keys of `engine` (duckdb-engine) from DuckDB's catalog."""
    dialect = engine.dialect
    if getattr(dialect, "_fundtrace_reflection", False):
        return
    columns, primary_key = dialect.get_columns, dialect.get_pk_constraint

    def get_columns(self: Any, *args: Any, **kw: Any) -> list[dict[str, Any]]:
        return _get_columns(self, columns, *args, **kw)

    def get_pk_constraint(self: Any, *args: Any, **kw: Any) -> dict[str, Any]:
        return _get_pk_constraint(primary_key, *args, **kw)

    dialect.get_columns = MethodType(get_columns, dialect)  # pyright: ignore[reportAttributeAccessIssue]
    dialect.get_pk_constraint = MethodType(get_pk_constraint, dialect)  # pyright: ignore[reportAttributeAccessIssue]
    dialect._fundtrace_reflection = True  # pyright: ignore[reportAttributeAccessIssue]
