"""EU FTS raw parser (assets/raw/eu_fts.py) and staging (assets/staging/stg_eu_fts_commitments.py).

Every test writes its own small files into `<tmp>/raw/eu_fts/` and ingests them with the call
the Dagster asset makes. Column titles are the ones published in the yearly exports (see the
raw module's docstring); expected values are worked out by hand from the fixture rows.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import duckdb
import pytest

from assets.common.money import load_ecb_rates
from assets.common.tables import create_table, ensure_schemas, rebuild_table
from assets.intermediate.int_funding_awards import AWARD_COLUMNS, INT_FUNDING_AWARDS
from assets.raw.eu_fts import RAW_COMMITMENTS, SOURCE_SYSTEM, ingest_fts
from assets.raw.ingest import FILE_MANIFEST, QUARANTINE, IngestReport
from assets.raw.reference import (
    ECB_RATES,
    FUNDERS,
    ORGID_PREFIXES,
    SHIPPED_DIR,
    load_reference_csv,
)
from assets.staging import stg_eu_fts_commitments as stg
from assets.staging.quarantine import STG_QUARANTINE
from assets.staging.stg_eu_fts_commitments import STG_COMMITMENTS, build_stg_eu_fts_commitments

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO / "data" / "raw"
APOS = "\u2019"  # the typographic apostrophe FTS uses in "Beneficiary's"

# 2020-2023 exports (registration number column, double space in the total's title)
H2020 = [
    "Year", "Budget", "Reference of the Legal Commitment (LC)", "Name of beneficiary",
    "Recipient main registration number", "Coordinator", "City", "Beneficiary country",
    f"Beneficiary{APOS}s contracted amount (EUR)", "Commitment  total amount (EUR) (A+B)",
    "Subject of grant or contract", "Responsible department", "Programme name",
    "Project / Contract Reference",
]  # fmt: skip
# 2024 export: VAT column, Funding type
H2024 = [
    "Year", "Reference of the Legal Commitment (LC)", "Name of beneficiary",
    "VAT number of beneficiary", "Coordinator", "Beneficiary country",
    f"Beneficiary{APOS}s contracted amount (EUR)", "Commitment  total amount (EUR) (A+B)",
    "Responsible department", "Programme name", "Funding type",
]  # fmt: skip
# 2025 export: the registration column renamed again; straight apostrophe, single space
H2025 = [
    "Year", "Reference of the Legal Commitment (LC)", "Name of beneficiary",
    "Main registration number of beneficiary", "Coordinator", "Beneficiary country",
    "Beneficiary's contracted amount (EUR)", "Commitment total amount (EUR) (A+B)",
    "Responsible department", "Programme name",
]  # fmt: skip
# 2016-2019 style (as in the eubfr-data-lake FTS fixture): Amount / Total amount / Action Type
H2017 = [
    "Reference of the Legal Commitment (LC)", "Commitment position key", "Year",
    "Name of beneficiary", "Coordinator", "VAT Number of beneficiary", "Country / Territory",
    "Amount", "Total amount", "Subject of grant or contract", "Responsible Department",
    "Action Type", "Funding Type",
]  # fmt: skip

# --------------------------------------------------------------------------- helpers


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    d = tmp_path / "raw"
    (d / "eu_fts").mkdir(parents=True)
    return d


@pytest.fixture
def con(tmp_path: Path):
    c = duckdb.connect(str(tmp_path / "build.duckdb"))
    ensure_schemas(c)
    yield c
    c.close()


def write_csv(
    path: Path, header: list[str], rows: list[list[Any]], *, delimiter: str = ",", bom: bool = True
) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    w.writerow(header)
    w.writerows(rows)
    data = buf.getvalue().encode("utf-8")
    path.write_bytes((b"\xef\xbb\xbf" + data) if bom else data)
    return path


def ingest(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> tuple[IngestReport, list[str]]:
    log: list[str] = []
    return ingest_fts(con, raw_dir, log=log.append), log


def stage(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    load_reference_csv(con, ORGID_PREFIXES, "prefix", SHIPPED_DIR / "orgid_prefixes.csv", None)
    load_reference_csv(con, FUNDERS, "funder_id", SHIPPED_DIR / "funders.csv", None)
    create_table(con, ECB_RATES, replace=True)
    load_ecb_rates(con, ECB_RATES.qualified)
    return build_stg_eu_fts_commitments(con)


def rows(con: duckdb.DuckDBPyConnection, sql: str, *params: Any) -> list[dict[str, Any]]:
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def manifest(con: duckdb.DuckDBPyConnection, rel: str) -> dict[str, Any]:
    found = rows(con, f"SELECT * FROM {FILE_MANIFEST.qualified} WHERE source_file = ?", rel)
    assert len(found) == 1, found
    return found[0]


def staged(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    return {r["line_id"]: r for r in rows(con, f"SELECT * FROM {STG_COMMITMENTS.qualified}")}


def assert_reconciles(con: duckdb.DuckDBPyConnection) -> None:
    got = con.execute(
        f"""SELECT r.source_file, r.n, coalesce(s.n, 0), coalesce(q.n, 0)
        FROM (SELECT source_file, count(*) n FROM {RAW_COMMITMENTS.qualified} GROUP BY 1) r
        LEFT JOIN (SELECT source_file, count(*) n FROM {STG_COMMITMENTS.qualified} GROUP BY 1) s USING (source_file)
        LEFT JOIN (SELECT source_file, count(*) n FROM {STG_QUARANTINE.qualified}
                   WHERE staging_table = '{STG_COMMITMENTS.name}' GROUP BY 1) q USING (source_file)"""
    ).fetchall()
    assert got
    for source_file, n_raw, n_staged, n_quarantined in got:
        assert n_raw == n_staged + n_quarantined, source_file


# --------------------------------------------------------------------------- raw parsing


def test_xlsx_title_rows_typographic_apostrophe_double_space(con, raw_dir: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl", reason="openpyxl (dev extra) writes the fixture")
    wb = openpyxl.Workbook()
    notes = wb.active
    assert notes is not None
    notes.title = "Read me"
    notes.append(["Financial Transparency System"])
    ws = wb.create_sheet("2021")
    ws.append(["Financial Transparency System - 2021 commitments"])  # title row
    ws.append([])  # and a blank row before the header
    ws.append(H2020)
    ws.append(
        [
            2021,
            "EU budget",
            "SI2.100001",
            "Quay Labs Ltd",
            "GB999999901",
            "Yes",
            "Harbourton",
            "United Kingdom",
            1250000.5,
            2000000,
            "Smart harbour",
            "DG Research",
            "Horizon 2020",
            999001,
        ]
    )
    ws.append(
        [
            2021.0,
            "EU budget",
            "SI2.100001",
            "Dock University",
            "",
            "No",
            "Harbourton",
            "United Kingdom",
            749499.5,
            2000000,
            "Smart harbour",
            "DG Research",
            "Horizon 2020",
            999001,
        ]
    )
    ws.append(
        [
            2021,
            "EU budget",
            "SI2.100002",
            "Tide GmbH",
            "DE999999999",
            "No",
            "Bremen",
            "Germany",
            "1,000.00",
            "1,000.00",
            "Study",
            "DG MOVE",
            "CEF",
            None,
        ]
    )
    wb.save(raw_dir / "eu_fts" / "2021_FTS_dataset_en.xlsx")
    report, _ = ingest(con, raw_dir)
    assert (report.files_failed, report.rows_loaded) == (0, 3)
    m = manifest(con, "eu_fts/2021_FTS_dataset_en.xlsx")
    assert "header at row 3" in m["message"] and "Read me" in m["message"]
    raw = rows(con, f"SELECT * FROM {RAW_COMMITMENTS.qualified} ORDER BY source_row")
    assert [r["source_locator"] for r in raw] == [
        "sheet '2021' row 4",
        "sheet '2021' row 5",
        "sheet '2021' row 6",
    ]
    assert [r["year"] for r in raw] == ["2021", "2021", "2021"]  # 2021.0 as written
    assert [r["beneficiary_amount"] for r in raw] == ["1250000.5", "749499.5", "1,000.00"]
    assert raw[0]["commitment_total_amount"] == "2000000"  # double-space title mapped
    assert raw[0]["registration_number"] == "GB999999901"
    assert raw[0]["project_reference"] == "999001"
    assert "Commitment  total amount (EUR) (A+B)" in raw[0]["source_columns"]

    assert stage(con) == (3, 0)
    got = staged(con)
    first = got["2021:SI2.100001:1"]
    assert first["amount_original"] == Decimal("1250000.5")
    assert first["commitment_total_amount"] == Decimal("2000000")
    assert first["is_coordinator"] is True
    assert first["vat_number"] == "GB999999901"  # registration number carrying the GB prefix
    assert got["2021:SI2.100001:2"]["is_coordinator"] is False
    assert got["2021:SI2.100002:1"]["amount_original"] == Decimal("1000")
    assert str(first["award_date"]) == "2021-01-01"
    assert first["award_date_basis"] == "year (1 January)"


def test_headers_across_years_map_to_one_shape(con, raw_dir: Path) -> None:
    folder = raw_dir / "eu_fts"
    write_csv(
        folder / "fts_2017.csv",
        H2017,
        [
            ["AID.LCM.999001.01", "AID.CTR.999001.01.1", "2017", "Harbour Authority", "yes", "",
             "Ireland", "200,000,000.00€", "200,000,000.00€", "Port programme",
             "Directorate-General for International Cooperation and Development",
             "11th European Development Fund (EDF)", "Budget support"],
        ],
    )  # fmt: skip
    write_csv(
        folder / "fts_2024.csv",
        H2024,
        [["2024", "SI2.200001", "Tidewater Digital Ltd", "999 9999 02", "Yes", "United Kingdom",
          "1,250,000.00", "2,000,000.00", "European Health and Digital Executive Agency",
          "Digital Europe Programme", "Grants"]],
    )  # fmt: skip
    write_csv(
        folder / "fts_2025.csv",
        H2025,
        [["2025", "SI2.300001", "Société Portuaire SA", "552000000", "No", "France", "10.5",
          "10.5", "DG MOVE", "CEF"]],
    )  # fmt: skip
    # an export without the LC column: the commitment position key identifies the line
    write_csv(
        folder / "fts_position_key_only.csv",
        H2017[1:],
        [["AID.CTR.999002.01.1", "2016", "Quay Fund", "no", "", "Malta", "7", "7", "S", "DG A",
          "P", "Grants"]],
    )  # fmt: skip
    report, _ = ingest(con, raw_dir)
    assert (report.files_failed, report.rows_loaded) == (0, 4)
    assert stage(con) == (4, 0)
    got = staged(con)
    assert got["2016:AID.CTR.999002.01.1:1"]["lc_reference"] == "AID.CTR.999002.01.1"
    old = got["2017:AID.LCM.999001.01:1"]
    assert old["amount_original"] == Decimal("200000000")  # "200,000,000.00€"
    assert old["commitment_total_amount"] == Decimal("200000000")
    assert old["position_key"] == "AID.CTR.999001.01.1"
    assert old["programme_name"] == "11th European Development Fund (EDF)"  # Action Type
    assert old["responsible_department"].startswith("Directorate-General for International")
    assert (old["beneficiary_country"], old["beneficiary_country_code"]) == ("Ireland", "IE")
    new = got["2024:SI2.200001:1"]
    assert new["vat_number"] == "GB999999902"  # VAT without prefix + country -> prefixed
    assert (new["funding_type"], new["is_coordinator"]) == ("Grants", True)
    y25 = got["2025:SI2.300001:1"]
    # a national register number (SIREN) is kept but never passed off as a VAT number
    assert (y25["registration_number"], y25["vat_number"]) == ("552000000", None)
    assert y25["amount_original"] == Decimal("10.5")


def test_semicolon_csv_with_decimal_commas_and_title_line(con, raw_dir: Path) -> None:
    path = raw_dir / "eu_fts" / "fts_export.csv"
    write_csv(
        path,
        H2024,
        [
            ["2023", "SI2.400001", "Org A", "", "Oui", "Belgium", "1.234,56", "2.469,12", "DG A", "P", "Grants"],
            ["2023", "SI2.400001", "Org B", "", "No", "Belgium", "1234,56", "2469,12", "DG A", "P", "Grants"],
            ["2023", "SI2.400002", "Org C", "", "No", "Belgium", "12,5", "12,5", "DG A", "P", "Grants"],
        ],
        delimiter=";",
    )  # fmt: skip
    # a title line above the header, as some exports carry
    path.write_bytes(b"Financial Transparency System;;\r\n" + path.read_bytes())
    report, _ = ingest(con, raw_dir)
    assert (report.files_failed, report.rows_loaded) == (0, 3)
    assert "header at row 2" in manifest(con, "eu_fts/fts_export.csv")["message"]
    stage(con)
    got = staged(con)
    assert [got[k]["amount_original"] for k in sorted(got)] == [
        Decimal("1234.56"),
        Decimal("1234.56"),
        Decimal("12.5"),
    ]
    assert got["2023:SI2.400001:1"]["is_coordinator"] is None  # "Oui" is no yes/no we know


def test_unknown_layout_fails_alone_naming_the_columns(con, raw_dir: Path) -> None:
    folder = raw_dir / "eu_fts"
    write_csv(
        folder / "good.csv",
        H2024,
        [["2024", "SI2.1", "Org", "", "No", "Malta", "5", "5", "DG A", "P", "G"]],
    )
    # no department column and an amount column under a title nobody publishes
    write_csv(
        folder / "odd.csv",
        ["Year", "Reference of the Legal Commitment (LC)", "Name of beneficiary", "Money (EUR)"],
        [["2024", "SI2.2", "Org", "5"]],
    )
    openpyxl = pytest.importorskip("openpyxl", reason="openpyxl (dev extra) writes the fixture")
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["Supplier", "Value"])
    ws.append(["A", 1])
    wb.save(folder / "not_fts.xlsx")
    report, log = ingest(con, raw_dir)
    assert (report.files_failed, report.rows_loaded) == (2, 1)
    odd = manifest(con, "eu_fts/odd.csv")
    assert odd["status"] == "failed"
    assert "eu_fts/odd.csv" in odd["message"] and "unknown layout" in odd["message"]
    assert f"Beneficiary{APOS}s contracted amount (EUR)" in odd["message"]
    assert "Responsible department" in odd["message"]
    assert "Year," not in odd["message"].split("columns found")[0]  # Year was mapped
    assert "Money (EUR)" in odd["message"]  # the columns found are listed
    xl = manifest(con, "eu_fts/not_fts.xlsx")
    assert xl["status"] == "failed" and "eu_fts/not_fts.xlsx" in xl["message"]
    assert "sheets: Sheet" in xl["message"]
    assert manifest(con, "eu_fts/good.csv")["status"] == "loaded"
    assert any(line.startswith("eu_fts: FAILED eu_fts/odd.csv") for line in log)
    q = rows(con, f"SELECT * FROM {QUARANTINE.qualified} WHERE source_file = 'eu_fts/odd.csv'")
    assert len(q) == 1 and q[0]["source_row"] is None


# --------------------------------------------------------------------------- staging


def test_staging_rules_and_quarantine(con, raw_dir: Path) -> None:
    folder = raw_dir / "eu_fts"
    base = ["2022", "EU budget"]
    tail = ["Subject", "European Health and Digital Executive Agency", "Digital Europe", ""]
    write_csv(
        folder / "a_2022.csv",
        H2020,
        [
            [*base, "SI2.500001", "TIDEWATER DIGITAL LTD*", "", "Yes", "Harbourton", "United Kingdom", "100", "300", *tail],
            [*base, "SI2.500001", "*****", "", "No", "", "Belgium", "50", "300", *tail],
            [*base, "SI2.500001", "*****", "", "No", "", "Belgium", "50", "300", *tail],  # same again: kept
            [*base, "", "Org no LC", "", "No", "", "Malta", "5", "5", *tail],
            [*base, "SI2.500002", "Org bad amount", "", "No", "", "Malta", "tbc", "5", *tail],
            [*base, "SI2.500003", "Org no dept", "", "No", "", "Malta", "5", "5", "S", "", "P", ""],
            ["twenty", "EU budget", "SI2.500004", "Org bad year", "", "No", "", "Malta", "5", "5", *tail],
        ],
    )  # fmt: skip
    # the same year published again: the first line is a copy, the second one is new
    write_csv(
        folder / "b_2022_again.csv",
        H2020,
        [
            [*base, "SI2.500001", "TIDEWATER DIGITAL LTD*", "", "Yes", "Harbourton", "United Kingdom", "100", "300", *tail],
            [*base, "SI2.500001", "Harbour Fund", "", "No", "", "Malta", "100", "300", *tail],
        ],
    )  # fmt: skip
    ingest(con, raw_dir)
    n_staged, n_quarantined = stage(con)
    assert (n_staged, n_quarantined) == (4, 5)
    got = staged(con)
    assert sorted(got) == [
        "2022:SI2.500001:1",
        "2022:SI2.500001:2",
        "2022:SI2.500001:3",
        "2022:SI2.500001:4",
    ]
    tide = got["2022:SI2.500001:1"]
    assert tide["recipient_name"] == "TIDEWATER DIGITAL LTD"  # trailing * removed
    assert tide["beneficiary_name_published"] == "TIDEWATER DIGITAL LTD*"
    assert tide["recipient_org_ref"].startswith("FTNAME-")
    red1, red2 = got["2022:SI2.500001:2"], got["2022:SI2.500001:3"]
    assert (red1["recipient_kind"], red1["recipient_name"]) == ("redacted", None)
    # counted as the Commission's redacted payee, never dropped
    assert red1["recipient_org_ref"] == red2["recipient_org_ref"] == "FT-REDACTED-XM-DAC-918"
    assert got["2022:SI2.500001:4"]["source_file"] == "eu_fts/b_2022_again.csv"
    assert tide["department_org_ref"].startswith("FTNAME-")

    q = {
        (r["source_file"], r["source_row"]): r["reason"]
        for r in rows(
            con,
            f"SELECT source_file, source_row, reason FROM {STG_QUARANTINE.qualified} WHERE source_system = ?",
            SOURCE_SYSTEM,
        )
    }
    assert q[("eu_fts/a_2022.csv", 4)] == "missing Reference of the Legal Commitment (LC)"
    assert (
        q[("eu_fts/a_2022.csv", 5)]
        == f"unparseable Beneficiary{APOS}s contracted amount (EUR): tbc"
    )
    assert q[("eu_fts/a_2022.csv", 6)] == "missing Responsible department"
    assert q[("eu_fts/a_2022.csv", 7)] == "unparseable Year: twenty"
    dup = q[("eu_fts/b_2022_again.csv", 1)]
    assert dup.startswith("duplicate of a line already loaded from eu_fts/a_2022.csv")
    assert_reconciles(con)

    # awards: one commitment per staged line; the department controls, the Commission funds
    rebuild_table(con, INT_FUNDING_AWARDS, stg.AWARDS_SQL)
    awards = rows(con, f"SELECT * FROM {INT_FUNDING_AWARDS.qualified} ORDER BY award_id")
    assert len(awards) == 4 and list(awards[0]) == AWARD_COLUMNS
    a = awards[0]
    assert a["award_id"] == "eu_fts:2022:SI2.500001:1"
    assert (a["award_type"], a["funder_org_ref"], a["funder_name"]) == (
        "commitment",
        "XM-DAC-918",
        "European Commission",
    )
    assert (a["controller_name"], a["control_basis"]) == (
        "European Health and Digital Executive Agency",
        "responsible_department",
    )
    assert a["funding_level"] == "eu" and a["recipient_kind"] == "organisation"
    assert awards[1]["recipient_kind"] == "redacted" and awards[1]["recipient_name"] is None


def test_commitment_date_column_wins_over_the_year(con, raw_dir: Path) -> None:
    write_csv(
        raw_dir / "eu_fts" / "dated.csv",
        [*H2024, "Date of the commitment"],
        [
            ["2024", "SI2.6", "Org A", "", "No", "Malta", "5", "5", "DG A", "P", "G", "17/05/2024"],
            ["2024", "SI2.7", "Org B", "", "No", "Malta", "5", "5", "DG A", "P", "G", ""],
            ["2024", "SI2.8", "Org C", "", "No", "Malta", "5", "5", "DG A", "P", "G", "someday"],
        ],
    )
    ingest(con, raw_dir)
    assert stage(con) == (2, 1)
    got = staged(con)
    assert (str(got["2024:SI2.6:1"]["award_date"]), got["2024:SI2.6:1"]["award_date_basis"]) == (
        "2024-05-17",
        "commitment date",
    )
    assert str(got["2024:SI2.7:1"]["award_date"]) == "2024-01-01"


# --------------------------------------------------------------------------- demo data


def _amount(text: Any) -> Decimal | None:
    if isinstance(text, (int, float)):
        return Decimal(str(text))
    try:
        return Decimal(str(text).replace(",", "").replace("€", "").strip())
    except InvalidOperation:
        return None


def test_demo_files_reconcile(con) -> None:
    openpyxl = pytest.importorskip("openpyxl", reason="openpyxl reads the demo workbook")
    # independent reading: openpyxl for the workbook, csv for the CSV
    wb = openpyxl.load_workbook(DEMO_DIR / "eu_fts" / "fts_2019_harbourton.xlsx", data_only=True)
    sheet = [list(r) for r in wb["FTS 2019"].iter_rows(values_only=True)]
    head = next(i for i, r in enumerate(sheet) if r and r[0] == "Year")
    col = sheet[head].index(f"Beneficiary{APOS}s contracted amount (EUR)")
    xlsx_amounts = [_amount(r[col]) for r in sheet[head + 1 :] if any(v is not None for v in r)]
    with (DEMO_DIR / "eu_fts" / "fts_2024_harbourton.csv").open(encoding="utf-8", newline="") as fh:
        csv_rows = list(csv.DictReader(fh))
    csv_amounts = [_amount(r[f"Beneficiary{APOS}s contracted amount (EUR)"]) for r in csv_rows]
    good = [a for a in xlsx_amounts + csv_amounts if a is not None]

    report, _ = ingest(con, DEMO_DIR)
    assert report.files_failed == 0
    assert report.rows_loaded == len(xlsx_amounts) + len(csv_amounts)
    n_staged, n_quarantined = stage(con)
    assert (n_staged, n_quarantined) == (
        len(good),
        len(xlsx_amounts) + len(csv_amounts) - len(good),
    )
    total = con.execute(f"SELECT sum(amount_eur) FROM {STG_COMMITMENTS.qualified}").fetchone()
    assert total == (sum(good, Decimal(0)),)
    coordinators = con.execute(
        f"SELECT recipient_name FROM {STG_COMMITMENTS.qualified} WHERE is_coordinator ORDER BY 1"
    ).fetchall()
    assert coordinators == [("HARBOURTON CITY COUNCIL",), ("TIDEWATER DIGITAL LTD",)]
    assert_reconciles(con)


def test_dagster_assets_materialize_and_gx_suite_passes(tmp_path: Path) -> None:
    import dagster as dg
    from dagster_duckdb import DuckDBResource

    from assets.raw import eu_fts, reference
    from pipelines.quality import EXPECTATIONS_DIR, load_suite, run_suite
    from pipelines.resources import FundtraceSettings

    raw = tmp_path / "raw"
    shutil.copytree(DEMO_DIR / "eu_fts", raw / "eu_fts")
    db = tmp_path / "build.duckdb"
    result = dg.materialize(
        [
            reference.ref_orgid_prefixes,
            reference.ref_funders,
            reference.ref_ecb_rates,
            eu_fts.raw_eu_fts_commitments,
            stg.stg_eu_fts_commitments,
        ],
        resources={
            "duckdb": DuckDBResource(database=str(db)),
            "fundtrace": FundtraceSettings(raw_dir=str(raw), marts_db=str(tmp_path / "m.duckdb")),
        },
    )
    assert result.success
    con = duckdb.connect(str(db))
    try:
        suite = load_suite(EXPECTATIONS_DIR / "staging__stg_eu_fts_commitments.json")
        outcome = run_suite(con, "staging", "stg_eu_fts_commitments", suite)
        assert outcome.errors == [], outcome.error_summary()
        assert outcome.passed, [e.label for e in outcome.expectations if e.failed]
    finally:
        con.close()


# --------------------------------------------------------------------------- real data

REALDATA = Path(
    os.environ.get("FUNDTRACE_REALDATA_DIR")
    or Path(__file__).resolve().parents[2] / "shared" / "realdata"
)


def _real_fts_files() -> list[Path]:
    if not REALDATA.is_dir():
        return []
    return sorted(
        p
        for d in REALDATA.iterdir()
        if d.is_dir() and "fts" in d.name.lower()
        for p in d.rglob("*")
        if p.is_file() and p.suffix.lower() in (".csv", ".xlsx")
    )


def _norm(title: Any) -> str:
    return "".join(ch for ch in str(title or "").lower() if ch.isalnum())


_AMOUNT_KEYS = ("beneficiaryscontractedamounteur", "amount")


def _independent(path: Path) -> tuple[int, Decimal] | None:
    """(data rows, sum of the beneficiary amounts that read as numbers), or None when no
    header with Year / LC reference / beneficiary name is found in the first 30 rows."""
    if path.suffix.lower() == ".xlsx":
        openpyxl = pytest.importorskip("openpyxl", reason="openpyxl reads the XLSX sample")
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        sheets = [[list(r) for r in ws.iter_rows(values_only=True)] for ws in wb.worksheets]
    else:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig", errors="replace")
        first = text.splitlines()[0] if text else ""
        delim = max((",", ";", "\t", "|"), key=first.count)
        sheets = [list(csv.reader(io.StringIO(text, newline=""), delimiter=delim))]
    for table in sheets:
        for i, row in enumerate(table[:30]):
            keys = [_norm(v) for v in row]
            if {"year", "nameofbeneficiary"} <= set(keys) and any(k in keys for k in _AMOUNT_KEYS):
                col = next(keys.index(k) for k in _AMOUNT_KEYS if k in keys)
                data = [
                    r for r in table[i + 1 :] if any(str(v).strip() for v in r if v is not None)
                ]
                total = Decimal(0)
                for r in data:
                    value = _amount(r[col]) if col < len(r) and r[col] not in (None, "") else None
                    total += value or Decimal(0)
                return len(data), total
    return None


@pytest.mark.realdata
def test_real_fts_files_reconcile(tmp_path: Path) -> None:
    files = _real_fts_files()
    if not files:
        pytest.skip(f"no EU FTS CSV/XLSX samples under {REALDATA} (folders named *fts*)")
    folder = tmp_path / "raw" / "eu_fts"
    folder.mkdir(parents=True)
    for i, f in enumerate(files):  # linked into tmp only, never copied into the repo
        (folder / f"{i:02d}_{f.name}").symlink_to(f)
    con = duckdb.connect(str(tmp_path / "real.duckdb"))
    ensure_schemas(con)
    ingest_fts(con, tmp_path / "raw", log=lambda _: None)
    stage(con)
    for i, f in enumerate(files):
        rel = f"eu_fts/{i:02d}_{f.name}"
        m = manifest(con, rel)
        expected = _independent(f)
        if expected is None:
            assert m["status"] == "failed" and rel in m["message"], m
            continue
        n_rows, amount_total = expected
        assert m["rows_in"] == m["rows_loaded"] + m["rows_quarantined"] == n_rows, (rel, m)
        got = con.execute(
            f"SELECT sum(ft_parse_amount(beneficiary_amount)) FROM {RAW_COMMITMENTS.qualified} "
            "WHERE source_file = ?",
            [rel],
        ).fetchone()
        assert ((got[0] if got else None) or Decimal(0)) == amount_total, rel
    assert_reconciles(con)
    con.close()
