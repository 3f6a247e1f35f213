"""refresh_table writes only the keys whose rows changed, and always ends equal to its SELECT."""

from collections.abc import Sequence

import duckdb

from assets.common.tables import (
    Column,
    TableSpec,
    create_table,
    ensure_schemas,
    rebuild_table,
    refresh_table,
)

SPEC = TableSpec(
    schema="marts",
    name="things",
    grain="one row of a test",
    description="A table for refresh tests.",
    columns=(Column("k", "VARCHAR", "Key."), Column("v", "INTEGER", "Value.")),
    order_by=("k", "v"),
)
SOURCE = "SELECT k, v FROM src"


def _con(rows: Sequence[tuple[str | None, int]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    ensure_schemas(con)
    con.execute("CREATE TABLE src (k VARCHAR, v INTEGER)")
    if rows:
        con.executemany("INSERT INTO src VALUES (?, ?)", rows)
    return con


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return sorted(con.execute(sql).fetchall(), key=repr)


def _equal(con: duckdb.DuckDBPyConnection) -> bool:
    return _rows(con, f"SELECT * FROM {SPEC.qualified}") == _rows(con, SOURCE)


def _stamp(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row id of each key's first row: a rewritten key gets new row ids."""
    return dict(con.execute(f"SELECT k, min(rowid) FROM {SPEC.qualified} GROUP BY k").fetchall())


BASE = [(f"k{i:02d}", i) for i in range(20)]


def test_without_the_table_everything_is_written() -> None:
    con = _con(BASE)
    done = refresh_table(con, SPEC, SOURCE, "k")
    assert done.full and done.rows == 20 and _equal(con)


def test_only_changed_added_and_removed_keys_are_rewritten() -> None:
    con = _con(BASE)
    rebuild_table(con, SPEC, SOURCE)
    before = _stamp(con)
    con.execute("UPDATE src SET v = 99 WHERE k = 'k03'")
    con.execute("DELETE FROM src WHERE k = 'k07'")
    con.execute("INSERT INTO src VALUES ('k30', 30), ('k05', 500)")  # k05 gets a second row
    done = refresh_table(con, SPEC, SOURCE, "k")
    assert not done.full and done.keys_rewritten == 4 and done.rows == 21
    assert _equal(con)
    after = _stamp(con)
    kept = {k for k in before if k in after and before[k] == after[k]}
    assert kept == set(before) - {"k03", "k05", "k07"}


def test_nothing_changed_writes_nothing() -> None:
    con = _con(BASE)
    rebuild_table(con, SPEC, SOURCE)
    before = _stamp(con)
    done = refresh_table(con, SPEC, SOURCE, "k")
    assert (done.full, done.keys_rewritten) == (False, 0) and _stamp(con) == before


def test_a_key_that_lost_a_copy_of_a_row_is_rewritten() -> None:
    con = _con([*BASE, ("k01", 1)])
    rebuild_table(con, SPEC, SOURCE)
    con.execute("DELETE FROM src; INSERT INTO src SELECT * FROM (VALUES ('k01', 1)) t")
    con.executemany("INSERT INTO src VALUES (?, ?)", [r for r in BASE if r[0] != "k01"])
    done = refresh_table(con, SPEC, SOURCE, "k")
    assert done.keys_rewritten == 1 and _equal(con)


def test_many_changes_a_null_key_or_other_columns_rebuild_in_full() -> None:
    con = _con(BASE)
    rebuild_table(con, SPEC, SOURCE)
    con.execute("UPDATE src SET v = v + 1 WHERE v < 15")
    done = refresh_table(con, SPEC, SOURCE, "k")
    assert done.full and _equal(con)
    con.execute("INSERT INTO src VALUES (NULL, 1)")
    done = refresh_table(con, SPEC, SOURCE, "k")
    assert done.full and _equal(con)
    assert refresh_table(con, SPEC, SOURCE, "k").full  # NULL matches no key: every time
    con.execute(f"ALTER TABLE {SPEC.qualified} ADD COLUMN extra INTEGER")
    done = refresh_table(con, SPEC, SOURCE, "k")
    assert done.full and _equal(con)


def test_a_failed_write_leaves_the_table_as_it_was() -> None:
    con = _con(BASE)
    create_table(con, SPEC, replace=True)
    con.execute(f"INSERT INTO {SPEC.qualified} SELECT * FROM src")
    con.execute("INSERT INTO src VALUES ('k40', 40)")
    failing = "SELECT k, CASE WHEN k = 'k40' THEN error('boom') ELSE v END AS v FROM src"
    try:
        refresh_table(con, SPEC, failing, "k")
    except duckdb.Error:
        pass
    else:
        raise AssertionError("the failing SELECT did not fail")
    assert _rows(con, f"SELECT * FROM {SPEC.qualified}") == sorted(BASE)


def test_values_are_compared_as_the_table_stores_them() -> None:
    """A SELECT computing DOUBLEs into a DECIMAL column writes nothing when the stored values
    are equal (their hashes differ before the cast)."""
    spec = TableSpec(
        schema="marts",
        name="shares",
        grain="one share",
        description="Shares.",
        columns=(Column("k", "VARCHAR", "Key."), Column("v", "DECIMAL(9,4)", "Share.")),
    )
    con = _con(BASE)
    select = "SELECT k, v / 4 AS v FROM src"  # DOUBLE
    rebuild_table(con, spec, select)
    done = refresh_table(con, spec, select, "k")
    assert (done.full, done.keys_rewritten) == (False, 0)
