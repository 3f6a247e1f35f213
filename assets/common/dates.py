"""Dates as published: ISO dates and datetimes, UK day-first forms, `dd-Mon-yy`.

Day-first wins over month-first for slash dates because every UK and EU source we read is
day-first; ambiguous US-style files would need their own source module.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from assets.common.macros import install_macro_script

DATE_FORMATS = (
    "%Y-%m-%d",
    "%d/%m/%Y",
    "%d/%m/%y",
    "%d-%m-%Y",
    "%d.%m.%Y",
    "%d-%b-%y",
    "%d-%b-%Y",
    "%d %b %Y",
    "%d %B %Y",
    "%Y/%m/%d",
    "%Y%m%d",
)

_FORMAT_LIST = "[" + ", ".join(f"'{f}'" for f in DATE_FORMATS) + "]"

MACROS = rf"""
-- no subquery (see money.py): the trimmed text is bound once through a one-element list
CREATE OR REPLACE TEMP MACRO ft_parse_date(x) AS
  list_transform([trim(CAST(x AS VARCHAR))], lambda ft_d: CASE
    WHEN ft_d IS NULL OR ft_d = '' THEN NULL
    -- ISO datetimes (with or without zone): the calendar date as written
    WHEN regexp_matches(ft_d, '^\d{{4}}-\d{{2}}-\d{{2}}[T ]') THEN TRY_CAST(left(ft_d, 10) AS DATE)
    ELSE CAST(try_strptime(ft_d, {_FORMAT_LIST}) AS DATE)
  END)[1];
"""


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    install_macro_script(con, __name__, MACROS)


def parse_date(text: str | None) -> dt.date | None:
    """Python mirror of `ft_parse_date`, evaluated by DuckDB itself (one implementation)."""
    con = duckdb.connect()
    install_macros(con)
    row = con.execute("SELECT ft_parse_date(?)", [text]).fetchone()
    con.close()
    return row[0] if row else None
