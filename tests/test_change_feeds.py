"""Change feeds: a table refreshed from its feeds' changes compares only the keys they name,
and ends equal to its SELECT; whenever those changes are not known it compares every key."""

import random

import duckdb
import pytest

from assets.common.changes import (
    POSITIONS,
    Feed,
    FeedRefresh,
    keys_of_rows,
    refresh_by_feeds,
    same_keys,
)
from assets.common.fingerprint import remember
from assets.common.slices import Slice, SliceRefresh, refresh_slices
from assets.common.tables import (
    CHANGES,
    FEED_TABLES,
    KEEP_CHANGES,
    Column,
    TableSpec,
    create_table,
    ensure_schemas,
    log_change,
    scalar_int,
)

# toy tables under the names of the real feed tables (FEED_TABLES)
FLOWS = TableSpec(
    schema="intermediate",
    name="int_money_flows",
    grain="one toy flow",
    description="A feed table for tests.",
    columns=(
        Column("flow_id", "VARCHAR", "Key.", False),
        Column("src", "VARCHAR", "Slice.", False),
        Column("ref", "VARCHAR", "Organisation reference.", False),
        Column("amount", "INTEGER", "Value."),
    ),
    order_by=("flow_id",),
)
IDENTITY = TableSpec(
    schema="intermediate",
    name="int_org_identity",
    grain="one toy reference",
    description="A feed table for tests.",
    columns=(
        Column("org_ref", "VARCHAR", "Key.", False),
        Column("org_id", "VARCHAR", "Canonical id.", False),
        Column("name", "VARCHAR", "Name."),
    ),
    order_by=("org_ref",),
)
MART = TableSpec(
    schema="marts",
    name="toy_flows",
    grain="one toy flow with its organisation",
    description="A table refreshed from the feeds.",
    columns=(
        Column("flow_id", "VARCHAR", "Key.", False),
        Column("org_id", "VARCHAR", "Canonical id."),
        Column("name", "VARCHAR", "Name."),
        Column("amount", "INTEGER", "Value."),
    ),
    order_by=("flow_id",),
)
SOURCES = ("a", "b", "c")


def _mart_select(scope: str | None) -> str:
    flows = FLOWS.qualified
    if scope is not None:
        flows = f"(SELECT * FROM {flows} WHERE flow_id IN (SELECT k FROM {scope}))"
    return (
        f"SELECT f.flow_id, i.org_id, i.name, f.amount FROM {flows} f "
        f"JOIN {IDENTITY.qualified} i ON i.org_ref = f.ref"
    )


FEEDS = (
    Feed(FLOWS.qualified, "flow_id", same_keys),
    Feed(IDENTITY.qualified, "org_ref", keys_of_rows(FLOWS.qualified, "flow_id", "ref")),
)


def _con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    ensure_schemas(con)
    con.execute(
        "CREATE TABLE staging.src_flows (flow_id VARCHAR, src VARCHAR, ref VARCHAR, amount INT)"
    )
    con.execute("CREATE TABLE staging.src_identity (org_ref VARCHAR, org_id VARCHAR, name VARCHAR)")
    con.executemany(
        "INSERT INTO staging.src_flows VALUES (?, ?, ?, ?)",
        [(f"f{i:03d}", SOURCES[i % 3], f"r{i % 7}", i) for i in range(60)],
    )
    con.executemany(
        "INSERT INTO staging.src_identity VALUES (?, ?, ?)",
        [(f"r{i}", f"r{i - i % 2}", f"Org {i}") for i in range(7)],
    )
    return con


def _write_flows(con: duckdb.DuckDBPyConnection) -> SliceRefresh:
    """The producer: slices by source, rewritten by key (logs the keys it changed)."""
    slices = [
        Slice(key=s, where=f"src = '{s}'", sql=f"SELECT * FROM staging.src_flows WHERE src = '{s}'")
        for s in SOURCES
    ]
    return refresh_slices(con, FLOWS, slices, key="flow_id")


def _write_identity(con: duckdb.DuckDBPyConnection) -> None:
    """A producer that rewrites the references whose row changed and logs them, with the
    canonical ids they had and have."""
    create_table(con, IDENTITY, replace=False)
    changed = (
        "SELECT org_ref FROM (SELECT * FROM staging.src_identity EXCEPT SELECT * FROM "
        f"{IDENTITY.qualified}) UNION SELECT org_ref FROM (SELECT * FROM {IDENTITY.qualified} "
        "EXCEPT SELECT * FROM staging.src_identity)"
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE _chg AS {changed}")
    ids = f"SELECT org_id FROM {IDENTITY.qualified} WHERE org_ref IN (SELECT org_ref FROM _chg)"
    con.execute(f"CREATE OR REPLACE TEMP TABLE _ids_before AS {ids}")
    con.execute("BEGIN")
    con.execute(f"DELETE FROM {IDENTITY.qualified} WHERE org_ref IN (SELECT org_ref FROM _chg)")
    con.execute(
        f"INSERT INTO {IDENTITY.qualified} SELECT * FROM staging.src_identity "
        "WHERE org_ref IN (SELECT org_ref FROM _chg)"
    )
    log_change(
        con,
        IDENTITY.qualified,
        {"org_ref": "SELECT org_ref FROM _chg", "org_id": f"SELECT * FROM _ids_before UNION {ids}"},
    )
    con.execute("COMMIT")


def _refresh(con: duckdb.DuckDBPyConnection) -> FeedRefresh:
    _write_flows(con)
    _write_identity(con)
    return refresh_by_feeds(con, MART, _mart_select, "flow_id", FEEDS)


def _equal(con: duckdb.DuckDBPyConnection) -> bool:
    def rows(sql: str) -> list[tuple]:
        return sorted(con.execute(sql).fetchall(), key=repr)

    return rows(f"SELECT * FROM {MART.qualified}") == rows(_mart_select(None))


def _stamp(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(con.execute(f"SELECT flow_id, rowid FROM {MART.qualified}").fetchall())


def test_the_first_refresh_compares_every_key_and_the_next_only_the_changed_ones() -> None:
    con = _con()
    first = _refresh(con)
    assert first.compared is None and "does not exist" in str(first.why_all) and _equal(con)
    before = _stamp(con)
    con.execute("UPDATE staging.src_flows SET amount = 999 WHERE flow_id = 'f010'")
    con.execute("DELETE FROM staging.src_flows WHERE flow_id = 'f011'")
    con.execute("INSERT INTO staging.src_flows VALUES ('f900', 'a', 'r1', 5)")
    # r3 is the reference of 9 flows (i % 7 == 3); f010 is one of them
    con.execute("UPDATE staging.src_identity SET name = 'Renamed' WHERE org_ref = 'r3'")
    done = _refresh(con)
    r3 = {f"f{i:03d}" for i in range(60) if i % 7 == 3}
    assert done.compared == len(r3 | {"f010", "f011", "f900"}) == 11
    assert done.refresh.keys_rewritten == 11 and not done.refresh.full
    assert _equal(con)
    after = _stamp(con)
    assert {k for k in before if after.get(k) == before[k]} == set(before) - r3 - {
        "f010",
        "f011",
    }
    again = _refresh(con)
    assert (again.compared, again.refresh.keys_rewritten) == (0, 0)
    assert again.metadata()["fundtrace/output_unchanged"] is True


def test_a_producer_logs_the_keys_it_changed_and_none_when_it_wrote_the_table_whole() -> None:
    con = _con()
    _write_flows(con)  # the first build: the table written whole
    con.execute("UPDATE staging.src_flows SET amount = -1 WHERE flow_id IN ('f000', 'f004')")
    _write_flows(con)  # slice 'a' by difference
    # most of slice 'b' changes (written whole): its keys before and after
    con.execute("UPDATE staging.src_flows SET amount = -2 WHERE src = 'b'")
    con.execute("DELETE FROM staging.src_flows WHERE flow_id = 'f001'")
    con.execute("INSERT INTO staging.src_flows VALUES ('f901', 'b', 'r1', 1)")
    done = _write_flows(con)
    assert "b" in done.rebuilt and "b" not in done.by_key and "a" in done.by_key
    logged = con.execute(
        f"SELECT seq, keys FROM {CHANGES} WHERE table_name = ? ORDER BY seq", [FLOWS.qualified]
    ).fetchall()
    slice_b = sorted({f"f{i:03d}" for i in range(60) if i % 3 == 1} | {"f901"})
    assert logged == [(1, None), (2, ["f000", "f004"]), (3, slice_b)]


@pytest.mark.parametrize("seed", range(25))
def test_random_changes_end_equal_to_the_select(seed: int) -> None:
    rnd = random.Random(seed)
    con = _con()
    _refresh(con)
    scoped = 0
    for step in range(6):
        for _ in range(rnd.randint(0, 4)):
            i = rnd.randrange(80)
            action = rnd.choice(["amount", "ref", "delete", "insert"])
            if action == "amount":
                con.execute(
                    "UPDATE staging.src_flows SET amount = ? WHERE flow_id = ?", [step, f"f{i:03d}"]
                )
            elif action == "ref":
                con.execute(
                    "UPDATE staging.src_flows SET ref = ? WHERE flow_id = ?",
                    [f"r{rnd.randrange(9)}", f"f{i:03d}"],
                )
            elif action == "delete":
                con.execute("DELETE FROM staging.src_flows WHERE flow_id = ?", [f"f{i:03d}"])
            else:
                con.execute(
                    "INSERT INTO staging.src_flows SELECT ?, ?, ?, ? WHERE NOT EXISTS "
                    "(SELECT 1 FROM staging.src_flows WHERE flow_id = ?)",
                    [f"f{i:03d}", rnd.choice(SOURCES), f"r{rnd.randrange(9)}", i, f"f{i:03d}"],
                )
        for _ in range(rnd.randint(0, 2)):
            r = rnd.randrange(9)
            con.execute("DELETE FROM staging.src_identity WHERE org_ref = ?", [f"r{r}"])
            if rnd.random() < 0.8:  # sometimes a reference disappears
                con.execute(
                    "INSERT INTO staging.src_identity VALUES (?, ?, ?)",
                    [f"r{r}", f"r{rnd.randrange(9)}", rnd.choice(["X", "Y", None])],
                )
        done = _refresh(con)
        scoped += done.compared is not None
        assert _equal(con), (seed, step, done.summary())
    assert scoped == 6


ORGS = TableSpec(
    schema="marts",
    name="toy_orgs",
    grain="one toy organisation",
    description="A table refreshed from a table that is itself refreshed from feeds.",
    columns=(
        Column("org_id", "VARCHAR", "Key.", False),
        Column("refs", "VARCHAR[]", "Its references."),
        Column("flows", "BIGINT", "Flows naming it."),
        Column("total", "BIGINT", "Their amounts."),
    ),
    order_by=("org_id",),
)


def _orgs_select(scope: str | None) -> str:
    only = "" if scope is None else f" WHERE org_id IN (SELECT k FROM {scope})"
    return (
        f"WITH i AS (SELECT org_id, list_sort(list(org_ref)) AS refs FROM {IDENTITY.qualified}"
        f"{only} GROUP BY org_id), "
        f"f AS (SELECT org_id, count(*) AS n, sum(amount) AS t FROM {MART.qualified}{only} "
        "GROUP BY org_id) "
        "SELECT i.org_id, i.refs, coalesce(f.n, 0) AS flows, f.t AS total "
        "FROM i LEFT JOIN f USING (org_id)"
    )


ORG_FEEDS = (
    Feed(IDENTITY.qualified, "org_id", same_keys),
    Feed(MART.qualified, "org_id", same_keys),
)


@pytest.mark.parametrize("seed", range(15))
def test_a_table_refreshed_from_a_refreshed_table_takes_old_and_new_values(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The toy flows log, besides their keys, the organisations of the rows they deleted and
    inserted: a flow that moves from one organisation to another changes both totals."""
    monkeypatch.setitem(FEED_TABLES, MART.qualified, ("flow_id", "org_id"))
    rnd = random.Random(seed)
    con = _con()

    writes = []  # the toy flows' writes: each logs its organisations

    def refresh() -> FeedRefresh:
        writes.append(_refresh(con).refresh.keys_rewritten > 0)
        return refresh_by_feeds(con, ORGS, _orgs_select, "org_id", ORG_FEEDS)

    def equal() -> bool:
        def rows(sql: str) -> list[tuple]:
            return sorted(con.execute(sql).fetchall(), key=repr)

        return rows(f"SELECT * FROM {ORGS.qualified}") == rows(_orgs_select(None))

    refresh()
    scoped = 0
    for step in range(6):
        for _ in range(rnd.randint(1, 3)):
            i = rnd.randrange(60)
            if rnd.random() < 0.5:
                con.execute(
                    "UPDATE staging.src_flows SET ref = ?, amount = ? WHERE flow_id = ?",
                    [f"r{rnd.randrange(7)}", step, f"f{i:03d}"],
                )
            else:
                con.execute("DELETE FROM staging.src_flows WHERE flow_id = ?", [f"f{i:03d}"])
        if rnd.random() < 0.5:
            r = rnd.randrange(7)
            con.execute(
                "UPDATE staging.src_identity SET org_id = ? WHERE org_ref = ?",
                [f"r{rnd.randrange(7)}", f"r{r}"],
            )
        done = refresh()
        scoped += done.compared is not None
        assert _equal(con) and equal(), (seed, step, done.summary())
    assert scoped == 6
    logged = con.execute(
        f"SELECT count(*) FROM {CHANGES} WHERE table_name = ? AND key_column = 'org_id'",
        [MART.qualified],
    ).fetchall()[0][0]
    assert logged == sum(writes) >= 4


def test_a_feed_rebuilt_without_a_logged_change_compares_every_key() -> None:
    con = _con()
    _write_flows(con)
    _write_identity(con)
    remember(con, FLOWS.qualified, "build-1", None)
    refresh_by_feeds(con, MART, _mart_select, "flow_id", FEEDS)
    # a write behind the log: the stored version changes, no change is logged
    con.execute(f"UPDATE {FLOWS.qualified} SET amount = 7 WHERE flow_id = 'f001'")
    remember(con, FLOWS.qualified, "build-2", None)
    done = refresh_by_feeds(con, MART, _mart_select, "flow_id", FEEDS)
    assert done.compared is None and "without a logged change" in str(done.why_all)
    assert done.refresh.keys_rewritten == 1 and _equal(con)


def test_changes_no_longer_logged_or_without_keys_compare_every_key() -> None:
    con = _con()
    _refresh(con)
    for i in range(KEEP_CHANGES + 1):  # the position's change drops out of the log
        con.execute("UPDATE staging.src_flows SET amount = ? WHERE flow_id = 'f002'", [i])
        _write_flows(con)
    assert (
        scalar_int(con, f"SELECT count(*) FROM {CHANGES} WHERE table_name = ?", [FLOWS.qualified])
        == KEEP_CHANGES
    )
    done = refresh_by_feeds(con, MART, _mart_select, "flow_id", FEEDS)
    assert done.compared is None and "no longer logged" in str(done.why_all) and _equal(con)

    con.execute("UPDATE staging.src_identity SET name = 'Z' WHERE org_ref = 'r0'")
    con.execute("BEGIN")
    con.execute(f"DELETE FROM {IDENTITY.qualified}")
    con.execute(f"INSERT INTO {IDENTITY.qualified} SELECT * FROM staging.src_identity")
    log_change(con, IDENTITY.qualified, None)
    con.execute("COMMIT")
    done = refresh_by_feeds(con, MART, _mart_select, "flow_id", FEEDS)
    assert done.compared is None and "has no org_ref values" in str(done.why_all) and _equal(con)


def test_another_select_or_a_changed_other_input_compares_every_key() -> None:
    con = _con()
    con.execute("CREATE TABLE staging.rates AS SELECT 1 AS r")
    refresh = lambda: refresh_by_feeds(  # noqa: E731
        con, MART, _mart_select, "flow_id", FEEDS, other_inputs=["staging.rates"]
    )
    _refresh(con)
    assert refresh().compared is None  # the positions were taken without the other input
    assert refresh().compared == 0
    con.execute("UPDATE staging.rates SET r = 2")
    done = refresh()
    assert done.compared is None and "no feed changed" in str(done.why_all)
    con.execute(f"DELETE FROM {POSITIONS}")
    assert refresh().compared is None


def test_only_feed_tables_their_logged_columns_and_not_null_keys() -> None:
    con = _con()
    with pytest.raises(ValueError, match="logs no k"):
        refresh_by_feeds(con, MART, _mart_select, "flow_id", [Feed("marts.other", "k", str)])
    with pytest.raises(ValueError, match="logs no name"):
        refresh_by_feeds(
            con, MART, _mart_select, "flow_id", [Feed(IDENTITY.qualified, "name", str)]
        )
    with pytest.raises(ValueError, match="may be NULL"):
        refresh_by_feeds(con, MART, _mart_select, "name", FEEDS)
    with pytest.raises(ValueError, match="not a feed table"):
        log_change(con, "marts.other", None)
    with pytest.raises(ValueError, match="logs the values of"):
        log_change(con, IDENTITY.qualified, {"org_id": "SELECT 1"})
