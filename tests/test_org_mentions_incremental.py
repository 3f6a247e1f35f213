"""int_org_mentions redoes only the slices (source table x source system) whose input changed.

Every incremental result is compared with a from-scratch build of the same input, so a slice
kept when it should have been redone (or lost) fails here.
"""

import duckdb
import pytest

from assets.common import fingerprint
from assets.common.slices import SLICE_STATE
from assets.common.tables import create_table, ensure_schemas
from assets.intermediate import int_org_mentions as mentions_module
from assets.intermediate.int_money_flows import INT_MONEY_FLOWS
from assets.intermediate.int_org_mentions import (
    INT_ORG_MENTIONS,
    build_int_org_mentions,
    install_macros,
)

GRANTS = "staging.stg_360giving_grants"


def _con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    ensure_schemas(con)
    install_macros(con)
    create_table(con, INT_MONEY_FLOWS, replace=True)
    con.execute(
        f"CREATE TABLE {GRANTS} (recipient_org_ref VARCHAR, recipient_name VARCHAR, "
        "recipient_published_id VARCHAR, recipient_kind VARCHAR, source_system VARCHAR, "
        "source_file VARCHAR)"
    )
    for i, system in enumerate(["360giving", "360giving", "council_spend", "eu_cordis"]):
        _flow(con, i, system)
    _grant(con, "360G-HBT-ORG-1", "Harbour Arts Trust")
    return con


def _flow(con: duckdb.DuckDBPyConnection, i: int, system: str, to_name: str = "") -> None:
    con.execute(
        f"INSERT INTO {INT_MONEY_FLOWS.qualified} (flow_id, flow_type, from_org_ref, from_name, "
        "to_org_ref, to_name, to_kind, flow_date, amount_original, currency_original, "
        "funding_level, controller_org_ref, controller_name, control_basis, source_system, "
        "source_file, source_row, source_record_id) VALUES "
        "(?, 'grant', 'GB-LAE-HBT', 'Harbourton City Council', ?, ?, 'organisation', "
        "DATE '2024-01-01', 1, 'GBP', 'local', 'GB-LAE-HBT', 'Harbourton City Council', "
        "'funder', ?, ?, ?, ?)",
        [
            f"f{i}",
            f"GB-COH-0999{i:04d}",
            to_name or f"Recipient {i} Ltd",
            system,
            f"{system}/f.csv",
            i,
            str(i),
        ],
    )


def _grant(con: duckdb.DuckDBPyConnection, ref: str, name: str) -> None:
    con.execute(
        f"INSERT INTO {GRANTS} VALUES (?, ?, NULL, 'organisation', '360giving', '360g/a.csv')",
        [ref, name],
    )


def _rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return sorted(
        con.execute(f"SELECT * FROM {INT_ORG_MENTIONS.qualified}").fetchall(),
        key=repr,
    )


def _from_scratch(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """The same input built with no stored slices (a full build)."""
    con.execute(f"DELETE FROM {SLICE_STATE}")
    built = build_int_org_mentions(con)
    assert built.kept == 0
    return _rows(con)


def test_unchanged_input_keeps_every_slice() -> None:
    con = _con()
    first = build_int_org_mentions(con)
    assert sorted(first.rebuilt) == [
        "intermediate.int_money_flows:360giving",
        "intermediate.int_money_flows:council_spend",
        "intermediate.int_money_flows:eu_cordis",
        f"{GRANTS}:360giving",
    ]
    before = _rows(con)
    again = build_int_org_mentions(con)
    assert again.rebuilt == [] and again.kept == 4
    assert _rows(con) == before


def test_a_changed_source_system_redoes_only_its_slices_and_matches_a_full_build() -> None:
    con = _con()
    build_int_org_mentions(con)
    _flow(con, 9, "360giving", "Brand New Recipient CIC")
    _grant(con, "360G-HBT-ORG-2", "Quayside Youth Club")
    con.execute(
        f"UPDATE {INT_MONEY_FLOWS.qualified} SET to_name = 'Renamed Ltd' WHERE flow_id = 'f0'"
    )
    built = build_int_org_mentions(con)
    assert sorted(built.rebuilt) == [
        "intermediate.int_money_flows:360giving",
        f"{GRANTS}:360giving",
    ]
    assert built.kept == 2
    incremental = _rows(con)
    names = {r[1] for r in incremental}
    assert {"Brand New Recipient CIC", "Quayside Youth Club", "Renamed Ltd"} <= names
    assert "Recipient 0 Ltd" not in names
    assert incremental == _from_scratch(con)


def test_removed_rows_and_removed_sources_leave_no_mentions_behind() -> None:
    con = _con()
    build_int_org_mentions(con)
    con.execute(f"DELETE FROM {INT_MONEY_FLOWS.qualified} WHERE source_system = 'eu_cordis'")
    con.execute(f"DROP TABLE {GRANTS}")
    built = build_int_org_mentions(con)
    assert f"{GRANTS} (not built)" in built.skipped
    systems = {(r[0], r[1]) for r in con.execute(
        f"SELECT DISTINCT source_table, source_system FROM {INT_ORG_MENTIONS.qualified}"
    ).fetchall()}  # fmt: skip
    assert systems == {
        ("intermediate.int_money_flows", "360giving"),
        ("intermediate.int_money_flows", "council_spend"),
    }
    assert _rows(con) == _from_scratch(con)


def test_mentions_edited_behind_the_pipeline_are_rebuilt() -> None:
    con = _con()
    build_int_org_mentions(con)
    expected = _rows(con)
    con.execute(f"DELETE FROM {INT_ORG_MENTIONS.qualified} WHERE source_system = 'council_spend'")
    built = build_int_org_mentions(con)
    assert built.rebuilt == ["intermediate.int_money_flows:council_spend"]
    assert _rows(con) == expected


def test_new_code_rebuilds_every_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    con = _con()
    build_int_org_mentions(con)
    monkeypatch.setattr(fingerprint, "code_version", lambda: "another version")
    built = build_int_org_mentions(con)
    assert built.kept == 0 and len(built.rebuilt) == 4


def test_a_failed_build_leaves_the_previous_mentions_and_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    con = _con()
    build_int_org_mentions(con)
    before = _rows(con)
    _flow(con, 7, "council_spend")

    def broken(parts: list[str]) -> str:
        return "SELECT no_such_column FROM range(1)"

    monkeypatch.setattr(mentions_module, "mentions_sql", broken)
    with pytest.raises(duckdb.BinderException):
        build_int_org_mentions(con)
    assert _rows(con) == before
    monkeypatch.undo()
    built = build_int_org_mentions(con)
    assert built.rebuilt == ["intermediate.int_money_flows:council_spend"]
    assert _rows(con) == _from_scratch(con)
