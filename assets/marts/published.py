"""Reading the published marts file (no Dagster imports: the command line opens it too)."""

from pathlib import Path

import duckdb


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
    return duckdb.connect(str(marts_db), read_only=True)
