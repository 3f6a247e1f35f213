"""Install every shared SQL macro on a DuckDB connection."""

from __future__ import annotations

import duckdb

from assets.common import dates, money, orgids


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    money.install_macros(con)
    dates.install_macros(con)
    orgids.install_macros(con)
