"""Per-file staging: a source's row-by-row work is kept per raw file and redone only for the
files that changed.

A staging builder that uses this splits its SQL in two:

1. `rows_sql(source)`: the per-row work (parsing, checks, id normalisation, EUR conversion)
   over some raw rows. Its result is kept in a *file cache* table, one row per raw row.
2. The cross-file part (de-duplication, ranking), run over the whole cache on every build.

A new file so costs its own rows plus step 2, not a re-derivation of every row already
staged. The cache is exact, not a heuristic:

- a file is redone when its state changes: SHA-256, load time or row count in the raw table,
  or the number of its rows in the cache (rows lost behind the pipeline);
- everything is redone when the *context* changes: the code version or the content of any
  other table the per-row work reads (`context_inputs`, e.g. ECB rates);
- a removed file's rows leave the cache.

State lives in `quality.staging_file_state`, written in the same transaction as the cache.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import duckdb

from assets.common.fingerprint import input_fingerprint
from assets.common.tables import Column, TableSpec, create_table, table_columns, transaction

STAGING_FILE_STATE = TableSpec(
    schema="quality",
    name="staging_file_state",
    grain="one raw file x staging file cache",
    description="The state of the file and of the code/reference tables when its rows were "
    "derived; a file whose state is unchanged keeps its cached rows "
    "(assets/staging/per_file.py).",
    columns=(
        Column("cache_table", "VARCHAR", "The per-file cache (`staging.*_rows`).", False),
        Column("source_file", "VARCHAR", "Raw file, relative to FUNDTRACE_RAW_DIR.", False),
        Column("file_state", "VARCHAR", "The file's SHA-256, load time and row count in raw.", False),
        Column("cached_rows", "BIGINT", "Rows of the file in the cache."),
        Column("context", "VARCHAR", "Fingerprint of the code and the reference tables read.", False),
    ),
)  # fmt: skip
FILE_STATE = STAGING_FILE_STATE.qualified


@dataclass
class FileCacheRefresh:
    """What one refresh did: files (re)derived, files dropped, files kept as they were."""

    derived: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: int = 0
    full: bool = False

    def summary(self) -> str:
        how = "all files derived (new cache or new code/context)" if self.full else ""
        return how or (
            f"{len(self.derived)} file(s) derived, {len(self.removed)} removed, "
            f"{self.kept} kept as cached"
        )


def refresh_file_cache(
    con: duckdb.DuckDBPyConnection,
    *,
    cache: str,
    raw: str,
    rows_sql: Callable[[str], str],
    context_inputs: Sequence[str] = (),
    grain: str = "",
) -> FileCacheRefresh:
    """Make `cache` equal `rows_sql(raw)`, deriving only the files whose state changed.

    `rows_sql` gets a parenthesised subquery of raw rows (use it where a table name goes) and
    must keep the raw `source_file` column.
    """
    create_table(con, STAGING_FILE_STATE, replace=False)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {cache.partition('.')[0]}")
    context = input_fingerprint(con, [cache], context_inputs)
    now = {
        f: s
        for f, s in con.execute(
            f"SELECT source_file, file_sha256 || '|' || CAST(max(loaded_at) AS VARCHAR) || '|' "
            f"|| count(*) FROM {raw} GROUP BY source_file, file_sha256"
        ).fetchall()
    }
    have = (
        {
            f: n
            for f, n in con.execute(
                f"SELECT source_file, count(*) FROM {cache} GROUP BY 1"
            ).fetchall()
        }
        if table_columns(con, cache) is not None
        else None
    )
    stored = {
        f: (s, n)
        for f, s, n in con.execute(
            f"SELECT source_file, file_state, cached_rows FROM {FILE_STATE} "
            "WHERE cache_table = ? AND context = ?",
            [cache, context],
        ).fetchall()
    }
    result = FileCacheRefresh()
    if have is None or not stored:
        result.full = True
        todo = sorted(now)
    else:
        todo = sorted(
            f for f, s in now.items() if f not in stored or stored[f] != (s, have.get(f, 0))
        )
        result.removed = sorted(f for f in have if f not in now)
        result.kept = len(now) - len(todo)
    result.derived = todo

    with transaction(con):
        if result.full:
            con.execute(f"CREATE OR REPLACE TABLE {cache} AS {rows_sql(f'(SELECT * FROM {raw})')}")
            if grain:
                con.execute(f"COMMENT ON TABLE {cache} IS '{grain.replace(chr(39), chr(39) * 2)}'")
        else:
            # a new file has no rows to delete: the scan of the cache is skipped for it
            stale = sorted((set(todo) & set(have or ())) | set(result.removed))
            if stale:
                con.execute(
                    f"DELETE FROM {cache} WHERE list_contains(?::VARCHAR[], source_file)", [stale]
                )
            if todo:
                source = (
                    f"(SELECT * FROM {raw} WHERE list_contains({_sql_list(todo)}, source_file))"
                )
                con.execute(f"INSERT INTO {cache} BY NAME {rows_sql(source)}")
        con.execute(f"DELETE FROM {FILE_STATE} WHERE cache_table = ?", [cache])
        con.execute(
            f"""
            INSERT INTO {FILE_STATE}
            SELECT ?, n.source_file, n.file_state, coalesce(c.n, 0), ?
            FROM (SELECT unnest(?::VARCHAR[]) AS source_file,
                         unnest(?::VARCHAR[]) AS file_state) AS n
            LEFT JOIN (SELECT source_file, count(*) AS n FROM {cache} GROUP BY 1) AS c
              USING (source_file)
            """,
            [cache, context, list(now), list(now.values())],
        )
    return result


def _sql_list(values: Sequence[str]) -> str:
    """A VARCHAR[] literal (the file list must be inline: a parameter inside `rows_sql`'s
    subquery would have to be threaded through every builder's SQL)."""
    items = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return f"[{items}]::VARCHAR[]"
