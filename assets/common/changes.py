"""Change feeds: the keys a table's writes changed, so that a table built from it can compare
only the rows of those keys instead of all of them.

`refresh_table` keeps a table equal to its SELECT by comparing every key's rows (the SELECT
evaluated whole, and the stored rows hashed whole): at scale 1, 0.65-0.8 s for the 1.2M money
flows, of which a new file changes ~1,500. A *feed table* logs each write in
`quality.table_changes`, in the write's own transaction: the keys whose rows it deleted or
inserted, or NULL when it does not know them (a rebuild, a slice rewritten whole, more than
MAX_LOGGED_KEYS). A dependent names its feeds and how a feed's changed keys map to its own
keys (`Feed.keys_sql`: a flow whose payer's identity changed), and records, after each
refresh, the last change of each feed it has taken in (`quality.change_positions`).

The next refresh compares only the dependent's keys that the feeds' changes since then map to
(`refresh_by_feeds`). It compares every key instead, as `refresh_table` does, when that is not
known for certain:
- no position yet, or the dependent's SELECT, the code or an input that is not a feed changed
  since (the position's `context`);
- the change the position names is no longer logged (the log keeps KEEP_CHANGES writes of a
  table), or a change since has no keys;
- the feed's table was rebuilt since without a logged change: its stored version
  (`fingerprint.versioned_entries`) differs from the one the position took in while no change
  is logged after it. A write that does not log itself is so never taken as "nothing changed".

Positions are written after the dependent's rows are: a failure in between leaves an older
position, whose changes are a superset of those still to take in. The result is what
`refresh_table` writes, except for the physical order of the rewritten rows.
"""

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import duckdb

from assets.common.fingerprint import input_fingerprint, versioned_entries
from assets.common.tables import (
    CHANGED_KEYS,
    Column,
    Refresh,
    TableSpec,
    create_table,
    diff_keys,
    partial_build_metadata,
    rebuild_table,
    record_mart_write,
    rewrite_changed_keys,
    row_count,
    scalar_int,
    sql_literal,
    stored_rows_sql,
    table_columns,
)

TABLE_CHANGES = TableSpec(
    schema="quality",
    name="table_changes",
    grain="one write of a feed table x key column (the last KEEP_CHANGES writes of each)",
    description="The keys each write of a feed table changed, for the tables refreshed from "
    "it by difference (assets/common/changes.py).",
    columns=(
        Column("table_name", "VARCHAR", "The feed table (`layer.table`).", False),
        Column("seq", "BIGINT", "The write's number in that table's log (1, 2, ...).", False),
        Column("change_id", "VARCHAR", "A unique id of the write.", False),
        Column("key_column", "VARCHAR", "What `keys` holds: the key, or a column of the rows (FEED_TABLES).", False),
        Column("keys", "VARCHAR[]", "Values of key_column in the rows the write deleted or inserted (as text); NULL: not known."),
    ),
)  # fmt: skip
CHANGE_POSITIONS = TableSpec(
    schema="quality",
    name="change_positions",
    grain="one table refreshed from a feed x that feed",
    description="The last change of the feed the table's rows take in, the feed's version "
    "then, and the fingerprint of everything else the table was refreshed from "
    "(assets/common/changes.py).",
    columns=(
        Column("table_name", "VARCHAR", "The dependent table (`layer.table`).", False),
        Column("feed", "VARCHAR", "The feed table it reads.", False),
        Column("change_id", "VARCHAR", "The feed's last logged write then; NULL: none logged."),
        Column("feed_version", "VARCHAR", "The feed table's stored version then; NULL: none."),
        Column("context", "VARCHAR", "Fingerprint of the SELECT, the code and the other inputs.", False),
    ),
)  # fmt: skip
CHANGES = TABLE_CHANGES.qualified
POSITIONS = CHANGE_POSITIONS.qualified

# the tables whose writes are logged, and the columns each write logs the values of: its key,
# and columns a dependent groups by (old and new values: a flow that moves from one payer to
# another changes both payers' rows of marts.organisations)
FEED_TABLES: dict[str, tuple[str, ...]] = {
    "intermediate.int_money_flows": ("flow_id",),
    "intermediate.int_org_identity": ("org_ref", "org_id"),
    "marts.money_flows": ("flow_id", "org_id", "stream_id"),
}
KEEP_CHANGES = 32
# a write that changed more keys logs NULL: its dependents compare every key anyway
MAX_LOGGED_KEYS = 200_000
SCOPE_KEYS = "_scope_keys"  # TEMP table (k): the dependent's keys a refresh compares
_SCOPED_ROWS = "_scoped_rows"  # TEMP table: the SELECT's rows of those keys


def ensure_change_tables(con: duckdb.DuckDBPyConnection) -> None:
    create_table(con, TABLE_CHANGES, replace=False)
    create_table(con, CHANGE_POSITIONS, replace=False)


def log_change(con: duckdb.DuckDBPyConnection, table: str, keys: Mapping[str, str] | None) -> None:
    """Log a write of feed table `table`: per column of FEED_TABLES[table], a SELECT of the
    values of that column in the rows the write deleted or inserted; None when not known.
    Call it inside the write's transaction (the log tables must exist: ensure_change_tables,
    before BEGIN)."""
    columns = FEED_TABLES.get(table)
    if columns is None:
        raise ValueError(f"{table} is not a feed table (FEED_TABLES)")
    if keys is not None and set(keys) != set(columns):
        raise ValueError(f"{table} logs the values of {columns}, not of {sorted(keys)}")
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


@dataclass(frozen=True)
class Feed:
    """A feed table a dependent reads, the column of its log it reads (FEED_TABLES), and
    `keys_sql(changed)`: SQL of the dependent's keys whose rows depend on the feed rows with
    the values in `changed` (a relation with column k, as text), old and new rows alike."""

    table: str
    key_column: str
    keys_sql: Callable[[str], str]


@dataclass(frozen=True)
class _Position:
    change_id: str | None
    version: str | None


def _latest(con: duckdb.DuckDBPyConnection, feeds: Sequence[Feed]) -> dict[str, _Position]:
    """Each feed's last logged write and stored version, now."""
    tables = sorted({f.table for f in feeds})
    last = dict(
        con.execute(
            f"SELECT table_name, arg_max(change_id, seq) FROM {CHANGES} "
            "WHERE list_contains(?, table_name) GROUP BY table_name",
            [tables],
        ).fetchall()
    )
    versions = versioned_entries(con, tables)
    return {t: _Position(last.get(t), versions[t][0] if t in versions else None) for t in tables}


def _scope(
    con: duckdb.DuckDBPyConnection,
    table: str,
    feeds: Sequence[Feed],
    context: str,
    now: dict[str, _Position],
) -> str | None:
    """Create TEMP SCOPE_KEYS: `table`'s keys the feeds' changes since its positions map to.
    None (nothing created) with the reason when that is not known for certain."""
    stored = {
        feed: (change_id, version, ctx)
        for feed, change_id, version, ctx in con.execute(
            f"SELECT feed, change_id, feed_version, context FROM {POSITIONS} WHERE table_name = ?",
            [table],
        ).fetchall()
    }
    if set(stored) != set(now):
        return "no position for every feed"
    if any(ctx != context for _, _, ctx in stored.values()):
        return "its SELECT, the code or an input that is no feed changed"
    after: dict[str, int] = {}
    for feed, (change_id, version, _) in stored.items():
        if change_id is None:
            after[feed] = 0
            first = scalar_int(
                con, f"SELECT count(*) FROM {CHANGES} WHERE table_name = ? AND seq = 1", [feed]
            )
            if not first and now[feed].change_id is not None:
                return f"{feed}: its first changes are no longer logged"
        else:
            found = con.execute(
                f"SELECT max(seq) FROM {CHANGES} WHERE table_name = ? AND change_id = ?",
                [feed, change_id],
            ).fetchall()
            if found[0][0] is None:
                return f"{feed}: the change last taken in is no longer logged"
            after[feed] = int(found[0][0])
        writes = scalar_int(
            con,
            f"SELECT count(DISTINCT seq) FROM {CHANGES} WHERE table_name = ? AND seq > ?",
            [feed, after[feed]],
        )
        if writes == 0 and now[feed].version != version:
            return f"{feed}: written since without a logged change"
    parts = []
    for i, feed in enumerate(feeds):
        since = (
            f"FROM {CHANGES} WHERE table_name = {sql_literal(feed.table)} "
            f"AND seq > {after[feed.table]}"
        )
        writes, known = con.execute(
            f"SELECT count(DISTINCT seq), count(keys) FILTER "
            f"(WHERE key_column = {sql_literal(feed.key_column)}) {since}"
        ).fetchall()[0]
        if known != writes:
            return f"{feed.table}: a change since has no {feed.key_column} values"
        changed = f"_feed_keys_{i}"
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {changed} AS SELECT DISTINCT unnest(keys) AS k {since} "
            f"AND key_column = {sql_literal(feed.key_column)}"
        )
        parts.append(feed.keys_sql(changed))
    union = " UNION ".join(f"SELECT * FROM ({p})" for p in parts)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {SCOPE_KEYS} AS SELECT DISTINCT k FROM ({union}) AS u(k)"
    )
    for i in range(len(feeds)):
        con.execute(f"DROP TABLE IF EXISTS _feed_keys_{i}")
    return None


def _record(
    con: duckdb.DuckDBPyConnection,
    table: str,
    context: str,
    now: dict[str, _Position],
) -> None:
    con.execute("BEGIN")
    try:
        con.execute(f"DELETE FROM {POSITIONS} WHERE table_name = ?", [table])
        con.executemany(
            f"INSERT INTO {POSITIONS} VALUES (?, ?, ?, ?, ?)",
            [[table, feed, p.change_id, p.version, context] for feed, p in now.items()],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


@dataclass(frozen=True)
class FeedRefresh:
    """What refresh_by_feeds did: the refresh, and the keys it compared (None: every key,
    with the reason)."""

    refresh: Refresh
    compared: int | None
    why_all: str | None = None

    def summary(self) -> str:
        if self.compared is None:
            return f"{self.refresh.summary()} (every key compared: {self.why_all})"
        return (
            f"{self.refresh.keys_rewritten:,} of the {self.compared:,} keys the feeds changed "
            f"rewritten, the others of its {self.refresh.rows:,} rows kept"
        )

    def metadata(self) -> dict[str, object]:
        unchanged = not self.refresh.full and not self.refresh.keys_rewritten
        return partial_build_metadata(self.summary(), unchanged)


def _logged_values(spec: TableSpec, key: str, column: str, where: str) -> str:
    """SQL of the values `spec`'s rows `where` hold for a logged column of FEED_TABLES: the
    key itself, or the values of the spec's columns it stands for (FEED_COLUMNS)."""
    sources = FEED_COLUMNS.get((spec.qualified, column), (column,)) if column != key else (key,)
    return " UNION ".join(f"SELECT {c} FROM {spec.qualified} WHERE {where}" for c in sources)


# a logged column that is not one of the table's: the columns whose values it logs
FEED_COLUMNS: dict[tuple[str, str], tuple[str, ...]] = {
    ("marts.money_flows", "org_id"): ("from_org_id", "to_org_id"),
}


def _rewrite(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, rows_sql: str, key: str, feed: bool
) -> None:
    """rewrite_changed_keys in a transaction, with the mart write, and the change logged when
    `spec` is a feed table: for each logged column, its values in the rows deleted and in
    the rows inserted."""
    changed = f"{key} IN (SELECT k FROM {CHANGED_KEYS})"
    columns = FEED_TABLES.get(spec.qualified, ()) if feed else ()
    con.execute("BEGIN")
    try:
        for i, column in enumerate(columns):
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE _old_values_{i} AS "
                f"{_logged_values(spec, key, column, changed)}"
            )
        rewrite_changed_keys(con, spec, rows_sql, key)
        record_mart_write(con, spec, key, f"SELECT k FROM {CHANGED_KEYS}")
        if feed:
            log_change(
                con,
                spec.qualified,
                {
                    column: f"SELECT * FROM _old_values_{i} UNION "
                    f"{_logged_values(spec, key, column, changed)}"
                    for i, column in enumerate(columns)
                },
            )
            for i in range(len(columns)):
                con.execute(f"DROP TABLE _old_values_{i}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _rebuild(con: duckdb.DuckDBPyConnection, spec: TableSpec, select: str, feed: bool) -> int:
    con.execute("BEGIN")
    try:
        n = rebuild_table(con, spec, select)
        if feed:
            log_change(con, spec.qualified, None)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return n


def refresh_by_feeds(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    select_sql: Callable[[str | None], str],
    key: str,
    feeds: Sequence[Feed],
    other_inputs: Sequence[str] = (),
) -> FeedRefresh:
    """`refresh_table` comparing only the keys the feeds' changes map to, when they are known
    (module doc). `select_sql(scope)`: the table's SELECT; given the name of a relation of
    keys (column k), at least the rows of those keys (it may push the keys into its scans).
    `key` must be a NOT NULL column of `spec` (a NULL key is in no scope). `other_inputs`:
    the tables it reads that are not feeds; any change there compares every key. When `spec`
    is itself a feed table, its writes are logged."""
    for feed in feeds:
        if feed.key_column not in FEED_TABLES.get(feed.table, ()):
            raise ValueError(f"{feed.table} logs no {feed.key_column} (FEED_TABLES)")
    if next(c for c in spec.columns if c.name == key).nullable:
        raise ValueError(f"{spec.qualified}.{key} may be NULL: it cannot scope a refresh")
    logged = spec.qualified in FEED_TABLES
    ensure_change_tables(con)
    context = input_fingerprint(
        con, [f"{spec.qualified}#feeds"], other_inputs, select_sql(None) + select_sql(SCOPE_KEYS)
    )
    now = _latest(con, feeds)
    if table_columns(con, spec.qualified) != spec.column_names:
        n = _rebuild(con, spec, select_sql(None), logged)
        _record(con, spec.qualified, context, now)
        return FeedRefresh(Refresh(n, n, n, True), None, "the table does not exist as specified")
    why = _scope(con, spec.qualified, feeds, context, now)
    compared: int | None = None
    try:
        if why is None:
            compared = scalar_int(con, f"SELECT count(*) FROM {SCOPE_KEYS}")
            only = f"{key} IN (SELECT k FROM {SCOPE_KEYS})"
            new_rows = stored_rows_sql(spec, select_sql(SCOPE_KEYS))
            # computed once for the comparison and the rewrite: the scope's rows are few
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {_SCOPED_ROWS} AS "
                f"SELECT * FROM ({new_rows}) AS s WHERE {only}"
            )
            rows_sql = f"SELECT * FROM {_SCOPED_ROWS}"
            diff = diff_keys(con, spec, rows_sql, key, where=only)
        else:
            rows_sql = stored_rows_sql(spec, select_sql(None))
            diff = diff_keys(con, spec, rows_sql, key)
        if why is not None and diff.rewrite_whole:
            n = _rebuild(con, spec, select_sql(None), logged)
            done = Refresh(n, diff.keys, diff.keys, True)
        else:
            if diff.changed:
                _rewrite(con, spec, rows_sql, key, logged)
            keys = diff.keys if compared is None else compared
            done = Refresh(row_count(con, spec), diff.changed, keys, False)
    finally:
        con.execute(
            f"DROP TABLE IF EXISTS _new_keys; DROP TABLE IF EXISTS {CHANGED_KEYS}; "
            f"DROP TABLE IF EXISTS {SCOPE_KEYS}; DROP TABLE IF EXISTS {_SCOPED_ROWS}"
        )
    _record(con, spec.qualified, context, now)
    return FeedRefresh(done, compared, why)
