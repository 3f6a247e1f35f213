"""Macro scripts installed once per database instead of once per connection.

Every SQL module keeps its macros as a script of `CREATE OR REPLACE TEMP MACRO` statements.
Temporary macros belong to one connection, and each Dagster step opens its own: every step
re-created the macros it uses, 9-23 ms a script, ~1 s of a full build and ~0.5 s of a one-file
run at scale 1 (docs/scaling.md, item 26). `install_macro_script` creates them as ordinary
macros in the database's `main` schema instead, with a marker macro that returns the script's
digest, and later connections find them there. A changed script (another code version) has
another digest and is installed again.

They are created on a connection of their own, which commits at once. When the caller's
connection cannot see them (a transaction it began before, or a read-only database), the
script runs as before, as temporary macros on that connection.
"""

from __future__ import annotations

import hashlib
import re

import duckdb

from assets.common.tables import database_cursor, sql_identifier, sql_literal

_TEMP = "CREATE OR REPLACE TEMP MACRO "


def _marker(name: str) -> str:
    return "ft__macros_" + re.sub(r"\W", "_", name)


def _installed(con: duckdb.DuckDBPyConnection, marker: str) -> str | None:
    """The digest of the script installed under `marker`, as this connection sees it."""
    try:
        # binding names a missing macro without aborting a transaction
        relation = con.sql(f"SELECT {marker}()")
    except duckdb.CatalogException:
        return None
    rows = relation.fetchall()
    return str(rows[0][0]) if rows else None


def install_macro_script(con: duckdb.DuckDBPyConnection, name: str, script: str) -> None:
    """Make the macros of `script` (only `CREATE OR REPLACE TEMP MACRO` statements) available
    to `con`: from the database when this version of the script is installed there already,
    else by installing it there, else as temporary macros on `con`. `name` identifies the
    script (its module)."""
    if script.count(_TEMP) != script.count("CREATE "):
        raise ValueError(f"macro script {name}: only CREATE OR REPLACE TEMP MACRO statements")
    digest = hashlib.sha256(script.encode()).hexdigest()[:16]
    marker = _marker(name)
    if _installed(con, marker) == digest:
        return
    cur = database_cursor(con)
    try:
        schema = f"{sql_identifier(cur.execute('SELECT current_database()').fetchall()[0][0])}.main"
        cur.execute(
            script.replace(_TEMP, f"CREATE OR REPLACE MACRO {schema}.")
            + f"\n;CREATE OR REPLACE MACRO {schema}.{marker}() AS {sql_literal(digest)};"
        )
    except duckdb.Error:  # read-only, or another writer: this connection's own below
        pass
    finally:
        cur.close()
    if _installed(con, marker) != digest:
        con.execute(script)
