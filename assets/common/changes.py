"""Change feeds: the keys a table's writes changed, so that a table built from it can compare
only the rows of those keys instead of all of them.

`refresh_table` keeps a table equal to its SELECT by comparing every key's rows (the SELECT
evaluated whole, and the stored rows hashed whole): at scale 1, 0.65-0.8 s for the 1.2M money
flows, of which a new file changes ~1,500. A *feed table* (FEED_TABLES) logs each write in
`quality.table_changes`, in the write's own transaction: the keys whose rows it deleted or
inserted, or NULL when it does not know them (a rebuild, more than MAX_LOGGED_KEYS). The
write paths log themselves (`rewrite_changed_keys`, `rebuild_table` and `log_change` in
assets/common/tables.py, beside the marts' own write log); `refresh_slices` logs the slices
it writes whole, and `int_org_identity` its own rewrite. A dependent names its feeds and how a feed's changed keys map to its own
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

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb

from assets.common.fingerprint import input_fingerprint, versioned_entries
from assets.common.tables import (
    CHANGED_KEYS,
    CHANGES,
    FEED_TABLES,
    TABLE_CHANGES,
    Column,
    Refresh,
    TableSpec,
    create_table,
    diff_keys,
    partial_build_metadata,
    refresh_table,
    row_count,
    scalar_int,
    sql_literal,
    stored_rows_sql,
    table_columns,
    transaction,
    write_changed_keys,
)

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
POSITIONS = CHANGE_POSITIONS.qualified

SCOPE_KEYS = "_scope_keys"  # TEMP table (k): the dependent's keys a refresh compares
_SCOPED_ROWS = "_scoped_rows"  # TEMP table: the SELECT's rows of those keys


def ensure_change_tables(con: duckdb.DuckDBPyConnection) -> None:
    create_table(con, TABLE_CHANGES, replace=False)
    create_table(con, CHANGE_POSITIONS, replace=False)


@dataclass(frozen=True)
class Feed:
    """A feed table a dependent reads, the column of its log it reads (FEED_TABLES), and
    `keys_sql(changed)`: SQL of the dependent's keys whose rows depend on the feed rows with
    the values in `changed` (a relation with column k, as text), old and new rows alike."""

    table: str
    key_column: str
    keys_sql: Callable[[str], str]


def same_keys(changed: str) -> str:
    """Feed.keys_sql of a dependent keyed like the feed's logged column."""
    return f"SELECT k FROM {changed}"


def keys_of_rows(table: str, key: str, *columns: str) -> Callable[[str], str]:
    """Feed.keys_sql: the `key` of the rows of `table` whose `columns` (any) hold a changed
    value."""
    return lambda changed: " UNION ALL ".join(
        f"SELECT {key} FROM {table} WHERE {column} IN (SELECT k FROM {changed})"
        for column in columns
    )


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
    with transaction(con):
        con.execute(f"DELETE FROM {POSITIONS} WHERE table_name = ?", [table])
        con.executemany(
            f"INSERT INTO {POSITIONS} VALUES (?, ?, ?, ?, ?)",
            [[table, feed, p.change_id, p.version, context] for feed, p in now.items()],
        )


@dataclass(frozen=True)
class FeedRefresh:
    """What refresh_by_feeds did: the refresh, and the keys it compared (None: every key,
    with the reason)."""

    refresh: Refresh
    compared: int | None
    why_all: str | None = None

    @property
    def rows(self) -> int:
        return self.refresh.rows

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
    the tables it reads that are not feeds; any change there compares every key, as does an
    empty `feeds`. When `spec` is itself a feed table, its writes are logged."""
    for feed in feeds:
        if feed.key_column not in FEED_TABLES.get(feed.table, ()):
            raise ValueError(f"{feed.table} logs no {feed.key_column} (FEED_TABLES)")
    if next(c for c in spec.columns if c.name == key).nullable:
        raise ValueError(f"{spec.qualified}.{key} may be NULL: it cannot scope a refresh")
    if not feeds:  # nothing logs its changes: every key compared, as refresh_table does
        return FeedRefresh(refresh_table(con, spec, select_sql(None), key), None, "no feeds")
    ensure_change_tables(con)
    context = input_fingerprint(
        con, [f"{spec.qualified}#feeds"], other_inputs, select_sql(None) + select_sql(SCOPE_KEYS)
    )
    now = _latest(con, feeds)
    why = "the table does not exist as specified"
    if table_columns(con, spec.qualified) == spec.column_names:
        why = _scope(con, spec.qualified, feeds, context, now)
    if why is not None:
        # every key compared: refresh_table (a feed table's writes log themselves)
        done = refresh_table(con, spec, select_sql(None), key)
        _record(con, spec.qualified, context, now)
        return FeedRefresh(done, None, why)
    try:
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
        if diff.changed:
            write_changed_keys(con, spec, rows_sql, key)
        done = Refresh(row_count(con, spec), diff.changed, compared, False)
    finally:
        con.execute(
            f"DROP TABLE IF EXISTS _new_keys; DROP TABLE IF EXISTS {CHANGED_KEYS}; "
            f"DROP TABLE IF EXISTS {SCOPE_KEYS}; DROP TABLE IF EXISTS {_SCOPED_ROWS}"
        )
    _record(con, spec.qualified, context, now)
    return FeedRefresh(done, compared)
