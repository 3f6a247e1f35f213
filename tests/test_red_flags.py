"""Red flags on tiny fixtures: common controller of several bidders, supplier registered after
the tender. Every upstream table starts empty; each test adds the few rows it needs."""

import datetime as dt
from typing import Any

import duckdb
import pytest

from assets.common.tables import TableSpec, create_table, ensure_schemas
from assets.intermediate.int_control_edges import INT_CONTROL_EDGES
from assets.intermediate.int_org_identity import INT_ORG_IDENTITY
from assets.intermediate.int_procurement_awards import INT_PROCUREMENT_AWARDS
from assets.marts import red_flags as red_flags_module
from assets.marts.core import MONEY_FLOWS
from assets.marts.red_flags import RED_FLAGS, build_red_flags
from assets.staging import stg_bods, stg_governance, stg_ocds

UPSTREAM = (
    INT_CONTROL_EDGES,
    INT_PROCUREMENT_AWARDS,
    INT_ORG_IDENTITY,
    MONEY_FLOWS,
    stg_governance.STG_PROJECTS,
    stg_ocds.STG_PARTIES,
    stg_ocds.STG_TENDERS,
    stg_bods.STG_ENTITIES,
)
_DEFAULTS: dict[str, Any] = {
    "VARCHAR": "x",
    "BIGINT": 0,
    "BOOLEAN": False,
    "DATE": dt.date(2024, 1, 1),
    "TIMESTAMP": dt.datetime(2024, 1, 1),
    "TIMESTAMPTZ": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
}


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    ensure_schemas(con)
    for spec in UPSTREAM:
        create_table(con, spec, replace=True)
    return con


def insert(con: duckdb.DuckDBPyConnection, spec: TableSpec, **values: Any) -> None:
    """One row: given values, a placeholder for other NOT NULL columns, NULL elsewhere."""
    row = {}
    for c in spec.columns:
        if c.name in values:
            row[c.name] = values[c.name]
        elif not c.nullable:
            row[c.name] = [] if c.type.endswith("[]") else _DEFAULTS.get(c.type, 0)
        else:
            row[c.name] = None
    marks = ", ".join("?" for _ in row)
    con.execute(f"INSERT INTO {spec.qualified} ({', '.join(row)}) VALUES ({marks})", list(row.values()))  # fmt: skip


def owns(con: duckdb.DuckDBPyConnection, owner: str, owned: str, share: float | None) -> None:
    n = con.execute(f"SELECT count(*) FROM {INT_CONTROL_EDGES.qualified}").fetchall()[0][0]
    insert(
        con, INT_CONTROL_EDGES, edge_id=f"e{n}", controller_id=owner, controller_name=owner,
        controller_kind="person" if owner.startswith("P") else "organisation",
        controlled_id=owned, controlled_name=owned, control_basis="ownership", is_ownership=True,
        share_min=share, share_max=share, source_system="bods", source_file="bods/t.json",
        source_record_id=f"s{n}",
    )  # fmt: skip


def bidder(con: duckdb.DuckDBPyConnection, ocid: str, ref: str, roles: list[str] | None = None) -> None:  # fmt: skip
    insert(
        con, stg_ocds.STG_PARTIES, ocid=ocid, party_key=ref, party_name=f"{ref} Ltd",
        party_roles=roles or ["tenderer"], party_origin="parties", party_org_ref=ref,
        source_system="ocds", source_file="ocds/t.json", source_row=1,
    )  # fmt: skip


def award(
    con: duckdb.DuckDBPyConnection, process: str, supplier: str, award_date: dt.date | None,
    source_system: str = "ocds",
) -> str:  # fmt: skip
    cid = f"{source_system}:{process}:A1:{supplier}"
    insert(
        con, INT_PROCUREMENT_AWARDS, contract_award_id=cid, process_id=process, award_id="A1",
        buyer_org_ref="GB-LAE-BUY", supplier_org_ref=supplier, supplier_name=f"{supplier} Ltd",
        award_date=award_date, value_eur=1000, source_system=source_system,
        source_file=f"{source_system}/t.json", source_row=1, source_record_id=f"{process}-award",
    )  # fmt: skip
    return cid


def tender(
    con: duckdb.DuckDBPyConnection, ocid: str, start: dt.date | None, end: dt.date | None
) -> None:
    insert(
        con, stg_ocds.STG_TENDERS, ocid=ocid, tender_tenderperiod_startdate=start,
        tender_tenderperiod_enddate=end, tender_items_count=0, source_system="ocds",
        source_file="ocds/t.json", source_row=1,
    )  # fmt: skip


def founded(con: duckdb.DuckDBPyConnection, org_ref: str, date: dt.date | None) -> None:
    insert(
        con, stg_bods.STG_ENTITIES, statement_id=f"st-{org_ref}", chain_id=org_ref,
        bods_version="0.4", org_ref=org_ref, org_ref_basis="GB-COH", founding_date=date,
        founding_date_published=str(date) if date else None, version_status="current",
        source_system="bods", source_file="bods/t.json", source_row=1,
    )  # fmt: skip


def flags(con: duckdb.DuckDBPyConnection, flag_type: str) -> list[dict[str, Any]]:
    build_red_flags(con)
    cur = con.execute(
        f"SELECT * FROM {RED_FLAGS.qualified} WHERE flag_type = ? ORDER BY flag_id", [flag_type]
    )
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


D = dt.date

# --------------------------------------------------------------------------- common controller


def test_one_owner_behind_two_bidders_is_flagged_with_paths_and_shares(con) -> None:
    bidder(con, "ocds-T1", "GB-COH-A")
    bidder(con, "ocds-T1", "GB-COH-B")
    bidder(con, "ocds-T1", "GB-COH-C")  # owned by someone else
    owns(con, "P-1", "GB-COH-A", 60)
    owns(con, "P-1", "GB-COH-H", 100)
    owns(con, "GB-COH-H", "GB-COH-B", 50)
    owns(con, "P-2", "GB-COH-C", 100)
    award(con, "ocds-T1", "GB-COH-A", D(2024, 5, 1))
    (flag,) = flags(con, "common_controller_bidders")
    assert flag["flag_id"] == "common_controller_bidders:ocds-T1:P-1"
    assert (flag["subject_type"], flag["subject_id"], flag["related_party_id"]) == (
        "tender", "ocds-T1", "P-1",
    )  # fmt: skip
    assert flag["severity"] == "high"
    assert flag["path"] == (
        "GB-COH-A <- P-1 (ownership 60%) | "
        "GB-COH-B <- GB-COH-H (ownership 50%) <- P-1 (ownership 100%)"
    )
    # shares multiply along the chain: 100% of a holding that owns 50% = 50%
    assert "GB-COH-A Ltd (owns 60%), GB-COH-B Ltd (owns 50%)" in flag["description"]
    assert flag["amount_eur"] == 1000
    assert flag["evidence"] == [
        "bods:bods/t.json:s0", "bods:bods/t.json:s1", "bods:bods/t.json:s2",
        "ocds:ocds/t.json:ocds-T1/parties/GB-COH-A", "ocds:ocds/t.json:ocds-T1/parties/GB-COH-B",
    ]  # fmt: skip


def test_bidders_with_different_controllers_are_not_flagged(con) -> None:
    bidder(con, "ocds-T1", "GB-COH-A")
    bidder(con, "ocds-T1", "GB-COH-B")
    owns(con, "P-1", "GB-COH-A", 100)
    owns(con, "P-2", "GB-COH-B", 100)
    # the same owner behind bidders of two different tenders is not a finding either
    bidder(con, "ocds-T2", "GB-COH-D")
    owns(con, "P-1", "GB-COH-D", 100)
    # nor a controlled company that is only a supplier or buyer, not a tenderer
    bidder(con, "ocds-T1", "GB-COH-E", roles=["supplier"])
    owns(con, "P-2", "GB-COH-E", 100)
    assert flags(con, "common_controller_bidders") == []


def test_a_bidder_owning_another_bidder_is_flagged(con) -> None:
    bidder(con, "ocds-T1", "GB-COH-A")
    bidder(con, "ocds-T1", "GB-COH-B")
    owns(con, "GB-COH-A", "GB-COH-B", None)  # share unknown
    (flag,) = flags(con, "common_controller_bidders")
    assert flag["related_party_id"] == "GB-COH-A"
    assert (
        "GB-COH-A Ltd (itself), GB-COH-B Ltd (controls it, share unknown)" in (flag["description"])
    )
    assert flag["path"] == "GB-COH-A | GB-COH-B <- GB-COH-A (ownership)"


def test_bidders_resolve_to_canonical_ids(con) -> None:
    bidder(con, "ocds-T1", "gb-coh-a-as-published")
    bidder(con, "ocds-T1", "GB-COH-B")
    insert(con, INT_ORG_IDENTITY, org_ref="gb-coh-a-as-published", org_id="GB-COH-A")
    owns(con, "P-1", "GB-COH-A", 30)
    owns(con, "P-1", "GB-COH-B", 30)
    (flag,) = flags(con, "common_controller_bidders")
    assert flag["path"].startswith("GB-COH-A <- P-1")


# --------------------------------------------------------------------------- registered after


def test_supplier_founded_after_the_tender_opened_is_flagged(con) -> None:
    cid = award(con, "ocds-T1", "GB-COH-NEW", D(2024, 9, 19))
    tender(con, "ocds-T1", D(2024, 7, 1), D(2024, 8, 12))
    founded(con, "GB-COH-NEW", D(2024, 7, 22))
    (flag,) = flags(con, "supplier_registered_after_tender")
    assert (flag["subject_id"], flag["related_party_id"]) == (cid, "GB-COH-NEW")
    assert flag["severity"] == "medium"  # it existed when the contract was awarded
    assert flag["description"] == (
        "Supplier GB-COH-NEW Ltd of ocds-T1 was registered on 2024-07-22, after the tender date "
        "2024-07-01 (tender period start); awarded on 2024-09-19"
    )
    assert flag["path"] == "GB-LAE-BUY -> GB-COH-NEW"
    assert flag["evidence"] == [
        "bods:bods/t.json:st-GB-COH-NEW", "ocds:ocds/t.json:ocds-T1-award",
        "ocds:ocds/t.json:ocds-T1/tender",
    ]  # fmt: skip


def test_supplier_founded_before_the_tender_is_not_flagged(con) -> None:
    award(con, "ocds-T1", "GB-COH-OLD", D(2024, 9, 19))
    tender(con, "ocds-T1", D(2024, 7, 1), None)
    founded(con, "GB-COH-OLD", D(2024, 7, 1))  # the same day is not after
    assert flags(con, "supplier_registered_after_tender") == []


@pytest.mark.parametrize("case", ["no founding date", "no entity", "no dates at all"])
def test_missing_dates_never_flag(con, case: str) -> None:
    award(con, "ocds-T1", "GB-COH-X", None if case == "no dates at all" else D(2024, 9, 19))
    if case != "no dates at all":
        tender(con, "ocds-T1", D(2024, 7, 1), None)
    if case == "no founding date":
        founded(con, "GB-COH-X", None)
    elif case == "no dates at all":
        founded(con, "GB-COH-X", D(2025, 1, 1))
    assert flags(con, "supplier_registered_after_tender") == []


def test_without_a_tender_period_the_award_date_decides(con) -> None:
    # TED publishes no tender period: a winner registered after the award is high severity
    award(con, "999101-2024", "GB-COH-NEW", D(2024, 6, 14), source_system="ted")
    tender(con, "999101-2024", D(2020, 1, 1), None)  # an OCDS tender of the same id is ignored
    founded(con, "GB-COH-NEW", D(2024, 6, 20))
    # the tender deadline counts when the period has no start
    award(con, "ocds-T2", "GB-COH-LATE", D(2024, 9, 1))
    tender(con, "ocds-T2", None, D(2024, 8, 12))
    founded(con, "GB-COH-LATE", D(2024, 8, 13))
    got = {f["related_party_id"]: f for f in flags(con, "supplier_registered_after_tender")}
    assert got["GB-COH-NEW"]["severity"] == "high"
    assert got["GB-COH-NEW"]["description"].endswith(
        "after the tender date 2024-06-14 (award date) and after the award date 2024-06-14"
    )
    assert got["GB-COH-LATE"]["severity"] == "medium"
    assert "2024-08-12 (tender period end)" in got["GB-COH-LATE"]["description"]


def test_earliest_founding_date_of_one_organisation_wins(con) -> None:
    # two registers disagree: only a date after the tender in both would be a finding
    award(con, "ocds-T1", "GB-COH-X", D(2024, 9, 19))
    tender(con, "ocds-T1", D(2024, 7, 1), None)
    founded(con, "GB-COH-X", D(2024, 7, 22))
    insert(
        con, stg_bods.STG_ENTITIES, statement_id="st-other", chain_id="c2", bods_version="0.3",
        org_ref="gb-coh-x-other", org_ref_basis="GB-COH", founding_date=D(2019, 1, 1),
        version_status="current", source_system="bods", source_file="bods/u.json", source_row=1,
    )  # fmt: skip
    insert(con, INT_ORG_IDENTITY, org_ref="gb-coh-x-other", org_id="GB-COH-X")
    assert flags(con, "supplier_registered_after_tender") == []


def flow(con: duckdb.DuckDBPyConnection, flow_id: str, src: str, dst: str, eur: float, day: int) -> None:  # fmt: skip
    insert(
        con, MONEY_FLOWS, flow_id=flow_id, flow_type="grant", from_org_id=src, from_name=src,
        to_org_id=dst, to_name=dst, amount_eur=eur, flow_date=dt.date(2024, 1, day),
        source_system="threesixty_giving", source_file="grants/t.json", source_record_id=flow_id,
    )  # fmt: skip


def test_regranting_counts_each_onward_flow_once_even_with_equal_amounts(con) -> None:
    # two inbound grants pair with each onward grant; two onward grants share one amount
    flow(con, "in1", "FUNDER", "MID", 900, 1)
    flow(con, "in2", "FUNDER", "MID", 100, 2)
    flow(con, "out1", "MID", "R1", 250, 10)
    flow(con, "out2", "MID", "R2", 250, 11)
    flow(con, "out3", "MID", "R3", 40, 12)
    [row] = flags(con, "regranting_double_count")
    assert row["subject_id"] == "MID"
    assert float(row["amount_eur"]) == 540
    assert "(3 recipients)" in row["path"]


# --------------------------------------------------------------------------- by flag type


def _every_flag(con: duckdb.DuckDBPyConnection) -> None:
    """Inputs that raise flags of several types: bidders under one owner, a single bidder, a
    late-founded supplier, regranting."""
    owns(con, "P1", "GB-COH-B1", 60)
    owns(con, "P1", "GB-COH-B2", 60)
    bidder(con, "ocds-1", "GB-COH-B1")
    bidder(con, "ocds-1", "GB-COH-B2")
    award(con, "ocds-1", "GB-COH-B1", D(2024, 5, 1))
    tender(con, "ocds-1", D(2024, 3, 1), None)
    founded(con, "GB-COH-B1", D(2024, 4, 1))
    con.execute(f"UPDATE {INT_PROCUREMENT_AWARDS.qualified} SET number_of_tenders = 1")
    flow(con, "in1", "FUNDER", "MID", 900, 1)
    flow(con, "out1", "MID", "R1", 250, 10)


def test_each_flag_type_is_a_slice_and_together_they_are_the_whole_query(con) -> None:
    _every_flag(con)
    con.execute(red_flags_module._PCT_MACRO)
    cols = RED_FLAGS.select_list()
    whole = con.execute(f"SELECT {cols} FROM ({red_flags_module.RED_FLAGS_SQL})").fetchall()
    sliced = []
    for flag_type in red_flags_module.FLAG_CTES:
        rows = con.execute(f"SELECT {cols} FROM ({red_flags_module.flag_sql(flag_type)})")
        sliced += rows.fetchall()
    assert sorted(sliced, key=repr) == sorted(whole, key=repr)
    assert len({r[1] for r in whole}) >= 4  # the fixture raises flags of several types
    # a first build runs the whole query once (the slices share CTEs), and is the same
    built = build_red_flags(con)
    assert built.full
    table = con.execute(f"SELECT {cols} FROM {RED_FLAGS.qualified}").fetchall()
    assert sorted(table, key=repr) == sorted(whole, key=repr)


def test_new_money_flows_or_new_names_rebuild_only_the_flags_that_read_them(con) -> None:
    _every_flag(con)
    build_red_flags(con)
    flow(con, "out2", "MID", "R2", 40, 11)
    again = build_red_flags(con)
    assert sorted(again.rebuilt) == ["common_controller_winner_funder", "regranting_double_count"]
    # identity's names and evidence change with every funding file; flags read its ids only,
    # and a reference that is its own organisation is the id it would be without a row
    insert(con, INT_ORG_IDENTITY, org_ref="GB-COH-B1", org_id="GB-COH-B1", name="B1 Ltd",
           match_method="identifier")  # fmt: skip
    assert build_red_flags(con).rebuilt == []
    con.execute(f"UPDATE {INT_ORG_IDENTITY.qualified} SET name = 'B1 Limited'")
    assert build_red_flags(con).rebuilt == []
    # a merge changes a canonical id: the flags reading ids redo, and equal the whole query
    insert(con, INT_ORG_IDENTITY, org_ref="GB-COH-B2", org_id="GB-COH-B1", name="B2 Ltd",
           match_method="identifier")  # fmt: skip
    redone = build_red_flags(con).rebuilt
    assert "common_controller_bidders" in redone and "regranting_double_count" not in redone
    cols = RED_FLAGS.select_list()
    whole = con.execute(f"SELECT {cols} FROM ({red_flags_module.RED_FLAGS_SQL})").fetchall()
    table = con.execute(f"SELECT {cols} FROM {RED_FLAGS.qualified}").fetchall()
    assert sorted(table, key=repr) == sorted(whole, key=repr)
