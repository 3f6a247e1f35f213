"""Marts carry no personal data beyond names and roles: no birth dates, no addresses."""

import re
from pathlib import Path

import duckdb
import pytest

from tests.test_end_to_end import run_all

pytestmark = pytest.mark.e2e

FORBIDDEN_COLUMN = re.compile(
    r"birth|dob|address|street|postcode|postal|zip|residence|nationality|email|phone", re.I
)
UK_POSTCODE = r"\b[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}\b"
BIRTH_DATE = r"(?i)\b(born|date of birth|dob)\b"
EMAIL = r"[\w.+-]+@[\w-]+\.[\w.]+"


def test_no_mart_column_holds_birth_dates_or_addresses(fundtrace_env: dict[str, Path]) -> None:
    assert run_all().success
    con = duckdb.connect(str(fundtrace_env["marts"]), read_only=True)
    columns = con.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE schema_name = 'marts'"
    ).fetchall()
    assert columns
    bad_names = [f"{t}.{c}" for t, c, _ in columns if FORBIDDEN_COLUMN.search(c)]
    assert bad_names == []
    hits = []
    for table, column, dtype in columns:
        if "VARCHAR" not in dtype:
            continue
        expr = f"CAST({column} AS VARCHAR)"
        found = con.execute(
            f"SELECT {expr} FROM marts.{table} WHERE regexp_matches({expr}, ?) "
            f"OR regexp_matches({expr}, ?) OR regexp_matches({expr}, ?) LIMIT 3",
            [UK_POSTCODE, BIRTH_DATE, EMAIL],
        ).fetchall()
        hits += [(table, column, v[0]) for v in found]
    con.close()
    assert hits == []


def test_scanner_detects_what_it_looks_for() -> None:
    assert re.search(UK_POSTCODE, "Flat 2, 10 Dock St, HB1 2XY")
    assert re.search(BIRTH_DATE, "date of birth 1970-01-01")
    assert re.search(EMAIL, "jane@example.org")
    assert FORBIDDEN_COLUMN.search("birth_date") and FORBIDDEN_COLUMN.search("street_address")
