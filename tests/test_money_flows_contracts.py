"""`FLOWS_FROM_CONTRACTS`: the equi-join form gives the rows the OR-ed NOT EXISTS defined.

Edge cases on three-row fixtures: a contract already paid through council spend (matched by
reference or by normalised name, on either side) is left out; the same contract published by
OCDS and TED is one flow; an award to several suppliers is split between them.
"""

from decimal import Decimal

import duckdb
import pytest

from assets.common.sql import install_macros
from assets.common.tables import TableSpec, create_table
from assets.intermediate.int_funding_awards import INT_FUNDING_AWARDS
from assets.intermediate.int_money_flows import FLOWS_FROM_CONTRACTS
from assets.intermediate.int_procurement_awards import INT_PROCUREMENT_AWARDS
from assets.raw.reference import FUNDERS, ORGID_PREFIXES
from assets.staging.stg_governance import STG_PROJECTS

# The definition as first written (quadratic: OR-ed conditions cannot be hash-joined).
_OLD_ANTI_JOIN = """
  AND NOT EXISTS (
    SELECT 1 FROM payments p
    WHERE (p.recipient_org_ref = c.supplier_org_ref OR p.payee_key = ft_name_key(c.supplier_name))
      AND (p.funder_org_ref = c.buyer_org_ref OR p.payer_key = ft_name_key(c.buyer_name))
  )
"""
_NEW_ANTI_JOIN = "  AND c.contract_award_id NOT IN (SELECT contract_award_id FROM paid)\n"


def _defaults(spec: TableSpec) -> dict[str, object]:
    by_type = {"VARCHAR": "x", "DATE": "2024-01-15", "BIGINT": 1, "BOOLEAN": False}
    return {c.name: by_type.get(c.type, 0) for c in spec.columns if not c.nullable}


def _insert(con: duckdb.DuckDBPyConnection, spec: TableSpec, **values: object) -> None:
    row = {**_defaults(spec), **values}
    names = ", ".join(row)
    con.execute(
        f"INSERT INTO {spec.qualified} ({names}) VALUES ({', '.join('?' * len(row))})",
        list(row.values()),
    )


def _contract(con: duckdb.DuckDBPyConnection, cid: str, **values: object) -> None:
    source, process, award, _ = cid.split(":")
    base: dict[str, object] = {
        "contract_award_id": cid,
        "source_system": source,
        "process_id": process,
        "award_id": award,
        "award_date": "2024-03-01",
        "value_original": Decimal("1000"),
        "currency_original": "EUR",
        "value_eur": Decimal("1000"),
        "fx_rate": Decimal("1"),
    }
    _insert(con, INT_PROCUREMENT_AWARDS, **{**base, **values})


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    install_macros(con)
    for spec in (INT_FUNDING_AWARDS, INT_PROCUREMENT_AWARDS, FUNDERS, ORGID_PREFIXES, STG_PROJECTS):
        create_table(con, spec, replace=True)
    # council payments: HBT council -> Lumen Ltd (by reference), and to "Brightway Services"
    # by name only, with the council published by another reference
    _insert(
        con, INT_FUNDING_AWARDS, award_id="council_spend:1", award_type="payment",
        funder_org_ref="GB-LAE-HBT", funder_name="Harbourton City Council",
        recipient_org_ref="GB-COH-00000001", recipient_name="Lumen Ltd",
    )  # fmt: skip
    _insert(
        con, INT_FUNDING_AWARDS, award_id="council_spend:2", award_type="payment",
        funder_org_ref="FTNAME-COUNCIL", funder_name="Harbourton City Council",
        recipient_org_ref="FTNAME-BRIGHTWAY", recipient_name="Brightway Services",
    )  # fmt: skip
    # a grant between the same parties never hides a contract: only payments do
    _insert(
        con, INT_FUNDING_AWARDS, award_id="360giving:1", award_type="grant",
        funder_org_ref="GB-LAE-HBT", funder_name="Harbourton City Council",
        recipient_org_ref="GB-COH-00000003", recipient_name="Unpaid Works Ltd",
    )  # fmt: skip
    # paid by reference on both sides -> excluded
    _contract(
        con, "ocds:ocds-1:a1:GB-COH-00000001", buyer_org_ref="GB-LAE-HBT",
        buyer_name="Harbourton City Council", supplier_org_ref="GB-COH-00000001",
        supplier_name="Lumen Limited",
    )  # fmt: skip
    # paid by name on both sides (different references, same normalised names) -> excluded
    _contract(
        con, "ted:ted-9:a1:GB-COH-00000002", buyer_org_ref="GB-GOR-HBT",
        buyer_name="HARBOURTON CITY COUNCIL", supplier_org_ref="GB-COH-00000002",
        supplier_name="Brightway Services",
    )  # fmt: skip
    # supplier paid, but by another buyer -> kept
    _contract(
        con, "ocds:ocds-2:a1:GB-COH-00000001", buyer_org_ref="GB-GOR-DFT",
        buyer_name="Department for Transport", supplier_org_ref="GB-COH-00000001",
        supplier_name="Lumen Ltd", value_original=Decimal("700"), value_eur=Decimal("700"),
    )  # fmt: skip
    # published by OCDS and TED (same buyer, supplier, date, value, currency) -> one flow (OCDS)
    for cid in ("ocds:ocds-3:a1:GB-COH-00000003", "ted:ted-3:a1:GB-COH-00000003"):
        _contract(
            con, cid, buyer_org_ref="GB-LAE-HBT", buyer_name="Harbourton City Council",
            supplier_org_ref="GB-COH-00000003", supplier_name="Unpaid Works Ltd",
            value_original=Decimal("500"), value_eur=Decimal("500"),
        )  # fmt: skip
    # one award, three suppliers -> 300 / 3 each
    for n in (4, 5, 6):
        _contract(
            con, f"ocds:ocds-4:a1:GB-COH-0000000{n}", buyer_org_ref="GB-LAE-HBT",
            buyer_name="Harbourton City Council", supplier_org_ref=f"GB-COH-0000000{n}",
            supplier_name=f"Joint Venture Partner {n}", value_original=Decimal("300"),
            value_eur=Decimal("300"),
        )  # fmt: skip
    return con


def _flows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(f"SELECT * FROM ({sql}) ORDER BY flow_id").fetchall()


def test_rewrite_matches_the_or_semantics(con: duckdb.DuckDBPyConnection) -> None:
    assert _NEW_ANTI_JOIN in FLOWS_FROM_CONTRACTS
    paid_ctes = FLOWS_FROM_CONTRACTS[FLOWS_FROM_CONTRACTS.index("keyed AS") :]
    paid_ctes = paid_ctes[: paid_ctes.index("levels AS")]
    old_sql = FLOWS_FROM_CONTRACTS.replace(paid_ctes, "").replace(_NEW_ANTI_JOIN, _OLD_ANTI_JOIN)
    assert "paid" not in old_sql
    assert _flows(con, FLOWS_FROM_CONTRACTS) == _flows(con, old_sql)


def test_contract_flows_edge_cases(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute(
        f"SELECT flow_id, to_org_ref, amount_eur, amount_original "
        f"FROM ({FLOWS_FROM_CONTRACTS}) ORDER BY flow_id"
    ).fetchall()
    assert [r[0] for r in rows] == [
        "ocds:ocds-2:a1:GB-COH-00000001",  # same supplier, other buyer: not paid
        "ocds:ocds-3:a1:GB-COH-00000003",  # OCDS copy kept, TED copy dropped
        "ocds:ocds-4:a1:GB-COH-00000004",
        "ocds:ocds-4:a1:GB-COH-00000005",
        "ocds:ocds-4:a1:GB-COH-00000006",
    ]
    assert {r[2] for r in rows[2:]} == {Decimal("100")}
    assert {r[3] for r in rows[2:]} == {Decimal("100")}
    assert rows[1][2] == Decimal("500")
