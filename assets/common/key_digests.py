"""Per-key digests: what the rows of each key of a table were built from.

A table rebuilt key by key (entity resolution by organisation reference, OCDS staging by ocid)
stores, per key, a digest of that key's inputs under a *state* name (`layer.table#what`). The
next build compares them with the current digests and re-derives only the keys whose digest
changed, appeared or disappeared. The digests are written in the caller's transaction, with
the rows they describe.
"""

import duckdb

from assets.common.tables import Column, TableSpec, create_table, sql_literal

KEY_DIGESTS = TableSpec(
    schema="quality",
    name="key_digests",
    grain="one state (table x what is digested) x key, as last built",
    description="Digest of the inputs each key's rows were built from, for the tables rebuilt "
    "key by key: entity resolution per organisation reference, OCDS staging per ocid "
    "(assets/common/key_digests.py).",
    columns=(
        Column("state", "VARCHAR", "`layer.table#what`: the table and what the digest covers.", False),
        Column("key", "VARCHAR", "The key: an organisation reference or an ocid.", False),
        Column("digest", "HUGEINT", "Sum of the hashes of the key's input rows.", False),
    ),
)  # fmt: skip
DIGESTS = KEY_DIGESTS.qualified
# tables of earlier versions that held the same, replaced by this one
_OLD_TABLES = ("quality.entity_resolution_refs", "quality.ocds_ocid_digests")


def ensure_key_digests(con: duckdb.DuckDBPyConnection) -> None:
    create_table(con, KEY_DIGESTS, replace=False)
    for old in _OLD_TABLES:
        con.execute(f"DROP TABLE IF EXISTS {old}")


def stored_sql(state: str) -> str:
    """SQL of the stored (key, digest) of `state`."""
    return f"SELECT key, digest FROM {DIGESTS} WHERE state = {sql_literal(state)}"


def changed_keys_sql(current_sql: str, state: str) -> str:
    """SQL of the keys whose digest in `current_sql` (columns key, digest) differs from the
    one stored for `state`, new and gone keys included."""
    return (
        f"SELECT key FROM ({current_sql}) c FULL JOIN ({stored_sql(state)}) s USING (key) "
        "WHERE c.digest IS DISTINCT FROM s.digest"
    )


def store_digests(
    con: duckdb.DuckDBPyConnection, state: str, current_sql: str, keys_sql: str | None = None
) -> None:
    """Make the stored digests of `state` those of `current_sql` (columns key, digest): all
    of them, or (`keys_sql`, SQL of keys) only those keys. Only the keys whose digest differs
    are written (a full rebuild usually changes few). Runs in the caller's transaction."""
    which = f" WHERE key IN ({keys_sql})" if keys_sql else ""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _digest_keys AS "
        f"SELECT key FROM ({changed_keys_sql(current_sql, state)}){which}"
    )
    con.execute(
        f"DELETE FROM {DIGESTS} WHERE state = ? AND key IN (SELECT key FROM _digest_keys)",
        [state],
    )
    con.execute(
        f"INSERT INTO {DIGESTS} SELECT ?, key, digest FROM ({current_sql}) "
        "WHERE key IN (SELECT key FROM _digest_keys)",
        [state],
    )
    con.execute("DROP TABLE _digest_keys")
