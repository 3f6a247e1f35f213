"""Tables built slice by slice (assets/common/slices.py): only slices whose inputs changed are
rebuilt, and the table always equals a full build of the same inputs."""

import dataclasses
from collections.abc import Sequence

import duckdb
import pytest

from assets.common import fingerprint
from assets.common.slices import SLICE_STATE, Slice, SliceRefresh, refresh_slices, tables_in
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


def _keyed_con() -> duckdb.DuckDBPyConnection:
    con = _con()
    con.execute("INSERT INTO staging.a SELECT 'v' || i FROM range(10) t(i)")  # 12 keys in a
    return con


@pytest.mark.parametrize(
    ("change", "rewritten"),
    [
        ("INSERT INTO staging.a VALUES ('new')", 1),  # a key appears
        ("UPDATE staging.a SET v = 'v3b' WHERE v = 'v3'", 2),  # one goes, one appears
        ("DELETE FROM staging.a WHERE v = 'v4'", 1),  # a key disappears
        ("INSERT INTO staging.a VALUES ('x')", 1),  # a second identical row of a key
    ],
    ids=["added", "changed", "removed", "duplicated"],
)
def test_a_keyed_slice_is_rewritten_by_difference_and_equals_a_full_build(
    change: str, rewritten: int
) -> None:
    con = _keyed_con()
    refresh_slices(con, TARGET, _slices(), key="value")
    con.execute(change)
    step = refresh_slices(con, TARGET, _slices(), key="value")
    keys_after = con.execute("SELECT count(DISTINCT v) FROM staging.a").fetchall()[0][0]
    assert (step.rebuilt, step.kept) == (["a"], ["b"])
    assert step.by_key == {"a": (rewritten, keys_after)}
    assert f"a ({rewritten} of {keys_after} keys)" in step.summary()
    assert _rows(con) == _full(con, _slices())
    # and a table equal to its inputs again is left as it is
    assert refresh_slices(con, TARGET, _slices(), key="value").rebuilt == []


def test_keyed_slices_are_rewritten_whole_when_new_most_keys_differ_or_a_null_key_does() -> None:
    con = _keyed_con()
    first = refresh_slices(con, TARGET, _slices(), key="value")
    assert first.full and first.by_key == {}
    con.execute("UPDATE staging.a SET v = v || '!' WHERE v LIKE 'v%'")  # 10 of 12 keys differ
    most = refresh_slices(con, TARGET, _slices(), key="value")
    assert (most.rebuilt, most.by_key) == (["a"], {})
    assert _rows(con) == _full(con, _slices())

    # a slice defined since the last build has no rows to compare with: written whole
    more = [
        *_slices(),
        Slice("c", "source_system = 'c'", "SELECT 'c' AS source_system, 'C' AS value"),
    ]
    step = refresh_slices(con, TARGET, more, key="value")
    assert (step.rebuilt, step.by_key) == (["c"], {})
    assert _rows(con) == _full(con, more)

    # a NULL key matches no key (neither to delete nor to insert): the slice goes whole
    nullable = dataclasses.replace(
        TARGET,
        name="toy_union_nullable",
        columns=(TARGET.columns[0], dataclasses.replace(TARGET.columns[1], nullable=True)),
    )
    con.execute("INSERT INTO staging.b SELECT 'w' || i FROM range(10) t(i)")
    b_sql = "SELECT 'b' AS source_system, upper(v) AS value FROM staging.b"
    with_null = [
        _slices()[0],
        Slice("b", "source_system = 'b'", f"{b_sql} UNION ALL SELECT 'b', NULL"),
    ]
    refresh_slices(con, nullable, [_slices()[0], Slice("b", "source_system = 'b'", b_sql)])
    step = refresh_slices(con, nullable, with_null, key="value")  # 1 of 11 keys differs
    assert (step.rebuilt, step.by_key) == (["b"], {})
    assert con.execute(f"SELECT * FROM {nullable.qualified} ORDER BY ALL").fetchall() == _full(
        con, with_null
    )


def test_a_keyed_row_whose_other_columns_change_is_rewritten() -> None:
    rows = TableSpec(
        schema="intermediate",
        name="toy_rows",
        grain="one row of a source, unique id",
        description="Toy rows with an id.",
        columns=(
            Column("source_system", "VARCHAR", "Source.", False),
            Column("id", "VARCHAR", "Id.", False),
            Column("amount", "DECIMAL(18,4)", "Amount."),
        ),
        order_by=("id",),
    )
    con = _con()
    con.execute(
        "CREATE TABLE staging.r AS SELECT 'r' || i AS id, i * 1.5 AS amount FROM range(10) t(i)"
    )
    # the SELECT's DOUBLE is stored as DECIMAL: compared as stored, nothing differs
    slices = [
        Slice(
            "r",
            "source_system = 'r'",
            "SELECT 'r' AS source_system, id, amount::DOUBLE AS amount FROM staging.r",
        )
    ]
    refresh_slices(con, rows, slices, key="id")
    con.execute("UPDATE staging.r SET amount = 99 WHERE id = 'r7'")
    step = refresh_slices(con, rows, slices, key="id")
    assert step.by_key == {"r": (1, 10)}
    table = con.execute(f"SELECT * FROM {rows.qualified} ORDER BY id").fetchall()
    assert table == con.execute(f"SELECT * FROM ({slices[0].sql}) ORDER BY id").fetchall()


def test_a_keyed_rewrite_that_fails_changes_nothing_and_leaves_nothing_behind() -> None:
    con = _keyed_con()
    con.execute("INSERT INTO staging.b VALUES ('w')")
    refresh_slices(con, TARGET, _slices(), key="value")
    before = _rows(con)
    # one key of b changes, and its new row breaks a constraint at the insert
    failing = [
        _slices()[0],
        Slice(
            "b",
            "source_system = 'b'",
            "SELECT CASE WHEN v = 'w' THEN NULL ELSE 'b' END AS source_system, "
            "CASE WHEN v = 'w' THEN 'W2' ELSE upper(v) END AS value FROM staging.b",
        ),
    ]
    with pytest.raises(duckdb.ConstraintException):  # the original error, not a follow-up
        refresh_slices(con, TARGET, failing, key="value")
    assert _rows(con) == before
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchall() == [(0,)]
    con.execute("INSERT INTO staging.b VALUES ('u')")
    assert refresh_slices(con, TARGET, _slices(), key="value").by_key == {"b": (1, 3)}
    assert _rows(con) == _full(con, _slices())


def test_keyed_slices_rebuilt_together_are_computed_in_one_pass_and_equal_a_full_build() -> None:
    con = _keyed_con()
    calls: list[list[str]] = []

    def together(todo: Sequence[Slice]) -> str:
        calls.append([s.key for s in todo])
        return " UNION ALL ".join(f"SELECT * FROM ({s.sql})" for s in todo)

    def refresh() -> SliceRefresh:
        return refresh_slices(con, TARGET, _slices(), key="value", together=together)

    refresh()  # a first build: the slices are new, nothing to compute together
    con.execute("INSERT INTO staging.a VALUES ('new'); INSERT INTO staging.b VALUES ('w')")
    step = refresh()
    # each slice took its own rows from the shared pass: one key added to each
    assert calls == [["a", "b"]]
    assert step.by_key == {"a": (1, 13), "b": (1, 2)}
    assert _rows(con) == _full(con, _slices())
    con.execute("INSERT INTO staging.a VALUES ('newer')")
    refresh()  # one slice changed: its own SELECT, no shared pass
    assert calls == [["a", "b"]]
    assert _rows(con) == _full(con, _slices())
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone() == (0,)
