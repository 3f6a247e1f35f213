"""The one raw-table writer every parser uses: batching by rows and by bytes, constants,
provenance on every row."""

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from assets.raw import private_funding as pf
from assets.raw.ingest import FileContext, RowWriter, single_table_raw_asset

CTX = FileContext(
    source_system="demo",
    path=Path("demo/a.csv"),
    source_file="demo/a.csv",
    file_sha256="abc",
    loaded_at=dt.datetime(2026, 1, 2, 3, 4, 5),
)


def _table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE TABLE t (layout VARCHAR, a VARCHAR, b VARCHAR, source_system VARCHAR, "
        "source_file VARCHAR, file_sha256 VARCHAR, loaded_at TIMESTAMP, source_row BIGINT, "
        "source_locator VARCHAR)"
    )


def test_rows_are_flushed_in_batches_of_rows_and_keep_provenance() -> None:
    con = duckdb.connect()
    _table(con)
    w = RowWriter(con, CTX, "t", ["a", "b", "a"], constants={"layout": "v2"}, batch_rows=2)
    for n in range(1, 6):
        w.add({"a": f"x{n}", "b": None, "ignored": "y"}, n, f"line {n}")
        # a batch is written as soon as it holds two rows
        assert w.written == n - n % 2
    w.flush()
    assert w.written == 5
    rows = con.execute("SELECT * FROM t ORDER BY source_row").fetchall()
    assert rows[0] == ("v2", "x1", None, "demo", "demo/a.csv", "abc",
                       dt.datetime(2026, 1, 2, 3, 4, 5), 1, "line 1")  # fmt: skip
    assert [r[1] for r in rows] == ["x1", "x2", "x3", "x4", "x5"]


def test_large_records_flush_by_bytes() -> None:
    con = duckdb.connect()
    _table(con)
    w = RowWriter(con, CTX, "t", ["a"], batch_rows=1000, batch_bytes=100)
    w.add({"a": "x" * 60}, 1, "record 1", size=60)
    assert w.written == 0
    w.add({"a": "x" * 60}, 2, "record 2", size=60)
    assert w.written == 2  # 120 bytes buffered: over the limit
    w.flush()  # nothing left: no empty insert
    assert con.execute("SELECT count(*) FROM t").fetchall() == [(2,)]


def test_reads_cleanly_probes_outside_the_ingest_transaction(tmp_path: Path) -> None:
    from assets.raw.ingest import reads_cleanly

    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text("a,b\n1,2\n3,4\n")
    bad.write_text("a,b\n1,2\n3,4,5,6\n")
    read = (
        "SELECT count(*) FROM read_csv(?, header = true, columns = {'a': 'VARCHAR', "
        "'b': 'VARCHAR'}, ignore_errors = true, store_rejects = true, rejects_table = '_r')"
    )
    db = tmp_path / "t.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE t (x INTEGER)")
    con.execute("BEGIN TRANSACTION")
    con.execute("INSERT INTO t VALUES (1)")
    assert reads_cleanly(con, read, [str(good)], rejects_table="_r")
    assert not reads_cleanly(con, read, [str(bad)], rejects_table="_r")
    assert not reads_cleanly(con, "SELECT * FROM read_csv(?)", [str(tmp_path / "missing.csv")])
    # the failed probes left the caller's transaction usable
    con.execute("INSERT INTO t VALUES (2)")
    con.execute("COMMIT")
    assert con.execute("SELECT sum(x) FROM t").fetchall() == [(3,)]


def test_a_single_table_raw_asset_takes_a_parser_or_an_ingest() -> None:
    args = {
        "source_system": pf.SOURCE_SYSTEM,
        "folder": pf.FOLDER,
        "suffixes": pf.SUFFIXES,
        "parser_version": pf.PARSER_VERSION,
        "kinds": {"duckdb"},
    }
    for how in ({}, {"parser": pf.parse_file, "ingest": lambda *a, **k: None}):
        with pytest.raises(
            ValueError, match=r"raw\.raw_private_funding: give a parser or an ingest"
        ):
            single_table_raw_asset(pf.RAW_PRIVATE, **args, **how)
    made = single_table_raw_asset(pf.RAW_PRIVATE, **args, parser=pf.parse_file)
    assert made.key == pf.raw_private_funding.key and made.op.name == "raw__raw_private_funding"
