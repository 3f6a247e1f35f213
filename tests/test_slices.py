"""Tables built slice by slice (assets/common/slices.py): only slices whose inputs changed are
rebuilt, and the table always equals a full build of the same inputs."""

import duckdb
import pytest

from assets.common import fingerprint
from assets.common.slices import SLICE_STATE, Slice, refresh_slices, tables_in
from assets.common.tables import Column, TableSpec, ensure_schemas

TARGET = TableSpec(
    schema="intermediate",
    name="toy_union",
    grain="one row of a source",
    description="Toy union of two sources.",
    columns=(
        Column("source_system", "VARCHAR", "Source.", False),
        Column("value", "VARCHAR", "Value.", False),
    ),
    order_by=("source_system", "value"),
)


def _slices(extra: str = "") -> list[Slice]:
    return [
        Slice(
            key=s,
            where=f"source_system = '{s}'",
            sql=f"SELECT '{s}' AS source_system, upper(v) || '{extra}' AS value FROM staging.{s}",
        )
        for s in ("a", "b")
    ]


def _con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    ensure_schemas(con)
    con.execute("CREATE TABLE staging.a AS SELECT * FROM (VALUES ('x'), ('y')) t(v)")
    con.execute("CREATE TABLE staging.b AS SELECT * FROM (VALUES ('z')) t(v)")
    return con


def _rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(f"SELECT * FROM {TARGET.qualified} ORDER BY ALL").fetchall()


def _full(con: duckdb.DuckDBPyConnection, slices: list[Slice]) -> list[tuple]:
    union = " UNION ALL ".join(f"SELECT * FROM ({s.sql})" for s in slices)
    return con.execute(f"SELECT * FROM ({union}) ORDER BY ALL").fetchall()


def test_tables_in_finds_the_layer_tables_an_sql_reads() -> None:
    sql = "SELECT * FROM staging.a JOIN raw.ref_funders f USING (x) WHERE y IN (SELECT 1)"
    assert tables_in(sql) == ["raw.ref_funders", "staging.a"]


def test_only_changed_slices_are_rebuilt_and_the_table_equals_a_full_build() -> None:
    con = _con()
    first = refresh_slices(con, TARGET, _slices())
    assert first.full and first.rebuilt == ["a", "b"]
    assert _rows(con) == [("a", "X"), ("a", "Y"), ("b", "Z")]

    again = refresh_slices(con, TARGET, _slices())
    assert (again.full, again.rebuilt, again.kept) == (False, [], ["a", "b"])

    con.execute("INSERT INTO staging.b VALUES ('w')")
    step = refresh_slices(con, TARGET, _slices())
    assert (step.rebuilt, step.kept) == (["b"], ["a"])
    assert _rows(con) == _full(con, _slices())


def test_rows_lost_behind_the_pipeline_new_code_or_a_new_definition_rebuild(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    con = _con()
    refresh_slices(con, TARGET, _slices())
    con.execute(f"DELETE FROM {TARGET.qualified} WHERE value = 'Y'")
    assert refresh_slices(con, TARGET, _slices()).rebuilt == ["a"]
    assert _rows(con) == _full(con, _slices())

    # the slice SQL changed (a new definition): every slice whose SQL changed is rebuilt
    assert refresh_slices(con, TARGET, _slices("!")).rebuilt == ["a", "b"]
    assert _rows(con) == _full(con, _slices("!"))

    monkeypatch.setattr(fingerprint, "code_version", lambda: "other code")
    assert refresh_slices(con, TARGET, _slices("!")).rebuilt == ["a", "b"]


def test_a_slice_that_is_no_longer_defined_leaves_no_rows() -> None:
    con = _con()
    refresh_slices(con, TARGET, _slices())
    only_a = _slices()[:1]
    assert refresh_slices(con, TARGET, only_a).kept == ["a"]
    assert _rows(con) == [("a", "X"), ("a", "Y")]


def test_slices_that_do_not_partition_the_table_fail_and_change_nothing() -> None:
    con = _con()
    refresh_slices(con, TARGET, _slices())
    before = _rows(con)
    state = con.execute(f"SELECT * FROM {SLICE_STATE} ORDER BY ALL").fetchall()
    overlapping = [*_slices(), Slice("all", "true", "SELECT 'c' AS source_system, 'Q' AS value")]
    with pytest.raises(ValueError, match="no slice or in several"):
        refresh_slices(con, TARGET, overlapping)
    assert _rows(con) == before
    assert con.execute(f"SELECT * FROM {SLICE_STATE} ORDER BY ALL").fetchall() == state


_NOTHING = "SELECT 'c' AS source_system, 'Q' AS value WHERE false"


@pytest.mark.parametrize(
    "rebuilt",
    [
        # b's row lands in no slice
        [Slice("b", "source_system = 'b'", "SELECT 'q' AS source_system, 'Z' AS value")],
        # b's new row lands in b and in a new, empty slice c
        [_slices("!")[1], Slice("c", "value = 'Z!'", _NOTHING)],
    ],
    ids=["in no slice", "in two slices"],
)
def test_rebuilt_slices_that_leave_a_row_outside_or_in_two_fail_and_change_nothing(
    rebuilt: list[Slice],
) -> None:
    # the kept slice's count is unchanged: only the per-row partition check sees the row
    con = _con()
    refresh_slices(con, TARGET, _slices())
    before = _rows(con)
    with pytest.raises(ValueError, match=r"1 row\(s\) fall in no slice or in several"):
        refresh_slices(con, TARGET, [_slices()[0], *rebuilt])
    assert _rows(con) == before


def test_no_slices_at_all_leave_an_empty_table() -> None:
    con = _con()
    refresh_slices(con, TARGET, _slices())
    assert refresh_slices(con, TARGET, []).kept == []
    assert _rows(con) == []
    assert refresh_slices(con, TARGET, []).rebuilt == []  # and again, on an empty state
