"""Control marts: share ranges multiply along chains, paths add up, cycles stop and are flagged."""

from decimal import Decimal

import duckdb

from assets.common.tables import create_table, ensure_schemas
from assets.intermediate.int_control_edges import INT_CONTROL_EDGES
from assets.marts.control import ULTIMATE_SQL


def _edges(rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    """rows: (controller, controlled, share_min, share_max, min_excl, max_excl, kind)."""
    con = duckdb.connect()
    ensure_schemas(con)
    create_table(con, INT_CONTROL_EDGES, replace=True)
    for n, (ctrl, sub, lo, hi, lo_x, hi_x, kind) in enumerate(rows):
        con.execute(
            f"INSERT INTO {INT_CONTROL_EDGES.qualified} VALUES "
            "(?, ?, ?, ?, ?, ?, NULL, 'ownership', true, ?, ?, ?, ?, NULL, NULL, 't', 'f', ?)",
            [f"e{n}", ctrl, ctrl, kind, sub, sub, lo, hi, lo_x, hi_x, str(n)],
        )
    return con


def _ultimate(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], tuple]:
    rows = con.execute(
        f"SELECT entity_id, owner_id, share_min, share_max, min_exclusive, max_exclusive, "
        f"depth, direct, cycle, paths FROM ({ULTIMATE_SQL})"
    ).fetchall()
    return {(r[0], r[1]): r[2:] for r in rows}


def test_shares_multiply_along_a_chain() -> None:
    got = _ultimate(
        _edges(
            [
                ("P", "H", 75, 75, False, False, "person"),
                ("H", "S", 60, 60, False, False, "organisation"),
            ]
        )
    )
    lo, hi, _, _, depth, direct, cycle, paths = got[("S", "P")]
    assert (lo, hi) == (Decimal("45"), Decimal("45"))
    assert depth == 2 and not direct and not cycle
    assert paths == ["S <- H <- P"]
    assert ("S", "H") not in got  # H is owned: not an ultimate owner of S
    assert got[("H", "P")][:2] == (Decimal("75"), Decimal("75"))


def test_ranges_and_open_bounds_multiply() -> None:
    got = _ultimate(
        _edges(
            [
                ("P", "H", 50, 75, True, False, "person"),
                ("H", "S", 60, 60, False, False, "organisation"),
            ]
        )
    )
    lo, hi, lo_x, hi_x, *_ = got[("S", "P")]
    assert (lo, hi) == (Decimal("30"), Decimal("45"))
    assert lo_x is True and hi_x is False


def test_unknown_share_stays_unknown() -> None:
    got = _ultimate(
        _edges(
            [
                ("P", "H", None, None, False, False, "person"),
                ("H", "S", 60, 60, False, False, "organisation"),
            ]
        )
    )
    assert got[("S", "P")][:2] == (None, None)


def test_two_chains_to_one_owner_add_up() -> None:
    got = _ultimate(
        _edges(
            [
                ("P", "S", 50, 50, False, False, "person"),
                ("P", "H", 100, 100, False, False, "person"),
                ("H", "S", 20, 20, False, False, "organisation"),
            ]
        )
    )
    lo, hi, _, _, depth, direct, _, paths = got[("S", "P")]
    assert (lo, hi) == (Decimal("70"), Decimal("70"))
    assert depth == 1 and direct
    assert sorted(paths) == ["S <- H <- P", "S <- P"]


def test_cycles_terminate_and_are_flagged() -> None:
    got = _ultimate(
        _edges(
            [
                ("A", "B", 50, 50, False, False, "organisation"),
                ("B", "A", 50, 50, False, False, "organisation"),
                ("A", "S", 100, 100, False, False, "organisation"),
            ]
        )
    )
    flagged = {k: v for k, v in got.items() if v[6]}
    assert flagged, "the loop A <-> B must be reported"
    assert all(k[0] in {"A", "B", "S"} for k in got)
    s_rows = [v for k, v in got.items() if k[0] == "S"]
    assert s_rows and all(v[6] for v in s_rows)  # every chain from S runs into the loop


def test_company_partnership_node_is_the_organisation_of_exactly_its_name() -> None:
    from assets.common.sql import install_macros
    from assets.intermediate.int_control_edges import PARTNERSHIP_NODES_SQL

    con = duckdb.connect()
    install_macros(con)
    con.execute("CREATE SCHEMA intermediate; CREATE SCHEMA staging")
    con.execute(
        "CREATE TABLE intermediate.int_org_identity (org_ref VARCHAR, org_id VARCHAR, "
        "name VARCHAR, names_seen VARCHAR[])"
    )
    con.execute(
        """INSERT INTO intermediate.int_org_identity VALUES
        ('GB-COH-1', 'GB-COH-1', 'Harbour Works Ltd', ['Harbour Works Ltd', 'HARBOUR WORKS']),
        ('XI-PIC-9', 'XI-PIC-9', 'Harbour Works', NULL),          -- weak id: the strong one wins
        ('XI-PIC-7', 'XI-PIC-7', 'Lone Pic Ltd', NULL),           -- only a weak id: taken
        ('GB-COH-2', 'GB-COH-2', 'Twin Ltd', NULL),
        ('GB-CHC-3', 'GB-CHC-3', 'Twin Limited', NULL),           -- two strong ids: no guess
        ('FTNAME-X', 'FTNAME-X', 'Nameonly Ltd', NULL),           -- name-based ids never count
        ('GB-COH-5', 'GB-COH-5', 'Board Trust', NULL)"""
    )
    con.execute(
        "CREATE TABLE staging.stg_governance_partnerships "
        "(partnership_id VARCHAR, name VARCHAR, legal_form VARCHAR)"
    )
    con.execute(
        """INSERT INTO staging.stg_governance_partnerships VALUES
        ('P1', 'Harbour Works Limited', 'company'), ('P2', 'Lone Pic', 'company'),
        ('P3', 'Twin', 'company'), ('P4', 'Nameonly', 'company'),
        ('P5', 'Board Trust', 'board'), ('P6', 'Nobody Ltd', 'company')"""
    )
    nodes = dict(
        con.execute(f"SELECT partnership_id, node_id FROM ({PARTNERSHIP_NODES_SQL})").fetchall()
    )
    assert nodes == {
        "P1": "GB-COH-1",
        "P2": "XI-PIC-7",
        "P3": "PARTNERSHIP:P3",
        "P4": "PARTNERSHIP:P4",
        "P5": "PARTNERSHIP:P5",
        "P6": "PARTNERSHIP:P6",
    }


def test_a_funders_evidence_names_each_source_once_in_order() -> None:
    from assets.intermediate.int_org_identity import INT_ORG_IDENTITY
    from assets.marts.control import PROJECT_CONTROL_SQL, ULTIMATE_CONTROLLERS
    from assets.marts.core import MONEY_FLOWS
    from assets.staging.stg_governance import STG_PROJECTS

    con = _edges([])
    for spec in (MONEY_FLOWS, STG_PROJECTS, INT_ORG_IDENTITY, ULTIMATE_CONTROLLERS):
        create_table(con, spec, replace=True)
    con.execute(
        f"INSERT INTO {STG_PROJECTS.qualified} (project_id, partnership_id, source_system, "
        "source_file, source_row, source_locator, file_sha256, loaded_at) "
        "VALUES ('P1', 'PARTNERSHIP:1', 'governance', 'g.csv', 1, 'row 1', 'x', now())"
    )
    # three flows of one funder in two (controller, basis) groups: the sources of the groups
    # overlap, and each group lists them in its own order
    for n, (system, controller) in enumerate(
        [("eu_kohesio", "C1"), ("eu_cordis", "C1"), ("eu_cordis", "C2")]
    ):
        con.execute(
            f"INSERT INTO {MONEY_FLOWS.qualified} (flow_id, flow_type, from_org_id, to_org_id, "
            "stream_id, controller_org_id, control_basis, funding_level, flow_date, "
            "amount_original, currency_original, source_system, source_file, source_row, "
            "source_record_id, project_id, amount_eur) VALUES (?, 'grant', 'F', 'R', 'S', ?, "
            "'managing_authority', 'eu', DATE '2024-01-01', 1, 'EUR', ?, 'f.csv', ?, ?, 'P1', 1)",
            [f"flow{n}", controller, system, n, str(n)],
        )
    evidence = con.execute(
        f"SELECT evidence FROM ({PROJECT_CONTROL_SQL}) WHERE control_basis = 'funder'"
    ).fetchall()
    assert evidence == [("3 flow(s) in marts.money_flows from eu_cordis, eu_kohesio",)]
