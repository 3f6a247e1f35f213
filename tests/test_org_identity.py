"""int_org_identity: identifiers first; a name-only reference merges only when unambiguous."""

import duckdb

from assets.common.sql import install_macros
from assets.common.tables import create_table, ensure_schemas
from assets.intermediate.int_money_flows import INT_MONEY_FLOWS
from assets.intermediate.int_org_identity import build_int_org_identity
from assets.raw.reference import ORGID_PREFIXES, SHIPPED_DIR, load_reference_csv


def _flow(con: duckdb.DuckDBPyConnection, n: int, to_ref: str, to_name: str) -> None:
    con.execute(
        f"INSERT INTO {INT_MONEY_FLOWS.qualified} (flow_id, flow_type, from_org_ref, from_name, "
        "to_org_ref, to_name, to_kind, flow_date, amount_original, currency_original, "
        "funding_level, controller_org_ref, controller_name, control_basis, source_system, "
        "source_file, source_row, source_record_id) VALUES (?, 'grant', 'GB-LAE-HBT', "
        "'Harbourton City Council', ?, ?, 'organisation', DATE '2024-01-01', 1, 'GBP', 'local', "
        "'GB-LAE-HBT', 'Harbourton City Council', 'funder', 't', 'f', ?, ?)",
        [f"t:{n}", to_ref, to_name, n, str(n)],
    )


def _identity(rows: list[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    con = duckdb.connect()
    ensure_schemas(con)
    install_macros(con)
    load_reference_csv(con, ORGID_PREFIXES, "prefix", SHIPPED_DIR / "orgid_prefixes.csv", None)
    create_table(con, INT_MONEY_FLOWS, replace=True)
    for n, (ref, name) in enumerate(rows, start=1):
        _flow(con, n, ref, name)
    build_int_org_identity(con)
    out = {
        r[0]: (r[1], r[2])
        for r in con.execute(
            "SELECT org_ref, org_id, match_method FROM intermediate.int_org_identity"
        ).fetchall()
    }
    con.close()
    return out


def _name_ref(name: str) -> str:
    con = duckdb.connect()
    install_macros(con)
    row = con.execute("SELECT ft_name_org_id(?)", [name]).fetchone()
    con.close()
    assert row is not None
    return row[0]


def test_name_only_reference_joins_the_single_identified_namesake() -> None:
    name_ref = _name_ref("Tidewater Digital")
    got = _identity(
        [("GB-COH-09990002", "Tidewater Digital Ltd"), (name_ref, "TIDEWATER DIGITAL LIMITED")]
    )
    assert got[name_ref] == ("GB-COH-09990002", "exact name")
    assert got["GB-COH-09990002"] == ("GB-COH-09990002", "identifier")


def test_ambiguous_names_never_merge() -> None:
    name_ref = _name_ref("Harbour Works")
    got = _identity(
        [
            ("GB-COH-09990101", "Harbour Works Ltd"),
            ("GB-CHC-1199101", "Harbour Works"),
            (name_ref, "Harbour Works"),
        ]
    )
    assert got[name_ref] == (name_ref, "name")


def test_identified_organisations_never_merge_on_name() -> None:
    got = _identity([("GB-COH-09990101", "Same Name Ltd"), ("GB-CHC-1199101", "Same Name")])
    assert got["GB-COH-09990101"][0] == "GB-COH-09990101"
    assert got["GB-CHC-1199101"][0] == "GB-CHC-1199101"
