"""One source of truth for table layouts: DDL, DuckDB COMMENTs and Dagster column schemas.

Every table an asset writes is declared once as a `TableSpec`; the DDL, the `COMMENT ON`
statements and the `dagster/column_schema` metadata are all derived from it, so the docs an
analyst sees in DuckDB and in the Dagster UI cannot drift apart.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

import dagster as dg
import duckdb
import pyarrow as pa

LAYERS = ("raw", "staging", "intermediate", "marts")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str
    nullable: bool = True


@dataclass(frozen=True)
class TableSpec:
    schema: str
    name: str
    grain: str
    description: str
    columns: tuple[Column, ...]
    order_by: tuple[str, ...] = field(default_factory=tuple)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def asset_key(self) -> dg.AssetKey:
        return dg.AssetKey([self.schema, self.name])

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def doc(self) -> str:
        """Asset description: grain first, as the house style asks."""
        return f"Grain: {self.grain}.\n\n{self.description}"

    def ddl(self, *, replace: bool = False, if_not_exists: bool = False) -> str:
        verb = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE"
        if if_not_exists:
            verb = "CREATE TABLE IF NOT EXISTS"
        cols = ",\n  ".join(
            f"{c.name} {c.type}{'' if c.nullable else ' NOT NULL'}" for c in self.columns
        )
        return f"{verb} {self.qualified} (\n  {cols}\n)"

    def comments(self) -> list[tuple[str | None, str]]:
        """(column, comment) of the table (column None) and of each column."""
        return [(None, self.doc), *((c.name, c.description) for c in self.columns)]

    def comment_statements(
        self, catalog: str | None = None, only: Sequence[str | None] | None = None
    ) -> list[str]:
        """COMMENT ON statements for the table and its columns (`only`: these columns, None
        standing for the table itself)."""
        target = f"{catalog}.{self.qualified}" if catalog else self.qualified
        return [
            f"COMMENT ON TABLE {target} IS {sql_literal(text)}"
            if column is None
            else f"COMMENT ON COLUMN {target}.{column} IS {sql_literal(text)}"
            for column, text in self.comments()
            if only is None or column in only
        ]

    def column_schema(self) -> dg.TableSchema:
        return dg.TableSchema(
            columns=[
                dg.TableColumn(
                    name=c.name,
                    type=c.type,
                    description=c.description,
                    constraints=dg.TableColumnConstraints(nullable=c.nullable),
                )
                for c in self.columns
            ]
        )

    def select_list(self) -> str:
        return ", ".join(self.column_names)


# Rows per row group of the tables the build writes, in the build database and in the
# published file (both attached with it: it is not stored in a file, and a plain connect
# cannot set it). DuckDB's default, 122,880, makes every table below it one row group, which
# one thread writes and one thread scans: a core idle in each step over a source of 50-120k
# rows. Measured at scale 1 (docs/scaling.md, item 27): writing the build's 50 largest tables
# 22.0-23.8 -> 17.0 s and copying the marts 4.0-4.5 -> 3.0-3.1 s, the files 8-11% larger.
ROW_GROUP_SIZE = 32_768


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sql_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def database_cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A cursor of `con` (a connection of its own to the same database instance) whose default
    database is `con`'s. A plain cursor starts on the instance's first database, which is not
    the build database: that one is attached to an in-memory instance and made the default
    with USE (pipelines/resources.py, `open_build_database`)."""
    database = con.execute("SELECT current_database()").fetchall()[0][0]
    cur = con.cursor()
    try:
        if cur.execute("SELECT current_database()").fetchall()[0][0] != database:
            cur.execute(f"USE {sql_identifier(database)}")
    except BaseException:
        cur.close()
        raise
    return cur


def ensure_schemas(con: duckdb.DuckDBPyConnection) -> None:
    for layer in (*LAYERS, "quality"):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {layer}")


# (database file, table) -> digest of the comments this process found on the table, equal to
# its spec's: a step that ensures an existing table then skips the comment query (~3 ms, it
# lists every column of the database). Only what was read is kept, never what was written (a
# write may be rolled back), and a dropped table is seen as absent and created again.
_COMMENTS_FOUND: dict[tuple[str, str], int] = {}


def create_table(con: duckdb.DuckDBPyConnection, spec: TableSpec, *, replace: bool) -> None:
    """Create (or with `replace`, recreate) `spec`'s table with its COMMENTs. An existing
    table kept (`replace=False`) gets only the comments that differ from the spec: every
    skipped step ensures its tables, and rewriting ~15 comments cost ~7 ms and a catalog
    write each time."""
    found: tuple[str, str] | None = None
    digest = 0
    if not replace:
        digest = hash(tuple(spec.comments()))
        database, path = _own_database(con)
        if path is not None:  # in-memory databases share a name: nothing is kept for them
            found = (path, spec.qualified)
            if _COMMENTS_FOUND.get(found) == digest and _relation_columns(
                con, database, spec.qualified
            ):
                return
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {spec.schema}")
    con.execute(spec.ddl(replace=replace, if_not_exists=not replace))
    only: list[str | None] | None = None
    if not replace:
        schema, name = sql_literal(spec.schema), sql_literal(spec.name)
        where = f"database_name = current_database() AND schema_name = {schema}"
        current = dict(
            con.execute(
                f"SELECT NULL, comment FROM duckdb_tables() WHERE {where} AND table_name = {name} "
                f"UNION ALL SELECT column_name, comment FROM duckdb_columns() "
                f"WHERE {where} AND table_name = {name}"
            ).fetchall()
        )
        only = [col for col, text in spec.comments() if current.get(col) != text]
        if not only and found is not None:
            _COMMENTS_FOUND[found] = digest
    for stmt in spec.comment_statements(only=only):
        con.execute(stmt)


# Every write of a published mart (schema `marts`) gets the table's next version, so that
# publishing can bring the previous published copy up to date by difference
# (assets/marts/publish.py): a refresh that rewrote some keys records them; any other write is
# whole. A write records itself before it changes the table (or in its transaction), so a
# failure in between can only make the next publish copy more than it had to.
MART_WRITES = TableSpec(
    schema="quality",
    name="mart_writes",
    grain="one write of a mart table (schema marts), kept until a later version is published",
    description="Versions of the mart tables, for publishing by difference "
    "(assets/common/tables.py, assets/marts/publish.py).",
    columns=(
        Column("table_name", "VARCHAR", "The mart (`marts.name`).", False),
        Column("version", "BIGINT", "The table's version after this write (1, 2, ...).", False),
        Column("key_column", "VARCHAR", "The column `rewritten_keys` holds values of."),
        Column(
            "rewritten_keys",
            "VARCHAR[]",
            "Keys whose rows this write deleted and inserted again (as text); NULL: the whole "
            "table was written.",
        ),
    ),
)


def record_mart_write(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    key: str | None = None,
    keys_sql: str | None = None,
) -> None:
    """Log a write of `spec` if it is a mart: whole, or (`key`, `keys_sql`: a SELECT of the
    rewritten key values) by key."""
    if spec.schema != "marts":
        return
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {MART_WRITES.schema}")
    con.execute(MART_WRITES.ddl(if_not_exists=True))
    keys = f"(SELECT list(CAST(k AS VARCHAR)) FROM ({keys_sql}) AS t(k))" if keys_sql else "NULL"
    con.execute(
        f"INSERT INTO {MART_WRITES.qualified} "
        f"SELECT ?, coalesce(max(version), 0) + 1, ?, {keys} "
        f"FROM {MART_WRITES.qualified} WHERE table_name = ?",
        [spec.qualified, key if keys_sql else None, spec.qualified],
    )


# Every write of a *feed table* is logged too (the consumer side: assets/common/changes.py):
# the values, in the rows it deleted or inserted, of its key and of the columns its
# dependents group by (FEED_TABLES), or NULL when not known (a rebuild). Written in the
# write's transaction, or before a write outside one, as mart writes are.
TABLE_CHANGES = TableSpec(
    schema="quality",
    name="table_changes",
    grain="one write of a feed table x key column (the last KEEP_CHANGES writes of each)",
    description="The keys each write of a feed table changed, for the tables refreshed from "
    "it by difference (assets/common/tables.py, assets/common/changes.py).",
    columns=(
        Column("table_name", "VARCHAR", "The feed table (`layer.table`).", False),
        Column("seq", "BIGINT", "The write's number in that table's log (1, 2, ...).", False),
        Column("change_id", "VARCHAR", "A unique id of the write.", False),
        Column("key_column", "VARCHAR", "What `keys` holds: the key, or a column of the rows (FEED_TABLES).", False),
        Column("keys", "VARCHAR[]", "Values of key_column in the rows the write deleted or inserted (as text); NULL: not known."),
    ),
)  # fmt: skip
CHANGES = TABLE_CHANGES.qualified
# the feed tables and the columns each write logs the values of: its key, and columns a
# dependent groups by (old and new values: a flow that moves from one payer to another
# changes both payers' rows of marts.organisations)
FEED_TABLES: dict[str, tuple[str, ...]] = {
    # the OCDS staging tables read into int_procurement_awards (assets/staging/ocds_scope.py)
    **{
        f"staging.stg_ocds_{name}": ("ocid",)
        for name in ("releases", "tenders", "awards", "award_suppliers", "bids")
    },
    "intermediate.int_money_flows": ("flow_id",),
    "intermediate.int_org_identity": ("org_ref", "org_id"),
    "marts.money_flows": ("flow_id", "org_id", "stream_id"),
}
# a logged column that is not one of the table's: the columns whose values it logs
FEED_COLUMNS: dict[tuple[str, str], tuple[str, ...]] = {
    ("marts.money_flows", "org_id"): ("from_org_id", "to_org_id"),
}
KEEP_CHANGES = 32
# a write that changed more keys logs NULL: its dependents compare every key anyway
MAX_LOGGED_KEYS = 200_000


def log_change(con: duckdb.DuckDBPyConnection, table: str, keys: Mapping[str, str] | None) -> None:
    """Log a write of feed table `table`: per column of FEED_TABLES[table], a SELECT of the
    values of that column in the rows the write deleted or inserted; None when not known.
    Call it inside the write's transaction (or before a write outside one)."""
    columns = FEED_TABLES.get(table)
    if columns is None:
        raise ValueError(f"{table} is not a feed table (FEED_TABLES)")
    if keys is not None and set(keys) != set(columns):
        raise ValueError(f"{table} logs the values of {columns}, not of {sorted(keys)}")
    create_table(con, TABLE_CHANGES, replace=False)
    seq = scalar_int(
        con, f"SELECT coalesce(max(seq), 0) + 1 FROM {CHANGES} WHERE table_name = ?", [table]
    )
    change_id = str(uuid.uuid4())
    for column in columns:
        values = "NULL"
        if keys is not None:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _logged_keys AS "
                f"SELECT DISTINCT CAST(k AS VARCHAR) AS k FROM ({keys[column]}) AS t(k) "
                "WHERE k IS NOT NULL"
            )
            if scalar_int(con, "SELECT count(*) FROM _logged_keys") <= MAX_LOGGED_KEYS:
                values = "(SELECT coalesce(list(k ORDER BY k), []) FROM _logged_keys)"
        con.execute(
            f"INSERT INTO {CHANGES} SELECT ?, ?, ?, ?, {values}", [table, seq, change_id, column]
        )
    con.execute("DROP TABLE IF EXISTS _logged_keys")
    con.execute(
        f"DELETE FROM {CHANGES} WHERE table_name = ? AND seq <= ?", [table, seq - KEEP_CHANGES]
    )


def _logged_values(spec: TableSpec, key: str, column: str, where: str) -> str:
    """SQL of the values `spec`'s rows `where` hold for a logged column of FEED_TABLES: the
    key itself, or the values of the spec's columns it stands for (FEED_COLUMNS)."""
    sources = FEED_COLUMNS.get((spec.qualified, column), (column,)) if column != key else (key,)
    return " UNION ".join(f"SELECT {c} FROM {spec.qualified} WHERE {where}" for c in sources)


def rebuild_table(con: duckdb.DuckDBPyConnection, spec: TableSpec, select_sql: str) -> int:
    """Replace `spec`'s table with the rows of `select_sql` (its columns in spec order).

    Rows are written in `spec.order_by` order so that two builds of the same input are
    identical row for row.
    """
    record_mart_write(con, spec)
    if spec.qualified in FEED_TABLES:
        log_change(con, spec.qualified, None)
    create_table(con, spec, replace=True)
    order = f" ORDER BY {', '.join(spec.order_by)}" if spec.order_by else ""
    con.execute(
        f"INSERT INTO {spec.qualified} ({spec.select_list()}) "
        f"SELECT {spec.select_list()} FROM ({select_sql}) AS q{order}"
    )
    return row_count(con, spec)


# above this share of changed keys refresh_table rewrites the whole table (cheaper)
REFRESH_MAX_SHARE = 0.5
# metadata flag of a build that wrote exactly the rows its table held: dependents need not
# rebuild (assets/common/fingerprint.py, "version")
OUTPUT_UNCHANGED = "fundtrace/output_unchanged"


@dataclass(frozen=True)
class Refresh:
    """What refresh_table did: the table's rows, the keys rewritten, and whether it was all."""

    rows: int
    keys_rewritten: int
    keys: int
    full: bool

    def summary(self) -> str:
        if self.full:
            return f"all {self.rows:,} rows written"
        return f"{self.keys_rewritten:,} of {self.keys:,} keys rewritten, the others kept"

    def metadata(self) -> dict[str, object]:
        return partial_build_metadata(self.summary(), not self.full and not self.keys_rewritten)


def partial_build_metadata(summary: str, unchanged: bool) -> dict[str, object]:
    """For materialize_result of a table rebuilt in part: what was written, and whether its
    rows are as they were (OUTPUT_UNCHANGED)."""
    return {"build": summary, OUTPUT_UNCHANGED: unchanged}


def stored_rows_sql(spec: TableSpec, select_sql: str) -> str:
    """The rows of `select_sql` as `spec`'s table stores them: hash() of a DOUBLE and of the
    DECIMAL it is inserted as differ, so values are compared after the cast."""
    typed = ", ".join(f"CAST({c.name} AS {c.type}) AS {c.name}" for c in spec.columns)
    return f"SELECT {typed} FROM ({select_sql}) AS q"


@dataclass(frozen=True)
class KeyDiff:
    """What diff_keys found: keys that differ, keys of the new rows, a NULL key among them."""

    changed: int
    keys: int
    null_key: bool

    @property
    def rewrite_whole(self) -> bool:
        """A NULL key matches no key, and above REFRESH_MAX_SHARE a whole write is cheaper."""
        return self.null_key or self.changed > REFRESH_MAX_SHARE * max(self.keys, 1)


CHANGED_KEYS = "_changed_keys"  # the TEMP table diff_keys leaves for rewrite_changed_keys


def diff_keys(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    new_sql: str,
    key: str,
    where: str | None = None,
) -> KeyDiff:
    """TEMP CHANGED_KEYS (column k): the keys whose rows differ between `new_sql` (rows as the
    table stores them: stored_rows_sql) and `spec`'s table (its rows `where`, if given), an
    appeared or gone key included. Per key, the row count and the sum of the row hashes are
    compared: no stored state, the table is its own."""
    cols = spec.select_list()
    only = f" WHERE {where}" if where else ""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _new_keys AS SELECT {key} AS k, count(*) AS n, "
        f"sum(hash({cols})) AS h FROM ({new_sql}) AS q GROUP BY ALL"
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {CHANGED_KEYS} AS
        SELECT k FROM _new_keys a FULL JOIN (
          SELECT {key} AS k, count(*) AS n, sum(hash({cols})) AS h
          FROM {spec.qualified}{only} GROUP BY ALL) b USING (k)
        WHERE a.n IS DISTINCT FROM b.n OR a.h IS DISTINCT FROM b.h"""
    )
    keys = scalar_int(con, "SELECT count(*) FROM _new_keys")
    con.execute("DROP TABLE _new_keys")
    changed, null_key = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE k IS NULL) FROM {CHANGED_KEYS}"
    ).fetchall()[0]
    return KeyDiff(int(changed), keys, bool(null_key))


def rewrite_changed_keys(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    rows_sql: str,
    key: str,
    where: str | None = None,
    log: bool = True,
) -> None:
    """Delete the table's rows (those `where`, if given) of the keys in CHANGED_KEYS and
    insert `rows_sql`'s rows of those keys, in `order_by` order, after the others. A feed
    table logs the change (`log_change`): the logged columns' values in the rows deleted and
    in the rows inserted (`log=False`: the caller logs its whole write once). Run it inside
    a transaction."""
    cols = spec.select_list()
    changed = f"(SELECT k FROM {CHANGED_KEYS})"
    only = f"({where}) AND " if where else ""
    order = f" ORDER BY {', '.join(spec.order_by)}" if spec.order_by else ""
    logged = FEED_TABLES.get(spec.qualified, ()) if log else ()
    rewritten = f"{only}{key} IN {changed}"
    for i, column in enumerate(logged):
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _old_values_{i} AS "
            f"{_logged_values(spec, key, column, rewritten)}"
        )
    con.execute(f"DELETE FROM {spec.qualified} WHERE {rewritten}")
    con.execute(
        f"INSERT INTO {spec.qualified} ({cols}) SELECT {cols} FROM ({rows_sql}) AS q "
        f"WHERE q.{key} IN {changed}{order}"
    )
    if logged:
        log_change(
            con,
            spec.qualified,
            {
                column: f"SELECT * FROM _old_values_{i} UNION "
                f"{_logged_values(spec, key, column, rewritten)}"
                for i, column in enumerate(logged)
            },
        )
        con.execute("; ".join(f"DROP TABLE _old_values_{i}" for i in range(len(logged))))


def write_changed_keys(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, rows_sql: str, key: str
) -> None:
    """rewrite_changed_keys and the mart write it makes, in one transaction."""
    with transaction(con):
        rewrite_changed_keys(con, spec, rows_sql, key)
        record_mart_write(con, spec, key, f"SELECT k FROM {CHANGED_KEYS}")


def refresh_table(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, select_sql: str, key: str
) -> Refresh:
    """Make `spec`'s table hold exactly the rows of `select_sql`, writing only the rows of
    the keys (`key`, a column) whose rows differ (diff_keys, rewrite_changed_keys).

    Writing a wide table costs far more than computing it, so a small change (a new file)
    saves most of a rebuild. Without the table, with other columns, when more than
    REFRESH_MAX_SHARE of the keys differ or a NULL key does (NULL matches no key), the table
    is rebuilt. Rewritten keys' rows sit at the end of the table, not in `order_by` order.
    """
    if table_columns(con, spec.qualified) != spec.column_names:
        n = rebuild_table(con, spec, select_sql)
        return Refresh(n, n, n, True)
    try:
        diff = diff_keys(con, spec, stored_rows_sql(spec, select_sql), key)
        if diff.rewrite_whole:
            n = rebuild_table(con, spec, select_sql)
            return Refresh(n, diff.keys, diff.keys, True)
        if diff.changed:
            write_changed_keys(con, spec, select_sql, key)
        return Refresh(row_count(con, spec), diff.changed, diff.keys, False)
    finally:
        con.execute(f"DROP TABLE IF EXISTS _new_keys; DROP TABLE IF EXISTS {CHANGED_KEYS}")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN, and COMMIT when the block ends; ROLLBACK and re-raise when it (or the COMMIT)
    raises, also on KeyboardInterrupt and SystemExit: nothing is left half written."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def scalar_int(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] = ()) -> int:
    """First value of a one-row query as an int (0 for no row or NULL).

    The one place counts are read: fetchall, because DuckDB 2.0 leaves a fetchone() result
    open, which breaks a later register() or transaction on the same connection.
    """
    rows = con.execute(sql, list(params)).fetchall()
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def row_count(con: duckdb.DuckDBPyConnection, spec: TableSpec) -> int:
    return scalar_int(con, f"SELECT count(*) FROM {spec.qualified}")


def _own_database(con: duckdb.DuckDBPyConnection) -> tuple[str, str | None]:
    """(name, file path or None when in memory) of the connection's own database."""
    rows = con.execute(
        "SELECT database_name, path FROM duckdb_databases() "
        "WHERE database_name = current_database()"
    ).fetchall()
    return rows[0][0], rows[0][1]


def _relation_columns(
    con: duckdb.DuckDBPyConnection, database: str, table: str
) -> list[str] | None:
    schema, _, name = table.partition(".")
    try:
        # binding a relation fails without aborting the caller's transaction (a failed query
        # would abort it); the full name never resolves to a temp table or another database
        return list(con.table(".".join(map(sql_identifier, (database, schema, name)))).columns)
    except duckdb.CatalogException:
        return None


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str] | None:
    """Column names of `schema.table` (a table or view) in the connection's own database;
    None when absent."""
    # a relation bound by name: ~0.15 ms, against ~2 ms for duckdb_columns(), which lists
    # every column of the database, and every skipped asset asks several times
    database = con.execute("SELECT current_database()").fetchall()[0][0]
    return _relation_columns(con, database, table)


def check_columns_match(con: duckdb.DuckDBPyConnection, spec: TableSpec) -> None:
    """Fail loudly when the table in the database no longer matches its spec."""
    actual = table_columns(con, spec.qualified) or []
    if actual != spec.column_names:
        raise RuntimeError(
            f"{spec.qualified}: columns {actual} differ from its TableSpec {spec.column_names}"
        )


def materialize_result(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    extra: dict[str, object] | None = None,
    preview_rows: int = 0,
) -> dg.MaterializeResult:
    """Standard metadata for an asset that wrote `spec`: row count, column schema, table name."""
    metadata: dict[str, object] = {
        "dagster/row_count": row_count(con, spec),
        "dagster/column_schema": spec.column_schema(),
        "dagster/table_name": spec.qualified,
        "grain": spec.grain,
    }
    if preview_rows:
        metadata["preview"] = dg.MetadataValue.md(markdown_preview(con, spec, preview_rows))
    # imported here: the lineage declarations live with the marts, above this common layer
    from assets.marts.column_lineage import column_lineage

    lineage = column_lineage(spec.qualified)
    if lineage is not None:
        metadata["dagster/column_lineage"] = lineage
    if extra:
        metadata.update(extra)
    return dg.MaterializeResult(metadata=metadata)  # type: ignore[arg-type]


def markdown_preview(con: duckdb.DuckDBPyConnection, spec: TableSpec, limit: int) -> str:
    order = f" ORDER BY {', '.join(spec.order_by)}" if spec.order_by else ""
    cur = con.execute(f"SELECT * FROM {spec.qualified}{order} LIMIT {int(limit)}")
    names = [d[0] for d in cur.description or []]
    rows = cur.fetchall()
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for r in rows:
        cells = ["" if v is None else str(v).replace("|", "\\|")[:60] for v in r]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def specs_by_key(specs: Sequence[TableSpec]) -> dict[str, TableSpec]:
    return {s.qualified: s for s in specs}


@contextmanager
def registered_table(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[None]:
    """`table` visible to SQL as `name` while the block runs (unregistered even on error)."""
    con.register(name, table)
    try:
        yield
    finally:
        con.unregister(name)


def registered(
    con: duckdb.DuckDBPyConnection, name: str, columns: dict[str, list[str]]
) -> AbstractContextManager[None]:
    """String columns visible to SQL as `name` while the block runs."""
    return registered_table(
        con, name, pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()})
    )
