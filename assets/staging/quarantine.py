"""`staging.stg_quarantine`: records that reached raw but cannot be typed or are duplicates."""

import duckdb

from assets.common.tables import Column, TableSpec, create_table, scalar_int

STG_QUARANTINE = TableSpec(
    schema="staging",
    name="stg_quarantine",
    grain="one raw record rejected by a staging model",
    description="Rows that were read but could not be staged (missing id, unparseable amount or "
    "date, invalid currency, duplicate id...), with the reason. Each staging asset replaces the "
    "rows of its own source system.",
    columns=(
        Column("source_system", "VARCHAR", "Source system.", False),
        Column("staging_table", "VARCHAR", "Staging table the record was meant for.", False),
        Column("source_file", "VARCHAR", "File path relative to FUNDTRACE_RAW_DIR.", False),
        Column("file_sha256", "VARCHAR", "SHA-256 of the file content.", False),
        Column("source_row", "BIGINT", "1-based position of the record in its file.", False),
        Column("source_locator", "VARCHAR", "Line, sheet row or JSON path.", False),
        Column("record_id", "VARCHAR", "The record's own identifier, if it had one."),
        Column("reason", "VARCHAR", "Why the record was not staged.", False),
    ),
    order_by=("source_system", "source_file", "source_row"),
)  # fmt: skip


def replace_quarantine(
    con: duckdb.DuckDBPyConnection,
    source_system: str,
    staging_table: str,
    select_sql: str,
    only: str | None = None,
) -> int:
    """Replace this source's quarantined rows with those of `select_sql`
    (columns: source_file, file_sha256, source_row, source_locator, record_id, reason).
    `only`: an SQL condition on the stored rows; only those are replaced (a partial rebuild).
    Returns the staging table's quarantined rows."""
    create_table(con, STG_QUARANTINE, replace=False)
    con.execute(
        f"DELETE FROM {STG_QUARANTINE.qualified} WHERE source_system = ? AND staging_table = ?"
        + (f" AND ({only})" if only else ""),
        [source_system, staging_table],
    )
    con.execute(
        f"INSERT INTO {STG_QUARANTINE.qualified} SELECT ?, ?, source_file, file_sha256, "
        f"source_row, source_locator, record_id, reason FROM ({select_sql}) "
        "ORDER BY source_file, source_row",
        [source_system, staging_table],
    )
    return scalar_int(
        con,
        f"SELECT count(*) FROM {STG_QUARANTINE.qualified} WHERE staging_table = ?",
        [staging_table],
    )
