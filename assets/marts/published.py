"""Reading the published marts file (no Dagster imports: the command line opens it too)."""

from pathlib import Path

import duckdb

CATALOG = "fundtrace_marts"


class MartsNotFoundError(FileNotFoundError):
    """The published marts file to read from does not exist."""


def open_published_marts(marts_db: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published marts file, or MartsNotFoundError saying how
    to build it. The report and `fundtrace who-controls` read the marts this way."""
    if not marts_db.is_file():
        raise MartsNotFoundError(
            f"no published marts at {marts_db}: run `make run` first "
            "(or point FUNDTRACE_MARTS_DB at a published marts file)"
        )
    con = duckdb.connect()
    # attached under a fixed name: opened directly, a file named marts.duckdb would be a
    # database called `marts`, and every `marts.<table>` ambiguous
    path = str(marts_db).replace("'", "''")
    con.execute(f"ATTACH '{path}' AS {CATALOG} (READ_ONLY)")
    con.execute(f"USE {CATALOG}")
    return con
