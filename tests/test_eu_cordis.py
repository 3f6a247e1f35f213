"""CORDIS raw parser (assets/raw/eu_cordis.py) and staging (assets/staging/stg_cordis.py).

Every test writes its own small files into `<tmp>/raw/eu_cordis/` and ingests them into a
DuckDB file in tmp_path with the same call the Dagster asset makes. Expected values are worked
out by hand from the fixture rows; the demo and real-data checks recompute counts and sums
with the csv module and Decimal, independently of the pipeline.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from assets.common.money import load_ecb_rates
from assets.common.tables import create_table, ensure_schemas, rebuild_table
from assets.intermediate.int_funding_awards import AWARD_COLUMNS, INT_FUNDING_AWARDS
from assets.raw.eu_cordis import (
    RAW_ORGANISATIONS,
    RAW_PROJECTS,
    SOURCE_SYSTEM,
    ingest_cordis,
)
from assets.raw.ingest import FILE_MANIFEST, QUARANTINE, IngestReport
from assets.raw.reference import (
    ECB_RATES,
    FUNDERS,
    ORGID_PREFIXES,
    SHIPPED_DIR,
    load_reference_csv,
)
from assets.staging import stg_cordis
from assets.staging.quarantine import STG_QUARANTINE
from assets.staging.stg_cordis import (
    STG_PARTICIPATIONS,
    STG_PROJECTS,
    build_stg_cordis_participations,
    build_stg_cordis_projects,
)

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO / "data" / "raw"

PROJECT_2021: list[str] = [
    "id", "acronym", "status", "title", "startDate", "endDate", "totalCost",
    "ecMaxContribution", "legalBasis", "topics", "ecSignatureDate", "frameworkProgramme",
    "masterCall", "subCall", "fundingScheme", "nature", "objective", "contentUpdateDate", "rcn",
    "grantDoi",
]  # fmt: skip
ORG_2021: list[str] = [
    "projectID", "projectAcronym", "organisationID", "vatNumber", "name", "shortName", "SME",
    "activityType", "street", "postCode", "city", "country", "nutsCode", "geolocation",
    "organizationURL", "contactForm", "contentUpdateDate", "rcn", "order", "role",
    "ecContribution", "netEcContribution", "totalCost", "endOfParticipation", "active",
]  # fmt: skip
# FP7 export (legacy layout): `reference` instead of `id`, `call`, coordinator columns
PROJECT_FP7: list[str] = [
    "rcn", "reference", "acronym", "status", "programme", "topics", "frameworkProgramme",
    "title", "startDate", "endDate", "projectUrl", "objective", "totalCost",
    "ecMaxContribution", "call", "fundingScheme", "coordinator", "coordinatorCountry",
    "participants", "participantCountries", "subjects",
]  # fmt: skip
# FP7 organisations: projectReference, PIC in `id`, contact person columns
ORG_FP7: list[str] = [
    "projectRcn", "projectReference", "projectAcronym", "role", "id", "name", "shortName",
    "activityType", "endOfParticipation", "ecContribution", "country", "street", "city",
    "postCode", "organizationUrl", "vatNumber", "contactForm", "contactType", "contactTitle",
    "contactFirstNames", "contactLastNames", "contactFunction", "contactTelephoneNumber",
    "contactFaxNumber", "contactEmail",
]  # fmt: skip

# --------------------------------------------------------------------------- helpers


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    d = tmp_path / "raw"
    (d / "eu_cordis").mkdir(parents=True)
    return d


@pytest.fixture
def con(tmp_path: Path):
    c = duckdb.connect(str(tmp_path / "build.duckdb"))
    ensure_schemas(c)
    yield c
    c.close()


def write_csv(
    path: Path,
    header: list[str],
    rows: list[dict[str, str]] | list[list[str]],
    *,
    bom: bool = False,
    quote_all: bool = False,
    delimiter: str = ";",
) -> Path:
    buf = io.StringIO()
    w = csv.writer(
        buf,
        delimiter=delimiter,
        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
        lineterminator="\r\n",
    )
    w.writerow(header)
    for r in rows:
        w.writerow([r.get(h, "") for h in header] if isinstance(r, dict) else r)
    data = buf.getvalue().encode("utf-8")
    path.write_bytes((b"\xef\xbb\xbf" + data) if bom else data)
    return path


def project(pid: str, **kw: str) -> dict[str, str]:
    row = {
        "id": pid,
        "acronym": f"ACR{pid}",
        "status": "SIGNED",
        "title": f"Project {pid}",
        "startDate": "2021-01-01",
        "endDate": "2023-12-31",
        "totalCost": "1000",
        "ecMaxContribution": "900",
        "topics": "TOPIC-1",
        "ecSignatureDate": "2020-11-15",
        "frameworkProgramme": "H2020",
        "fundingScheme": "RIA",
    }
    row.update(kw)
    return row


def org(pid: str, pic: str, role: str, ec: str, **kw: str) -> dict[str, str]:
    row = {
        "projectID": pid,
        "projectAcronym": f"ACR{pid}",
        "organisationID": pic,
        "name": f"Org {pic}",
        "SME": "false",
        "activityType": "PRC",
        "country": "UK",
        "role": role,
        "ecContribution": ec,
        "netEcContribution": ec,
        "totalCost": ec,
    }
    row.update(kw)
    return row


def ingest(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> tuple[IngestReport, list[str]]:
    log: list[str] = []
    report = ingest_cordis(con, raw_dir, log=log.append)
    return report, log


def load_references(con: duckdb.DuckDBPyConnection) -> None:
    load_reference_csv(con, ORGID_PREFIXES, "prefix", SHIPPED_DIR / "orgid_prefixes.csv", None)
    load_reference_csv(con, FUNDERS, "funder_id", SHIPPED_DIR / "funders.csv", None)
    create_table(con, ECB_RATES, replace=True)
    load_ecb_rates(con, ECB_RATES.qualified)


def stage(con: duckdb.DuckDBPyConnection) -> tuple[tuple[int, int], tuple[int, int]]:
    load_references(con)
    return build_stg_cordis_projects(con), build_stg_cordis_participations(con)


def rows(con: duckdb.DuckDBPyConnection, sql: str, *params: Any) -> list[dict[str, Any]]:
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def manifest(con: duckdb.DuckDBPyConnection, rel: str) -> dict[str, Any]:
    found = rows(con, f"SELECT * FROM {FILE_MANIFEST.qualified} WHERE source_file = ?", rel)
    assert len(found) == 1, found
    return found[0]


def quarantine_reasons(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, int], str]:
    return {
        (r["source_file"], r["source_row"]): r["reason"]
        for r in rows(
            con,
            f"SELECT source_file, source_row, reason FROM {STG_QUARANTINE.qualified} "
            "WHERE source_system = ?",
            SOURCE_SYSTEM,
        )
    }


def assert_reconciles(con: duckdb.DuckDBPyConnection) -> None:
    """Per file: raw rows = staged rows + rows quarantined by that file's staging table."""
    for raw, stg in ((RAW_PROJECTS, STG_PROJECTS), (RAW_ORGANISATIONS, STG_PARTICIPATIONS)):
        got = con.execute(
            f"""SELECT r.source_file, r.n, coalesce(s.n, 0), coalesce(q.n, 0)
            FROM (SELECT source_file, count(*) n FROM {raw.qualified} GROUP BY 1) r
            LEFT JOIN (SELECT source_file, count(*) n FROM {stg.qualified} GROUP BY 1) s USING (source_file)
            LEFT JOIN (SELECT source_file, count(*) n FROM {STG_QUARANTINE.qualified}
                       WHERE staging_table = '{stg.name}' GROUP BY 1) q USING (source_file)"""
        ).fetchall()
        for source_file, n_raw, n_staged, n_quarantined in got:
            assert n_raw == n_staged + n_quarantined, source_file


# --------------------------------------------------------------------------- raw parsing


def test_2021_layout_bom_quoted_semicolons_decimal_commas(con, raw_dir: Path) -> None:
    folder = raw_dir / "eu_cordis"
    write_csv(
        folder / "project.csv",
        PROJECT_2021,
        [
            project(
                "101",
                title="Ports; people and tides",
                totalCost="1234,5",
                ecMaxContribution="1000,25",
            ),
            project("102", objective='Line one;\nline "two"', totalCost="2000"),
            project("103", ecSignatureDate="", startDate="2022-02-01"),
        ],
        bom=True,
        quote_all=True,
    )
    write_csv(
        folder / "organization.csv",
        ORG_2021,
        [
            org("101", "999000001", "coordinator", "600,75", street="Quay 1; Building B"),
            org("101", "999000002", "participant", "399,5"),
            # three decimals: CORDIS has no thousands separator, so still a decimal comma
            org("102", "999000001", "participant", "1500,375"),
        ],
        bom=True,
    )
    report, _ = ingest(con, raw_dir)
    assert (report.files_failed, report.rows_loaded) == (0, 6)
    assert manifest(con, "eu_cordis/project.csv")["rows_in"] == 3
    raw = rows(con, f"SELECT * FROM {RAW_PROJECTS.qualified} ORDER BY source_row")
    assert [r["project_id"] for r in raw] == ["101", "102", "103"]  # BOM not in the first title
    assert raw[0]["title"] == "Ports; people and tides"
    assert raw[1]["objective"] == 'Line one;\nline "two"'
    assert raw[0]["total_cost"] == "1234,5"  # raw keeps the text as published
    assert {r["source_layout"] for r in raw} == {"cordis-2021"}
    street = con.execute(
        f"SELECT street FROM {RAW_ORGANISATIONS.qualified} WHERE source_row = 1"
    ).fetchone()
    assert street == ("Quay 1; Building B",)

    (p_staged, p_quarantined), (o_staged, o_quarantined) = stage(con)
    assert (p_staged, p_quarantined, o_staged, o_quarantined) == (3, 0, 3, 0)
    projects = {r["project_id"]: r for r in rows(con, f"SELECT * FROM {STG_PROJECTS.qualified}")}
    assert projects["101"]["total_cost"] == Decimal("1234.5")
    assert projects["101"]["ec_max_contribution"] == Decimal("1000.25")
    assert projects["101"]["programme"] == "H2020 / RIA"
    # award date: the signature date, else the start date
    assert str(projects["101"]["award_date"]) == "2020-11-15"
    assert projects["101"]["award_date_basis"] == "ecSignatureDate"
    assert (str(projects["103"]["award_date"]), projects["103"]["award_date_basis"]) == (
        "2022-02-01",
        "startDate",
    )
    parts = {
        r["participation_id"]: r for r in rows(con, f"SELECT * FROM {STG_PARTICIPATIONS.qualified}")
    }
    assert set(parts) == {
        "101:999000001:coordinator",
        "101:999000002:participant",
        "102:999000001:participant",
    }
    coord = parts["101:999000001:coordinator"]
    assert coord["ec_contribution"] == Decimal("600.75")
    assert coord["amount_eur"] == Decimal("600.75") and coord["currency_original"] == "EUR"
    assert coord["recipient_org_ref"] == "XI-PIC-999000001"
    assert (coord["funder_org_ref"], coord["funder_name"]) == ("XM-DAC-918", "European Commission")
    assert coord["funding_level"] == "eu"
    assert parts["101:999000002:participant"]["ec_contribution"] == Decimal("399.5")
    assert parts["102:999000001:participant"]["ec_contribution"] == Decimal("1500.375")
    assert_reconciles(con)


def test_file_kind_comes_from_the_header_not_the_name(con, raw_dir: Path) -> None:
    folder = raw_dir / "eu_cordis"
    # deliberately misleading names
    write_csv(folder / "project.csv", ORG_2021, [org("7", "999000007", "coordinator", "10")])
    write_csv(folder / "h2020_organization.csv", PROJECT_2021, [project("7")])
    write_csv(folder / "cordis-export.csv", PROJECT_2021, [project("8")], delimiter=",")
    report, _ = ingest(con, raw_dir)
    assert report.files_failed == 0
    by_table = {
        t.name: sorted(
            r[0] for r in con.execute(f"SELECT DISTINCT source_file FROM {t.qualified}").fetchall()
        )
        for t in (RAW_PROJECTS, RAW_ORGANISATIONS)
    }
    assert by_table == {
        "raw_cordis_projects": ["eu_cordis/cordis-export.csv", "eu_cordis/h2020_organization.csv"],
        "raw_cordis_organisations": ["eu_cordis/project.csv"],
    }


def test_fp7_legacy_layout(con, raw_dir: Path) -> None:
    folder = raw_dir / "eu_cordis"
    legacy_projects = [
        {"rcn": "90001", "reference": "200001", "acronym": "OLDPORT", "status": "CLOSED",
         "programme": "FP7-TRANSPORT", "frameworkProgramme": "FP7", "title": "Old port",
         "startDate": "2009-03-01", "endDate": "2012-02-29", "totalCost": "3000000,5",
         "ecMaxContribution": "2000000", "call": "FP7-SST-2008", "fundingScheme": "CP",
         "coordinator": "Org A", "coordinatorCountry": "UK"},
        {"rcn": "90002", "reference": "200002", "acronym": "OLDDOCK", "status": "CLOSED",
         "frameworkProgramme": "FP7", "title": "Old dock", "startDate": "2010-01-01",
         "totalCost": "10", "ecMaxContribution": "5", "fundingScheme": "CSA"},
        {"rcn": "90003", "reference": "200003", "acronym": "OLDQUAY", "frameworkProgramme": "FP7",
         "title": "Old quay", "startDate": "2011-01-01", "totalCost": "", "ecMaxContribution": ""},
    ]  # fmt: skip
    legacy_orgs = [
        {"projectRcn": "90001", "projectReference": "200001", "projectAcronym": "OLDPORT",
         "role": "coordinator", "id": "999100001", "name": "Org A", "activityType": "PUB",
         "endOfParticipation": "false", "ecContribution": "1250000,5", "country": "EL",
         "vatNumber": "123456789", "contactFirstNames": "Jane", "contactLastNames": "Doe",
         "contactTelephoneNumber": "+99 0000"},
        # no projectReference: linked through projectRcn
        {"projectRcn": "90001", "projectReference": "", "role": "participant", "id": "999100002",
         "name": "Org B", "ecContribution": "749999,5", "country": "UK"},
        # no PIC: a name-based id
        {"projectRcn": "90002", "projectReference": "200002", "role": "participant", "id": "",
         "name": "Harbour Friends Association", "ecContribution": "5", "country": "IE"},
    ]  # fmt: skip
    write_csv(folder / "cordis-fp7projects.csv", PROJECT_FP7, legacy_projects, bom=True)
    write_csv(folder / "cordis-fp7organizations.csv", ORG_FP7, legacy_orgs)
    report, _ = ingest(con, raw_dir)
    assert (report.files_failed, report.rows_loaded) == (0, 6)
    # contact persons are not copied: no such column in the raw table
    assert not {"contact_first_names", "contactfirstnames"} & set(RAW_ORGANISATIONS.column_names)
    assert "Jane" not in str(rows(con, f"SELECT * FROM {RAW_ORGANISATIONS.qualified}"))
    layouts = con.execute(
        f"SELECT DISTINCT source_layout FROM {RAW_ORGANISATIONS.qualified}"
    ).fetchall()
    assert layouts == [("cordis-legacy",)]

    (p_staged, _), (o_staged, o_quarantined) = stage(con)
    assert (p_staged, o_staged, o_quarantined) == (3, 3, 0)
    p = rows(con, f"SELECT * FROM {STG_PROJECTS.qualified} WHERE project_id = '200001'")[0]
    assert (p["call_id"], p["legal_basis"], p["programme"]) == (
        "FP7-SST-2008",
        "FP7-TRANSPORT",
        "FP7 / CP",
    )
    assert p["total_cost"] == Decimal("3000000.5")
    assert (str(p["award_date"]), p["award_date_basis"]) == ("2009-03-01", "startDate")
    parts = {
        r["participation_id"]: r for r in rows(con, f"SELECT * FROM {STG_PARTICIPATIONS.qualified}")
    }
    a = parts["200001:999100001:coordinator"]
    assert a["ec_contribution"] == Decimal("1250000.5")
    assert a["vat_number"] == "EL123456789"  # Greek VAT prefix from country EL
    assert a["country_iso"] == "GR"
    assert parts["200001:999100002:participant"]["ec_contribution"] == Decimal("749999.5")
    named = next(r for r in parts.values() if r["project_id"] == "200002")
    assert named["recipient_ref_basis"] == "name"
    assert named["recipient_org_ref"].startswith("FTNAME-")
    assert_reconciles(con)


def test_roles_flags_and_awards(con, raw_dir: Path) -> None:
    folder = raw_dir / "eu_cordis"
    write_csv(folder / "project.csv", PROJECT_2021, [project("300")])
    write_csv(
        folder / "organization.csv",
        ORG_2021,
        [
            org("300", "999000031", "COORDINATOR", "100", SME="true"),
            org("300", "999000032", "thirdparty", "20,5", SME=""),
            org("300", "999000033", "associatedPartner", "0", SME="false"),
        ],
    )
    ingest(con, raw_dir)
    stage(con)
    got = rows(
        con,
        f"SELECT role, is_coordinator, sme, ec_contribution FROM {STG_PARTICIPATIONS.qualified} "
        "ORDER BY organisation_pic",
    )
    assert got == [
        {
            "role": "coordinator",
            "is_coordinator": True,
            "sme": True,
            "ec_contribution": Decimal("100"),
        },
        {
            "role": "thirdParty",
            "is_coordinator": False,
            "sme": None,
            "ec_contribution": Decimal("20.5"),
        },
        {
            "role": "associatedPartner",
            "is_coordinator": False,
            "sme": False,
            "ec_contribution": Decimal("0"),
        },
    ]
    # one award per participation with a positive EU contribution, in the canonical shape
    rebuild_table(con, INT_FUNDING_AWARDS, stg_cordis.AWARDS_SQL)
    awards = rows(con, f"SELECT * FROM {INT_FUNDING_AWARDS.qualified} ORDER BY award_id")
    assert [a["award_id"] for a in awards] == [
        "eu_cordis:300:999000031:coordinator",
        "eu_cordis:300:999000032:thirdParty",
    ]
    assert list(awards[0]) == AWARD_COLUMNS
    a = awards[0]
    assert (a["award_type"], a["funder_org_ref"], a["controller_org_ref"], a["control_basis"]) == (
        "grant",
        "XM-DAC-918",
        "XM-DAC-918",
        "funder",
    )
    assert (a["project_ref"], a["programme"], a["funding_level"]) == ("300", "H2020 / RIA", "eu")
    assert a["amount_original"] == Decimal("100") and str(a["award_date"]) == "2020-11-15"


def test_staging_quarantines_with_reasons(con, raw_dir: Path) -> None:
    folder = raw_dir / "eu_cordis"
    write_csv(
        folder / "a_project.csv",
        PROJECT_2021,
        [
            project("400"),
            project("401", totalCost="lots"),
            project("402", startDate="", ecSignatureDate=""),
        ],
    )
    write_csv(folder / "b_project.csv", PROJECT_2021, [project("400", title="copy")])
    write_csv(
        folder / "c_organization.csv",
        ORG_2021,
        [
            org("400", "999000041", "participant", "10"),  # good
            org("499", "999000042", "participant", "10"),  # unknown project
            org("400", "999000043", "participant", "ten"),  # unparseable amount
        ],
    )
    write_csv(
        folder / "d_organization.csv",
        ORG_2021,
        [
            org("400", "", "participant", "10", name=""),  # no organisation at all
            org("400", "999000041", "participant", "10"),  # duplicate of c row 1
            org("402", "999000044", "participant", "10"),  # project without any date
        ],
    )
    ingest(con, raw_dir)
    (p_staged, p_q), (o_staged, o_q) = stage(con)
    assert (p_staged, p_q, o_staged, o_q) == (2, 2, 1, 5)
    q = quarantine_reasons(con)
    assert (
        "totalCost" in q[("eu_cordis/a_project.csv", 2)]
        and "lots" in q[("eu_cordis/a_project.csv", 2)]
    )
    dup = q[("eu_cordis/b_project.csv", 1)]
    assert "duplicate project id 400" in dup and "a_project.csv" in dup
    assert q[("eu_cordis/c_organization.csv", 2)].startswith("unknown project id 499")
    assert q[("eu_cordis/c_organization.csv", 3)] == "unparseable ecContribution: ten"
    assert q[("eu_cordis/d_organization.csv", 1)].startswith("missing organisation")
    assert (
        "duplicate participation 400:999000041:participant"
        in q[("eu_cordis/d_organization.csv", 2)]
    )
    assert "no ecSignatureDate or startDate" in q[("eu_cordis/d_organization.csv", 3)]
    assert_reconciles(con)


def test_unknown_layout_fails_alone_naming_the_columns(con, raw_dir: Path) -> None:
    folder = raw_dir / "eu_cordis"
    write_csv(folder / "project.csv", PROJECT_2021, [project("500")])
    write_csv(
        folder / "euroSciVoc.csv",
        [
            "euroSciVocCode",
            "euroSciVocPath",
            "euroSciVocTitle",
            "euroSciVocDescription",
            "projectID",
        ],
        [["/23", "/natural sciences", "natural sciences", "", "500"]],
    )
    write_csv(folder / "people.csv", ["projectID", "firstName", "lastName"], [["500", "A", "B"]])
    report, log = ingest(con, raw_dir)
    assert (report.files_failed, report.rows_loaded) == (2, 1)
    sci = manifest(con, "eu_cordis/euroSciVoc.csv")
    assert sci["status"] == "failed" and sci["rows_loaded"] == 0
    assert "eu_cordis/euroSciVoc.csv" in sci["message"]
    assert "euroSciVoc table" in sci["message"]  # names what it looks like
    people = manifest(con, "eu_cordis/people.csv")["message"]
    assert "eu_cordis/people.csv" in people and "unknown layout" in people
    # the unmapped required columns and the columns found are named
    assert "role" in people and "name (or organisationID)" in people
    assert "firstName" in people
    assert manifest(con, "eu_cordis/project.csv")["status"] == "loaded"
    assert any("FAILED eu_cordis/people.csv" in line for line in log)
    q = rows(
        con, f"SELECT * FROM {QUARANTINE.qualified} WHERE source_file = 'eu_cordis/people.csv'"
    )
    assert len(q) == 1 and q[0]["source_row"] is None


def test_broken_row_is_quarantined_with_its_row_number(con, raw_dir: Path) -> None:
    folder = raw_dir / "eu_cordis"
    write_csv(folder / "project.csv", PROJECT_2021, [project("600")])
    path = write_csv(
        folder / "organization.csv",
        ORG_2021,
        [org("600", "999000061", "coordinator", "1"), org("600", "999000062", "participant", "2")],
    )
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    # a row that lost its last three fields between the two good rows
    lines.insert(2, "600;ACR600;999000063;;Org X;;;;;;;;;;;;;;;participant;3;3\r\n")
    path.write_text("".join(lines), encoding="utf-8")
    ingest(con, raw_dir)
    m = manifest(con, "eu_cordis/organization.csv")
    assert (m["status"], m["rows_in"], m["rows_loaded"], m["rows_quarantined"]) == (
        "partial",
        3,
        2,
        1,
    )
    q = rows(
        con,
        f"SELECT source_row, source_locator, reason FROM {QUARANTINE.qualified} "
        "WHERE source_file = 'eu_cordis/organization.csv'",
    )
    assert q[0]["source_row"] == 2 and "line 3" in q[0]["source_locator"]
    assert "22 fields where the header has 25" in q[0]["reason"]
    assert [r[0] for r in con.execute(
        f"SELECT source_row FROM {RAW_ORGANISATIONS.qualified} ORDER BY 1").fetchall()] == [1, 3]  # fmt: skip


def test_xlsx_export_with_title_row(con, raw_dir: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl", reason="openpyxl (dev extra) writes the fixture")
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "projects"
    ws.append(["CORDIS - EU research projects under Horizon 2020"])
    ws.append(PROJECT_2021)
    for r in (project("701"), project("702", totalCost="5000.5"), project("703")):
        ws.append([float(r[h]) if h == "totalCost" else r.get(h, "") for h in PROJECT_2021])
    wb.save(raw_dir / "eu_cordis" / "cordis-h2020projects.xlsx")
    report, _ = ingest(con, raw_dir)
    assert (report.files_failed, report.rows_loaded) == (0, 3)
    got = rows(
        con,
        f"SELECT project_id, total_cost, source_locator FROM {RAW_PROJECTS.qualified} ORDER BY 1",
    )
    assert [(r["project_id"], r["total_cost"]) for r in got] == [
        ("701", "1000"),  # Excel's 1000.0 comes back as the integer it was
        ("702", "5000.5"),
        ("703", "1000"),
    ]
    assert got[0]["source_locator"] == "sheet 'projects' row 3"


def test_changed_file_replaces_rows_and_removed_file_leaves(con, raw_dir: Path) -> None:
    folder = raw_dir / "eu_cordis"
    p = write_csv(folder / "x.csv", PROJECT_2021, [project("800")])
    ingest(con, raw_dir)
    # the same file name now holds an organisation table: its project rows must go
    write_csv(p, ORG_2021, [org("800", "999000081", "coordinator", "1")])
    ingest(con, raw_dir)
    assert con.execute(f"SELECT count(*) FROM {RAW_PROJECTS.qualified}").fetchone() == (0,)
    assert con.execute(f"SELECT count(*) FROM {RAW_ORGANISATIONS.qualified}").fetchone() == (1,)
    p.unlink()
    ingest(con, raw_dir)
    for t in (RAW_PROJECTS, RAW_ORGANISATIONS):
        assert con.execute(f"SELECT count(*) FROM {t.qualified}").fetchone() == (0,)


# --------------------------------------------------------------------------- demo data


def _independent_demo() -> dict[str, Any]:
    """Counts and sums of the shipped demo files, read with csv + Decimal only."""
    folder = DEMO_DIR / "eu_cordis"

    def read(name: str) -> list[dict[str, str]]:
        with (folder / name).open(encoding="utf-8-sig", newline="") as fh:
            return list(csv.DictReader(fh, delimiter=";"))

    projects = read("h2020_project.csv")
    orgs = read("h2020_organization.csv")
    known = {p["id"] for p in projects}
    awarded = [
        Decimal(o["ecContribution"].replace(",", "."))
        for o in orgs
        if o["projectID"] in known and Decimal(o["ecContribution"].replace(",", ".")) > 0
    ]
    return {
        "projects": len(projects),
        "orgs": len(orgs),
        "orgs_unknown_project": sum(o["projectID"] not in known for o in orgs),
        "awards": len(awarded),
        "award_total": sum(awarded, Decimal(0)),
    }


def test_demo_files_reconcile(con) -> None:
    expected = _independent_demo()
    assert expected["awards"] == 6 and expected["orgs_unknown_project"] == 1  # the demo's story
    report, _ = ingest(con, DEMO_DIR)
    assert report.files_failed == 0
    assert report.rows_loaded == expected["projects"] + expected["orgs"]
    (p_staged, p_q), (o_staged, o_q) = stage(con)
    assert (p_staged, p_q) == (expected["projects"], 0)
    assert (o_staged, o_q) == (expected["orgs"] - 1, 1)
    rebuild_table(con, INT_FUNDING_AWARDS, stg_cordis.AWARDS_SQL)
    n, total = con.execute(
        f"SELECT count(*), sum(amount_eur) FROM {INT_FUNDING_AWARDS.qualified}"
    ).fetchone() or (0, 0)
    assert (n, total) == (expected["awards"], expected["award_total"])
    coord = con.execute(
        f"SELECT recipient_name, vat_number FROM {STG_PARTICIPATIONS.qualified} WHERE is_coordinator"
    ).fetchall()
    assert coord == [("HARBOURTON CITY COUNCIL", "GB999999973")]
    assert_reconciles(con)


def test_dagster_assets_materialize_and_gx_suites_pass(tmp_path: Path) -> None:
    import dagster as dg
    from dagster_duckdb import DuckDBResource

    from assets.raw import eu_cordis, reference
    from pipelines.quality import EXPECTATIONS_DIR, load_suite, run_suite
    from pipelines.resources import FundtraceSettings

    raw = tmp_path / "raw"
    shutil.copytree(DEMO_DIR / "eu_cordis", raw / "eu_cordis")
    db = tmp_path / "build.duckdb"
    result = dg.materialize(
        [
            reference.ref_orgid_prefixes,
            reference.ref_funders,
            reference.ref_ecb_rates,
            eu_cordis.raw_cordis,
            stg_cordis.stg_cordis_projects,
            stg_cordis.stg_cordis_participations,
        ],
        resources={
            "duckdb": DuckDBResource(database=str(db)),
            "fundtrace": FundtraceSettings(raw_dir=str(raw), marts_db=str(tmp_path / "m.duckdb")),
        },
    )
    assert result.success
    keys = {
        e.asset_key.to_user_string()
        for e in result.get_asset_materialization_events()
        if e.asset_key is not None
    }
    assert {
        "raw/raw_cordis_projects",
        "raw/raw_cordis_organisations",
        "staging/stg_cordis_projects",
        "staging/stg_cordis_participations",
    } <= keys
    con = duckdb.connect(str(db))
    try:
        for table in ("stg_cordis_projects", "stg_cordis_participations"):
            suite = load_suite(EXPECTATIONS_DIR / f"staging__{table}.json")
            outcome = run_suite(con, "staging", table, suite)
            assert outcome.errors == [], outcome.error_summary()
            assert outcome.passed, [e.label for e in outcome.expectations if e.failed]
    finally:
        con.close()


# --------------------------------------------------------------------------- real data

REALDATA = Path(
    os.environ.get("FUNDTRACE_REALDATA_DIR")
    or Path(__file__).resolve().parents[2] / "shared" / "realdata"
)


def _real_cordis_files() -> list[Path]:
    if not REALDATA.is_dir():
        return []
    return sorted(
        p
        for d in REALDATA.iterdir()
        if d.is_dir() and "cordis" in d.name.lower()
        for p in d.rglob("*")
        if p.is_file() and p.suffix.lower() in (".csv", ".xlsx")
    )


def _kind(names: set[str]) -> str:
    if "role" in names and names & {"projectid", "projectreference", "projectrcn"}:
        return "organisations"
    if {"acronym", "title"} <= names and names & {"id", "reference"}:
        return "projects"
    return "unknown"


def _independent_records(path: Path) -> tuple[list[str], list[list[str]]]:
    """(header, non-blank data records) with the csv module or openpyxl only."""
    if path.suffix.lower() == ".xlsx":
        openpyxl = pytest.importorskip("openpyxl", reason="openpyxl reads the XLSX sample")
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        for ws in wb.worksheets:
            table = [
                [
                    ""
                    if v is None
                    else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
                    for v in r
                ]
                for r in ws.iter_rows(values_only=True)
            ]
            for i, r in enumerate(table[:30]):
                if _kind({c.strip().lower() for c in r}) != "unknown":
                    return r, [x for x in table[i + 1 :] if any(v.strip() for v in x)]
        return [], []
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252")
    records = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    header = records[0] if records else []
    return header, [r for r in records[1:] if r and any(v.strip() for v in r)]


def _independent(path: Path) -> tuple[str, int, Decimal | None]:
    """(kind, data records, sum of well-formed ecContribution values)."""
    header, data = _independent_records(path)
    names = [h.strip().lower() for h in header]
    kind = _kind(set(names))
    if kind != "organisations" or "eccontribution" not in names:
        return kind, len(data), None
    i = names.index("eccontribution")
    total = Decimal(0)
    for r in data:
        if len(r) > len(names) and not any(v.strip() for v in r[len(names) :]):
            r = r[: len(names)]
        if len(r) == len(names) and r[i].strip():
            with contextlib.suppress(ArithmeticError):
                total += Decimal(r[i].strip().replace(",", "."))
    return kind, len(data), total


@pytest.mark.realdata
def test_real_cordis_files_reconcile(tmp_path: Path) -> None:
    files = _real_cordis_files()
    if not files:
        pytest.skip(f"no CORDIS CSV/XLSX samples under {REALDATA} (folders named *cordis*)")
    folder = tmp_path / "raw" / "eu_cordis"
    folder.mkdir(parents=True)
    for i, f in enumerate(files):  # never copied into the repo: linked into tmp only
        (folder / f"{i:02d}_{f.name}").symlink_to(f)
    con = duckdb.connect(str(tmp_path / "real.duckdb"))
    ensure_schemas(con)
    ingest_cordis(con, tmp_path / "raw", log=lambda _: None)
    stage(con)
    for i, f in enumerate(files):
        rel = f"eu_cordis/{i:02d}_{f.name}"
        kind, n_records, ec_total = _independent(f)
        m = manifest(con, rel)
        if kind == "unknown":
            assert m["status"] == "failed" and rel in m["message"], m
            continue
        assert m["rows_in"] == m["rows_loaded"] + m["rows_quarantined"] == n_records, (rel, m)
        if ec_total is not None:
            got = con.execute(
                f"SELECT sum({stg_cordis.cordis_amount_sql('ec_contribution')}) "
                f"FROM {RAW_ORGANISATIONS.qualified} WHERE source_file = ?",
                [rel],
            ).fetchone()
            assert ((got[0] if got else None) or Decimal(0)) == ec_total, rel
    assert_reconciles(con)
    con.close()
