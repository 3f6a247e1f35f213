"""`assets.common.tabular.load_csv`: DuckDB's read of a clean file, in the process's own
in-memory DuckDB, and the Python reader when that read fails or rejects a line, both inside
the caller's ingest transaction."""

from pathlib import Path
from typing import Any

import duckdb
import pytest

from assets.common.tabular import Header, load_csv
from assets.raw import ingest
from tests.test_raw_writer import CTX, _table

# a title line above the header; the second data row has only blank fields
TEXT = "Export of 2026\r\nA;X;B\r\n a1 ;x;b1\r\n ; ;\r\na3;x; \r\n"
HEADER = Header(["A", "X", "B"], {0: "a", 2: "b"}, 1, 2, ";")


def _load(tmp_path: Path, text: str) -> tuple[duckdb.DuckDBPyConnection, Any]:
    path = tmp_path / "a.csv"
    path.write_text(text, encoding="utf-8")
    con = duckdb.connect()
    _table(con)
    con.execute("BEGIN")  # as the ingest does: one transaction per file
    result = load_csv(con, path, CTX, table="t", header=HEADER, constants={"layout": "v1"})
    con.execute("COMMIT")
    return con, result


def _rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        "SELECT layout, a, b, source_file, source_row, source_locator FROM t ORDER BY source_row"
    ).fetchall()


def test_a_clean_file_is_read_by_duckdb_and_numbered_by_record(tmp_path: Path) -> None:
    con, (loaded, rejects) = _load(tmp_path, TEXT)
    assert (loaded, rejects) == (2, [])
    assert _rows(con) == [
        ("v1", "a1", "b1", "demo/a.csv", 1, "data row 1"),
        ("v1", "a3", None, "demo/a.csv", 3, "data row 3"),
    ]
    # the read left nothing behind in the caller's connection
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchall() == [(0,)]


def test_a_failed_duckdb_read_falls_back_to_python_inside_the_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = duckdb.connect()

    class FailingRead:
        def execute(self, sql: str, *args: Any) -> Any:
            if "read_csv" in sql:
                raise duckdb.IOException("the dialect sniffer gave up")
            return local.execute(sql, *args)

    monkeypatch.setattr(ingest, "local_duckdb", FailingRead)
    con, (loaded, rejects) = _load(tmp_path, TEXT)
    assert (loaded, rejects) == (2, [])
    # the Python reader's locators name the line too
    assert _rows(con) == [
        ("v1", "a1", "b1", "demo/a.csv", 1, "data row 1 (line 3)"),
        ("v1", "a3", None, "demo/a.csv", 3, "data row 3 (line 5)"),
    ]


def test_a_rejected_line_sends_the_file_to_python_with_the_same_numbering(
    tmp_path: Path,
) -> None:
    con, (loaded, rejects) = _load(tmp_path, TEXT + "a5;x\r\na6;x;b6\r\n")
    assert loaded == 3
    assert [(r.source_row, r.locator) for r in rejects] == [(4, "data row 4 (line 6)")]
    assert [r[4:] for r in _rows(con)] == [
        (1, "data row 1 (line 3)"),
        (3, "data row 3 (line 5)"),
        (5, "data row 5 (line 7)"),
    ]
