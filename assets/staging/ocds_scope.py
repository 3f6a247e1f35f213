"""OCDS staging by ocid: a new file re-derives the contracting processes it touches, not all.

Every OCDS staging table is a function, per ocid, of that ocid's raw releases (the history
ranks and orders releases within an ocid, the merge compiles one ocid, and each child table
reads one compiled release and its history), of the code, and for money of the ECB rates.
So each table keeps, per ocid, a digest of the raw releases it was built from
(`assets/common/key_digests.py`, state `<table>#ocids`):

- `stg_ocds_release_history` digests the raw rows of each ocid (file, position, file hash and
  load time: a raw row is a function of those), and keeps the digests of what it staged;
- every other table compares its digests with those of the table it reads (its *upstream*:
  history for the compiled releases, the compiled releases for parties, tenders, awards,
  contracts and bids, the awards for the award suppliers) and rebuilds the ocids whose digest
  differs, appeared or disappeared: their rows are deleted and derived again from the
  upstream rows of those ocids only.

A table is rebuilt in full instead when it has no state yet, its code or reference data
changed (the *context*, the same fingerprint the `skip_unchanged` assets use, stored as an
entry of `quality.build_fingerprints`), its row count differs from the one recorded (a table
changed behind the pipeline), or when more than half of the ocids changed (a full rebuild is
then cheaper). Rows, digests and the entry are written in one transaction.

After an incremental build the rows of the re-derived ocids sit at the end of the table,
not in `order_by` order; nothing reads staging tables by row order.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb

from assets.common.fingerprint import (
    ensure_fingerprint_table,
    input_fingerprint,
    record_in_transaction,
    stored_entry,
)
from assets.common.key_digests import (
    changed_keys_sql,
    ensure_key_digests,
    store_digests,
    stored_sql,
)
from assets.common.tables import (
    FEED_TABLES,
    TableSpec,
    log_change,
    rebuild_table,
    scalar_int,
    table_columns,
    transaction,
)
from assets.staging.quarantine import replace_quarantine

# above this share of changed ocids a table is rebuilt in full (cheaper than delete + insert)
SCOPED_MAX_SHARE = 0.5
SCOPE_TABLE = "_ocds_scope"  # TEMP: the ocids being re-derived
_UPSTREAM = "_ocds_upstream"  # TEMP: current upstream digests


def raw_digests_sql(raw_table: str) -> str:
    """Per-ocid digest of the raw release rows (rows without an ocid have none)."""
    return f"""SELECT nullif(trim(CAST(ocid AS VARCHAR)), '') AS ocid,
          sum(hash(source_file, source_row, file_sha256, loaded_at)) AS digest
        FROM {raw_table} WHERE nullif(trim(CAST(ocid AS VARCHAR)), '') IS NOT NULL
        GROUP BY 1"""


def _state(table: str) -> str:
    return f"{table}#ocids"


def table_digests_sql(table: str) -> str:
    """The per-ocid digests `table` was last built from (its upstream for the next table)."""
    return f"SELECT key AS ocid, digest FROM ({stored_sql(_state(table))})"


@dataclass
class OcidScope:
    """Which ocids of `spec` a build re-derives; `full` when all of them."""

    spec: TableSpec
    key: str
    context: str
    full: bool
    why: str
    changed: int
    total: int

    def summary(self) -> str:
        if self.full:
            return f"{self.spec.qualified}: all {self.total:,} ocids derived ({self.why})"
        return (
            f"{self.spec.qualified}: {self.changed:,} of {self.total:,} ocids re-derived "
            "(their raw releases changed), the others kept"
        )

    def rows(self, table: str) -> str:
        """`table` where the SQL reads it: all of it, or the rows of the ocids in scope."""
        if self.full:
            return table
        return f"(SELECT * FROM {table} SEMI JOIN {SCOPE_TABLE} USING (ocid))"

    def ocids(self, con: duckdb.DuckDBPyConnection) -> list[str] | None:
        """The ocids in scope as a list (None: all), for a cursor, which sees no TEMP table."""
        if self.full:
            return None
        return [r[0] for r in con.execute(f"SELECT ocid FROM {SCOPE_TABLE}").fetchall()]

    def replace_quarantine(
        self,
        con: duckdb.DuckDBPyConnection,
        source_system: str,
        select_sql: str,
        ocid_of_record: str,
    ) -> int:
        """replace_quarantine for this table; scoped, only the rows of ocids in scope are
        replaced (`ocid_of_record`: SQL giving a quarantine row's ocid from its record_id)."""
        only = None if self.full else f"{ocid_of_record} IN (SELECT ocid FROM {SCOPE_TABLE})"
        return replace_quarantine(con, source_system, self.spec.name, select_sql, only)

    def write(self, con: duckdb.DuckDBPyConnection, select_sql: str) -> int:
        """Rows of `select_sql` into the table (all, or in place of the scope's ocids), and
        the digests and the entry of this build, in one transaction. Returns the row count."""
        with transaction(con):
            if self.full:
                rebuild_table(con, self.spec, select_sql)
            else:
                cols = self.spec.select_list()
                order = f" ORDER BY {', '.join(self.spec.order_by)}" if self.spec.order_by else ""
                if self.spec.qualified in FEED_TABLES:  # the ocids this write changed
                    log_change(
                        con, self.spec.qualified, {"ocid": f"SELECT ocid FROM {SCOPE_TABLE}"}
                    )
                con.execute(
                    f"DELETE FROM {self.spec.qualified} "
                    f"WHERE ocid IN (SELECT ocid FROM {SCOPE_TABLE})"
                )
                # the filter again: only scoped rows, whatever an unscoped join let through
                con.execute(
                    f"INSERT INTO {self.spec.qualified} ({cols}) SELECT {cols} FROM "
                    f"({select_sql}) AS q WHERE q.ocid IN (SELECT ocid FROM {SCOPE_TABLE}){order}"
                )
            store_digests(
                con,
                self.key,
                f"SELECT ocid AS key, digest FROM {_UPSTREAM}",
                None if self.full else f"SELECT ocid FROM {SCOPE_TABLE}",
            )
            n = scalar_int(con, f"SELECT count(*) FROM {self.spec.qualified}")
            record_in_transaction(con, self.key, self.context, n)
        con.execute(f"DROP TABLE IF EXISTS {SCOPE_TABLE}; DROP TABLE IF EXISTS {_UPSTREAM}")
        return n


def open_scope(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    upstream_digests_sql: str,
    context_inputs: Sequence[str] = (),
    log: Callable[[str], None] | None = None,
) -> OcidScope:
    """Decide what a build of `spec` re-derives, from the current upstream digests (SQL of
    ocid, digest) and the ones `spec` was last built from. Leaves the TEMP tables the
    builder's SQL and `write` use."""
    ensure_key_digests(con)
    ensure_fingerprint_table(con)
    key = _state(spec.qualified)  # the fingerprint entry and the digests' state
    context = input_fingerprint(con, [key], context_inputs)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_UPSTREAM} AS {upstream_digests_sql}")
    total = scalar_int(con, f"SELECT count(*) FROM {_UPSTREAM}")
    changed_sql = changed_keys_sql(f"SELECT ocid AS key, digest FROM {_UPSTREAM}", key)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {SCOPE_TABLE} AS SELECT key AS ocid FROM ({changed_sql})"
    )
    changed = scalar_int(con, f"SELECT count(*) FROM {SCOPE_TABLE}")
    entry = stored_entry(con, key)
    why = ""
    if entry is None:
        why = "no state of a previous build"
    elif entry[0] != context:
        why = "code or reference data changed"
    elif table_columns(con, spec.qualified) != spec.column_names or entry[1] != scalar_int(
        con, f"SELECT count(*) FROM {spec.qualified}"
    ):
        why = "the table changed since it was built"
    elif changed > SCOPED_MAX_SHARE * max(total, 1):
        why = f"{changed:,} of {total:,} ocids changed"
    scope = OcidScope(spec, key, context, bool(why), why, changed, total)
    if log is not None:
        log(scope.summary())
    return scope
