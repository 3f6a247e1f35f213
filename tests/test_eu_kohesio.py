# ruff: noqa: RUF001  (Cyrillic beneficiary names are the point of several fixtures)
"""Kohesio: raw parsing of both layouts (assets/raw/eu_kohesio.py), the split into EU share and
co-financing (assets/staging/stg_kohesio.py), the awards it contributes, its GX suite and its
Dagster wiring.

Every test writes its own small files into `<tmp>/raw/eu_kohesio/`; expected amounts are
worked out by hand in the comments next to them.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from assets.common.money import load_ecb_rates
from assets.common.tables import create_table, ensure_schemas
from assets.common.unicode_names import name_org_id_any
from assets.intermediate.int_funding_awards import AWARD_COLUMNS, AWARD_TYPES
from assets.raw import eu_kohesio
from assets.raw.eu_kohesio import (
    EXPORT_TITLES,
    PARSER_VERSION,
    RAW_KOHESIO,
    SOURCE_SYSTEM,
    SUFFIXES,
    ExportRow,
    parse_file,
    split_export_line,
    split_glued_header,
)
from assets.raw.ingest import FILE_MANIFEST, QUARANTINE, IngestReport, ingest_folder
from assets.raw.reference import (
    ECB_RATES,
    FUNDERS,
    ORGID_PREFIXES,
    SHIPPED_DIR,
    load_reference_csv,
    ref_ecb_rates,
    ref_funders,
    ref_orgid_prefixes,
)
from assets.staging import stg_kohesio
from assets.staging.quarantine import STG_QUARANTINE
from assets.staging.stg_kohesio import AWARDS_SQL, STG_KOHESIO, build_stg_kohesio
from pipelines.quality import build_gx_asset_checks, load_suite, run_suite
from pipelines.resources import FundtraceSettings

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "data" / "raw" / "eu_kohesio"
SUITE = REPO / "expectations" / "staging__stg_kohesio.json"

OPS_HEADER = [
    "Operation_Unique_Identifier",
    "Operation_Name_English",
    "Beneficiary",
    "Total_Eligible_Expenditure_amount",
    "Project_EU_Budget",
    "Cofinancing_Rate",
    "Fund_Code",
    "Programme_Code",
    "ManagingAuthority",
    "Operation_Start_Date",
]

# --------------------------------------------------------------------------- helpers


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    d = tmp_path / "raw"
    (d / "eu_kohesio").mkdir(parents=True)
    return d


@pytest.fixture
def con(tmp_path: Path):
    c = duckdb.connect(str(tmp_path / "build.duckdb"))
    ensure_schemas(c)
    create_table(c, ECB_RATES, replace=True)
    load_ecb_rates(c, ECB_RATES.qualified)
    load_reference_csv(c, FUNDERS, "funder_id", SHIPPED_DIR / "funders.csv", None)
    load_reference_csv(c, ORGID_PREFIXES, "prefix", SHIPPED_DIR / "orgid_prefixes.csv", None)
    yield c
    c.close()


def ingest(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> tuple[IngestReport, list[str]]:
    log: list[str] = []
    report = ingest_folder(
        con,
        source_system=SOURCE_SYSTEM,
        raw_dir=raw_dir,
        folder="eu_kohesio",
        suffixes=SUFFIXES,
        raw_table=RAW_KOHESIO,
        parser=parse_file,
        parser_version=PARSER_VERSION,
        log=log.append,
    )
    return report, log


def build(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> tuple[int, int]:
    ingest(con, raw_dir)
    return build_stg_kohesio(con)


def write_table(path: Path, rows: list[list[str]], delim: str = "\t") -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, delimiter=delim, lineterminator="\n").writerows(rows)
    return path


def write_text(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def staged(con: duckdb.DuckDBPyConnection, *cols: str) -> dict[str, dict[str, Any]]:
    cur = con.execute(f"SELECT record_id, {', '.join(cols)} FROM {STG_KOHESIO.qualified}")
    return {r[0]: dict(zip(cols, r[1:], strict=True)) for r in cur.fetchall()}


def stg_reasons(con: duckdb.DuckDBPyConnection) -> dict[int, str]:
    return dict(
        con.execute(
            f"SELECT source_row, reason FROM {STG_QUARANTINE.qualified} "
            "WHERE source_system = ? ORDER BY source_row",
            [SOURCE_SYSTEM],
        ).fetchall()
    )


def manifest(con: duckdb.DuckDBPyConnection, source_file: str) -> dict[str, Any]:
    cur = con.execute(
        f"SELECT * FROM {FILE_MANIFEST.qualified} WHERE source_file = ?", [source_file]
    )
    names = [d[0] for d in cur.description or []]
    row = cur.fetchone()
    assert row is not None, f"no manifest row for {source_file}"
    return dict(zip(names, row, strict=True))


def awards(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    cur = con.execute(f"SELECT * FROM ({AWARDS_SQL})")
    names = [d[0] for d in cur.description or []]
    return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def ops_row(op_id: str, beneficiary: str, total: str, eu: str, rate: str, ma: str, **kw: str):
    values = {
        "Operation_Name_English": kw.get("name", f"Operation {op_id}"),
        "Fund_Code": kw.get("fund", "ERDF"),
        "Programme_Code": kw.get("cci", "2014UK16RFOP999"),
        "Operation_Start_Date": kw.get("start", "2019-04-01"),
    }
    return [
        op_id,
        values["Operation_Name_English"],
        beneficiary,
        total,
        eu,
        rate,
        values["Fund_Code"],
        values["Programme_Code"],
        ma,
        values["Operation_Start_Date"],
    ]


# --------------------------------------------------------------------------- operations layout


def test_operations_tsv_scientific_notation_split_and_levels(con, raw_dir: Path) -> None:
    write_table(
        raw_dir / "eu_kohesio" / "ops.tsv",
        [
            OPS_HEADER,
            # 1.5E+6 total, 1.275E+6 EU (85%): co-financing 225,000
            ops_row(
                "OP-1",
                "Lumenwave Systems Ltd",
                "1.5E+6",
                "1.275E+6",
                "0.85",
                "Estuary Region Combined Authority",
            ),
            # ministry: national even though "Regional" is in its name
            ops_row(
                "OP-2",
                "Portside Mobility Ltd",
                "200000",
                "100000",
                "0.5",
                "Ministry of Regional Development",
            ),
            # no keyword at all: national by default
            ops_row(
                "OP-3",
                "Old Docks Makerspace CIC",
                "10000.50",
                "6000.30",
                "0.6",
                "Cohesion Programmes Directorate",
            ),
        ],
    )
    assert build(con, raw_dir) == (3, 0)
    m = manifest(con, "eu_kohesio/ops.tsv")
    assert (m["status"], m["file_format"], m["rows_in"], m["rows_loaded"]) == (
        "loaded",
        "tsv",
        3,
        3,
    )
    assert "operations layout" in m["message"]

    rows = staged(
        con,
        "total_amount_original",
        "eu_amount_original",
        "cofinancing_amount_original",
        "cofinancing_basis",
        "cofinancing_level",
        "cofinancing_funder_name",
        "project_ref",
        "award_date",
        "consistency_note",
    )
    assert rows["OP-1"]["total_amount_original"] == Decimal("1500000")
    assert rows["OP-1"]["eu_amount_original"] == Decimal("1275000")
    assert rows["OP-1"]["cofinancing_amount_original"] == Decimal("225000")
    assert rows["OP-1"]["cofinancing_basis"] == "total - EU budget"
    assert rows["OP-1"]["cofinancing_level"] == "local"
    assert rows["OP-2"]["cofinancing_level"] == "national"
    assert rows["OP-3"]["cofinancing_level"] == "national"
    # 10000.50 - 6000.30 = 4000.20; 6000.30 / 10000.50 = 60.0% -> consistent
    assert rows["OP-3"]["cofinancing_amount_original"] == Decimal("4000.20")
    assert all(r["consistency_note"] is None for r in rows.values())
    assert rows["OP-1"]["project_ref"] == "OP-1"
    assert rows["OP-1"]["award_date"] == dt.date(2019, 4, 1)
    assert rows["OP-2"]["cofinancing_funder_name"] == "Ministry of Regional Development"


def test_awards_split_funder_controller_and_shape(con, raw_dir: Path) -> None:
    write_table(
        raw_dir / "eu_kohesio" / "ops.tsv",
        [
            [*OPS_HEADER, "ManagingAuthority_Id", "Beneficiary_Id"],
            [
                *ops_row(
                    "OP-1",
                    "Harbourton Smart City Ltd",
                    "3.2E+6",
                    "1.6E+6",
                    "0.5",
                    "Ministry for Urban Renewal",
                ),
                "GB-GOR-EA9999",
                "gb-coh-9990001",
            ],
            # EU budget = total: no co-financing award
            [
                *ops_row(
                    "OP-2", "Portside Mobility Ltd", "1000", "1000", "1", "Harbourton City Council"
                ),
                "",
                "",
            ],
            [
                *ops_row(
                    "OP-3", "Quayside Food Bank", "800", "400", "0.5", "Harbourton City Council"
                ),
                "",
                "",
            ],
        ],
    )
    assert build(con, raw_dir) == (3, 0)
    rel = con.sql(AWARDS_SQL)
    assert rel.columns == AWARD_COLUMNS
    got = awards(con)
    assert sorted(got) == [
        "eu_kohesio:OP-1:co_financing",
        "eu_kohesio:OP-1:eu_share",
        "eu_kohesio:OP-2:eu_share",
        "eu_kohesio:OP-3:co_financing",
        "eu_kohesio:OP-3:eu_share",
    ]
    assert {a["award_type"] for a in got.values()} <= set(AWARD_TYPES)
    eu = got["eu_kohesio:OP-1:eu_share"]
    assert (eu["funder_org_ref"], eu["funding_level"], eu["amount_eur"]) == (
        "XM-DAC-918",
        "eu",
        Decimal("1600000"),
    )
    assert eu["funder_name"] == "European Union (cohesion policy funds)"
    co = got["eu_kohesio:OP-1:co_financing"]
    # the managing authority's id decides: GB-GOR is a national prefix
    assert (co["funder_org_ref"], co["funding_level"], co["amount_original"]) == (
        "GB-GOR-EA9999",
        "national",
        Decimal("1600000"),
    )
    for a in (eu, co):
        assert (a["controller_org_ref"], a["control_basis"]) == (
            "GB-GOR-EA9999",
            "managing_authority",
        )
        assert a["controller_name"] == "Ministry for Urban Renewal"
        assert a["recipient_org_ref"] == "GB-COH-09990001"  # Beneficiary_Id normalised
        assert (a["project_ref"], a["currency_original"], a["fx_rate"]) == ("OP-1", "EUR", 1)
        assert a["programme"] == "ERDF 2014UK16RFOP999"  # fund + code when no programme name
    co3 = got["eu_kohesio:OP-3:co_financing"]
    assert co3["funding_level"] == "local"  # "council"
    assert co3["funder_org_ref"] == name_org_id_any("Harbourton City Council")


def test_rate_only_and_rate_forms(con, raw_dir: Path) -> None:
    write_table(
        raw_dir / "eu_kohesio" / "rates.csv",
        [
            OPS_HEADER,
            # only the rate: EU = 1000 x 0.85 = 850, co-financing = 150
            ops_row("R-1", "A Ltd", "1000", "", "85%", "Ministry X"),
            # decimal comma rate; EU = 2000 x 0.855 = 1710, co-financing 290
            ops_row("R-2", "B Ltd", "2000", "", "85,5", "Ministry X"),
            # no total: total = 850 / 0.85 = 1000, co-financing 150
            ops_row("R-3", "C Ltd", "", "850", "0.85", "Ministry X"),
        ],
        delim=",",
    )
    assert build(con, raw_dir) == (3, 0)
    rows = staged(
        con,
        "total_amount_original",
        "eu_amount_original",
        "cofinancing_amount_original",
        "cofinancing_rate",
        "eu_amount_basis",
        "cofinancing_basis",
    )
    assert [rows["R-1"][k] for k in rows["R-1"]] == [
        Decimal("1000"),
        Decimal("850"),
        Decimal("150"),
        Decimal("0.85"),
        "total x rate",
        "total x (1 - rate)",
    ]
    assert (rows["R-2"]["eu_amount_original"], rows["R-2"]["cofinancing_amount_original"]) == (
        Decimal("1710"),
        Decimal("290"),
    )
    assert rows["R-2"]["cofinancing_rate"] == Decimal("0.855")
    assert rows["R-3"]["total_amount_original"] == Decimal("1000")
    assert rows["R-3"]["cofinancing_amount_original"] == Decimal("150")
    assert rows["R-3"]["cofinancing_basis"] == "EU budget / rate - EU budget"


def test_inconsistent_numbers_are_flagged_not_quarantined(con, raw_dir: Path) -> None:
    write_table(
        raw_dir / "eu_kohesio" / "ops.tsv",
        [
            OPS_HEADER,
            # 1000 x 0.5 = 500, EU 800: 30% of the total away -> flagged
            ops_row("C-1", "A Ltd", "1000", "800", "0.5", "Ministry X"),
            # EU 505 is 0.5% of the total away from 500 -> within tolerance
            ops_row("C-2", "B Ltd", "1000", "505", "0.5", "Ministry X"),
            # EU above the total: flagged, no co-financing award
            ops_row("C-3", "C Ltd", "1000", "1000.01", "", "Ministry X"),
        ],
    )
    assert build(con, raw_dir) == (3, 0)
    rows = staged(con, "consistency_note", "cofinancing_amount_original")
    assert (
        "differs from total x Cofinancing_Rate = 500.00 by 30.0" in rows["C-1"]["consistency_note"]
    )
    assert rows["C-1"]["cofinancing_amount_original"] == Decimal("200")  # total - EU budget
    assert rows["C-2"]["consistency_note"] is None
    assert "exceeds the total" in rows["C-3"]["consistency_note"]
    assert rows["C-3"]["cofinancing_amount_original"] == Decimal("-0.01")
    assert "eu_kohesio:C-3:co_financing" not in awards(con)


def test_dates_fallback_to_programme_period_or_quarantine(con, raw_dir: Path) -> None:
    write_table(
        raw_dir / "eu_kohesio" / "ops.tsv",
        [
            OPS_HEADER,
            ops_row(
                "D-1", "A Ltd", "100", "50", "0.5", "Ministry X", start="", cci="2021PL16RFPR001"
            ),
            ops_row("D-2", "B Ltd", "100", "50", "0.5", "Ministry X", start="soon"),
            ops_row("D-3", "C Ltd", "100", "50", "0.5", "Ministry X", start="", cci="PROG-7"),
            ops_row("D-4", "D Ltd", "100", "50", "0.5", "Ministry X", start="15/03/2020"),
        ],
    )
    assert build(con, raw_dir) == (2, 2)
    rows = staged(con, "award_date", "award_date_basis", "note")
    assert rows["D-1"]["award_date"] == dt.date(2021, 1, 1)
    assert "2021PL16RFPR001" in rows["D-1"]["award_date_basis"]
    assert "no Operation_Start_Date" in rows["D-1"]["note"]
    assert rows["D-4"]["award_date"] == dt.date(2020, 3, 15)
    assert rows["D-4"]["note"] is None
    reasons = stg_reasons(con)
    assert reasons[2] == "unparseable Operation_Start_Date: soon"
    assert reasons[3].startswith("no Operation_Start_Date and no programming period")


def test_missing_values_and_duplicates_are_quarantined_with_reasons(con, raw_dir: Path) -> None:
    write_table(
        raw_dir / "eu_kohesio" / "a.tsv",
        [
            OPS_HEADER,
            ops_row("Q-1", "A Ltd", "100", "50", "0.5", "Ministry X"),
            ops_row("", "B Ltd", "100", "50", "0.5", "Ministry X"),
            ops_row("Q-3", "C Ltd", "100", "", "", "Ministry X"),
            ops_row("Q-4", "D Ltd", "100", "50", "0.5", ""),
            ops_row("Q-5", "E Ltd", "-100", "50", "0.5", "Ministry X"),
            ops_row("Q-6", "F Ltd", "100", "50", "1.5%x", "Ministry X"),
        ],
    )
    write_table(
        raw_dir / "eu_kohesio" / "b.tsv",
        [OPS_HEADER, ops_row("Q-1", "A Ltd", "100", "50", "0.5", "Ministry X")],
    )
    assert build(con, raw_dir) == (1, 6)
    got = con.execute(
        f"SELECT source_file, source_row, reason FROM {STG_QUARANTINE.qualified} "
        "ORDER BY source_file, source_row"
    ).fetchall()
    assert got == [
        ("eu_kohesio/a.tsv", 2, "missing Operation_Unique_Identifier"),
        (
            "eu_kohesio/a.tsv",
            3,
            "no EU amount: Project_EU_Budget empty and no Total_Eligible_Expenditure_amount "
            "with a Cofinancing_Rate to derive it",
        ),
        (
            "eu_kohesio/a.tsv",
            4,
            "missing ManagingAuthority: no body to attribute the co-financing and control to",
        ),
        (
            "eu_kohesio/a.tsv",
            5,
            "negative Total_Eligible_Expenditure_amount or Project_EU_Budget",
        ),
        (
            "eu_kohesio/a.tsv",
            6,
            "unparseable or out-of-range Cofinancing_Rate (expected 0-1 or 0-100%): 1.5%x",
        ),
        (
            "eu_kohesio/b.tsv",
            1,
            "duplicate Operation_Unique_Identifier Q-1: kept the first copy, "
            "eu_kohesio/a.tsv data row 1 (line 2)",
        ),
    ]
    # rows in = loaded + quarantined, per file
    for name, raw_n in (("a.tsv", 6), ("b.tsv", 1)):
        n_raw = con.execute(
            f"SELECT count(*) FROM {RAW_KOHESIO.qualified} WHERE source_file = ?",
            [f"eu_kohesio/{name}"],
        ).fetchall()[0][0]
        n_stg = con.execute(
            f"SELECT count(*) FROM {STG_KOHESIO.qualified} WHERE source_file = ?",
            [f"eu_kohesio/{name}"],
        ).fetchall()[0][0]
        n_q = con.execute(
            f"SELECT count(*) FROM {STG_QUARANTINE.qualified} WHERE source_file = ?",
            [f"eu_kohesio/{name}"],
        ).fetchall()[0][0]
        assert n_raw == raw_n == n_stg + n_q


def test_delimiter_is_sniffed_and_quotes_are_honoured(con, raw_dir: Path) -> None:
    write_table(
        raw_dir / "eu_kohesio" / "semi.csv",
        [
            OPS_HEADER,
            ops_row("S-1", "Harbour Arts; Collective", "100", "50", "0.5", "Ministry X"),
            ops_row("S-2", 'The "Quay" Trust', "100", "50", "0.5", "Ministry X"),
            ops_row("S-3", "Plain Ltd", "100", "50", "0.5", "Ministry X"),
        ],
        delim=";",
    )
    write_table(
        raw_dir / "eu_kohesio" / "comma.csv",
        [
            [f" {t.upper()} " for t in OPS_HEADER],  # titles: case and spaces ignored
            ops_row("K-1", "Smith, Jones and Partners", "1,000.00", "500", "0.5", "Ministry X"),
            ops_row("K-2", "B Ltd", "100", "50", "0.5", "Ministry X"),
            ops_row("K-3", "C Ltd", "100", "50", "0.5", "Ministry X"),
        ],
        delim=",",
    )
    assert build(con, raw_dir) == (6, 0)
    assert "delimiter ';'" in manifest(con, "eu_kohesio/semi.csv")["message"]
    rows = staged(con, "beneficiary_name", "total_amount_original")
    assert rows["S-1"]["beneficiary_name"] == "Harbour Arts; Collective"
    assert rows["S-2"]["beneficiary_name"] == 'The "Quay" Trust'
    assert rows["K-1"]["beneficiary_name"] == "Smith, Jones and Partners"
    assert rows["K-1"]["total_amount_original"] == Decimal("1000")


def test_wrong_field_count_row_is_quarantined_at_ingest(con, raw_dir: Path) -> None:
    path = raw_dir / "eu_kohesio" / "ops.csv"
    write_table(
        path,
        [
            OPS_HEADER,
            ops_row("W-1", "A Ltd", "100", "50", "0.5", "Ministry X"),
            ["W-2", "too", "few"],
            [*ops_row("W-3", "C Ltd", "100", "50", "0.5", "Ministry X"), ""],  # trailing delim ok
        ],
        delim=",",
    )
    report, _ = ingest(con, raw_dir)
    assert (report.rows_loaded, report.rows_quarantined) == (2, 1)
    m = manifest(con, "eu_kohesio/ops.csv")
    assert (m["status"], m["rows_in"], m["rows_loaded"], m["rows_quarantined"]) == (
        "partial",
        3,
        2,
        1,
    )
    q = con.execute(f"SELECT source_row, source_locator, reason FROM {QUARANTINE.qualified}")
    assert q.fetchall() == [
        (2, "data row 2 (line 3)", "3 fields where the header has 10: shifted or unquoted column")
    ]


def test_unknown_layout_fails_alone_naming_file_and_columns(con, raw_dir: Path) -> None:
    write_table(
        raw_dir / "eu_kohesio" / "mystery.csv",
        [["Project", "Money", "Who"], ["1", "2", "3"]],
        delim=",",
    )
    write_table(
        raw_dir / "eu_kohesio" / "no_ma.tsv",
        [
            [
                "Operation_Unique_Identifier",
                "Beneficiary",
                "Total_Eligible_Expenditure_amount",
                "Project_EU_Budget",
                "Colour",
            ],
            ["X", "Y", "1", "1", "red"],
        ],
    )
    write_table(
        raw_dir / "eu_kohesio" / "good.tsv",
        [OPS_HEADER, ops_row("G-1", "A Ltd", "100", "50", "0.5", "Ministry X")],
    )
    report, log = ingest(con, raw_dir)
    assert (report.files_parsed, report.files_failed, report.rows_loaded) == (3, 2, 1)
    bad = manifest(con, "eu_kohesio/mystery.csv")
    assert bad["status"] == "failed"
    assert "eu_kohesio/mystery.csv: unknown Kohesio layout" in bad["message"]
    assert "could not map column(s): Project, Money, Who" in bad["message"]
    no_ma = manifest(con, "eu_kohesio/no_ma.tsv")
    assert no_ma["status"] == "failed"
    assert (
        "without required column(s) ManagingAuthority or ManagingAuthority_Id" in no_ma["message"]
    )
    assert "could not map column(s): Colour" in no_ma["message"]
    assert any("FAILED eu_kohesio/mystery.csv" in line for line in log)
    assert manifest(con, "eu_kohesio/good.tsv")["status"] == "loaded"
    assert build_stg_kohesio(con) == (1, 0)


# --------------------------------------------------------------------------- beneficiaries layout

BEN_TSV = (
    "Country\tRegion\tBeneficiary Name\tTotal Budget\tEU Contribution\tNumber of Projects\t"
    "Transliterated Name\t\n"
    'Bulgaria\tBlagoevgrad Province\t"Зора-ЕС" ЕООД\t101993.47\t86694.45\t1\t"Zora-ES" EOOD\t\n'
    "Bulgaria\tBlagoevgrad Province\tОбщина Благоевград\t4.729375062E7\t3.955834594E7\t31\t"
    "Obshtina Blagoevgrad\t\n"
    "Slovenia\tZasavska\tDELAVSKI DOM TRBOVLJE\t4609118.85\t\t4\t\t\n"
)


def test_beneficiaries_tsv_trailing_tab_literal_quotes_and_split(con, raw_dir: Path) -> None:
    write_text(raw_dir / "eu_kohesio" / "export.tsv", BEN_TSV)
    assert build(con, raw_dir) == (2, 1)
    m = manifest(con, "eu_kohesio/export.tsv")
    assert (m["rows_in"], m["rows_loaded"], m["rows_quarantined"]) == (3, 3, 0)
    assert "beneficiaries layout" in m["message"] and "read literally" in m["message"]
    raw = con.execute(
        f"SELECT beneficiary, beneficiary_latin, total_eligible FROM {RAW_KOHESIO.qualified} "
        "ORDER BY source_row"
    ).fetchall()
    assert raw[0] == ('"Зора-ЕС" ЕООД', '"Zora-ES" EOOD', "101993.47")  # quotes kept
    assert raw[2][1] is None  # empty transliteration

    rows = {
        r["beneficiary_name"]: r
        for r in staged(
            con,
            "beneficiary_name",
            "total_amount_original",
            "eu_amount_original",
            "cofinancing_amount_original",
            "cofinancing_funder_name",
            "cofinancing_level",
            "award_date",
            "note",
            "project_ref",
            "programme",
            "project_count",
        ).values()
    }
    obshtina = rows["Община Благоевград"]
    # 47,293,750.62 - 39,558,345.94 = 7,735,404.68
    assert obshtina["total_amount_original"] == Decimal("47293750.62")
    assert obshtina["eu_amount_original"] == Decimal("39558345.94")
    assert obshtina["cofinancing_amount_original"] == Decimal("7735404.68")
    assert obshtina["cofinancing_funder_name"] == "national co-financing, Bulgaria"
    assert obshtina["cofinancing_level"] == "national"
    assert obshtina["award_date"] == dt.date(2014, 1, 1)
    assert "fixed date" in obshtina["note"]
    assert obshtina["project_ref"] is None and obshtina["project_count"] == 31
    assert obshtina["programme"] == "Cohesion policy 2014-2020, Bulgaria"
    assert stg_reasons(con)[3].startswith("EU Contribution empty")

    got = [a for a in awards(con).values() if a["recipient_name"] == '"Зора-ЕС" ЕООД']
    assert {(a["award_type"], a["controller_org_ref"], a["control_basis"]) for a in got} == {
        ("eu_share", "XM-DAC-918", "funder"),
        ("co_financing", name_org_id_any("national co-financing, Bulgaria"), "funder"),
    }
    # 101,993.47 - 86,694.45 = 15,299.02
    assert {a["amount_original"] for a in got} == {Decimal("86694.45"), Decimal("15299.02")}


BROKEN_CSV = (
    "Country,Region,Beneficiary Name,Total Budget,EU Contribution,Number of Projects,"
    "Transliterated NameBulgaria,Blagoevgrad Province,КАБРОН И ПЕКЕНЬО ООД,127024.68,86376.78,1,"
    "KABRON I PEKENЬO OOD,\n"
    'Bulgaria,Blagoevgrad Province,"Зора-ЕС" ЕООД,101993.47,86694.45,1,"Zora-ES" EOOD,\n'
    "Bulgaria,Blagoevgrad Province,Local Economic Development Agency -LEDA, Razlog,96670.39,"
    "82169.82,1,,\n"
    "Czechia,Harbourton Region,Společenství vlastníků Nábřežní 3,5,7,9, Harbourton,1000.5,500.25,"
    "1,SV Nabrezni 3, 5,\n"
    "Bulgaria,Blagoevgrad Province,Broken line, without, any, numbers, at all,\n"
    "Czechia,Harbourton Region,Dům,1.5,2.5,1,Dum,1.5,2.5,1,\n"
)


def test_broken_csv_glued_header_commas_and_quarantine(con, raw_dir: Path) -> None:
    write_text(raw_dir / "eu_kohesio" / "export.csv", BROKEN_CSV)
    report, _ = ingest(con, raw_dir)
    m = manifest(con, "eu_kohesio/export.csv")
    assert "header had no line break" in m["message"]
    # 6 data lines: 4 recovered, 2 quarantined (no numbers; two equally good splits)
    assert (m["rows_in"], m["rows_loaded"], m["rows_quarantined"]) == (6, 4, 2)
    assert report.rows_loaded == 4
    raw = con.execute(
        f"SELECT source_row, source_locator, beneficiary, total_eligible, eu_budget, "
        f"project_count, beneficiary_latin, parse_note FROM {RAW_KOHESIO.qualified} "
        "ORDER BY source_row"
    ).fetchall()
    assert raw[0][:7] == (
        1,
        "data row 1 (line 1, glued to the header)",
        "КАБРОН И ПЕКЕНЬО ООД",
        "127024.68",
        "86376.78",
        "1",
        "KABRON I PEKENЬO OOD",
    )
    assert raw[1][2] == '"Зора-ЕС" ЕООД'
    assert raw[2][2:5] == (
        "Local Economic Development Agency -LEDA, Razlog",
        "96670.39",
        "82169.82",
    )
    assert raw[2][7] is not None and "re-joined" in raw[2][7]
    # "5,7,9" also fits (two amounts and a count), but only the split written as decimals wins
    assert raw[3][2:7] == (
        "Společenství vlastníků Nábřežní 3,5,7,9, Harbourton",
        "1000.5",
        "500.25",
        "1",
        "SV Nabrezni 3, 5",
    )
    q = con.execute(
        f"SELECT source_row, reason FROM {QUARANTINE.qualified} ORDER BY source_row"
    ).fetchall()
    assert q[0][0] == 5 and q[0][1].startswith("no Total Budget, EU Contribution")
    assert q[1][0] == 6 and q[1][1].startswith("ambiguous line")
    assert build_stg_kohesio(con) == (4, 0)


def test_identical_lines_kept_in_file_but_duplicate_across_files(con, raw_dir: Path) -> None:
    header = "Country\tRegion\tBeneficiary Name\tTotal Budget\tEU Contribution\tNumber of Projects\tTransliterated Name\t\n"
    line = "Bulgaria\tLovech Province\tРИЗЪН БЮРО ЕООД\t106499.73\t72419.85\t1\t\t\n"
    other = "Bulgaria\tLovech Province\tРИЗЪН БЮРО ЕООД\t484500.0\t288277.5\t1\t\t\n"
    write_text(raw_dir / "eu_kohesio" / "a.tsv", header + line + other + line)
    write_text(raw_dir / "eu_kohesio" / "b.tsv", header + line)
    assert build(con, raw_dir) == (3, 1)
    rows = con.execute(
        f"SELECT source_file, source_row, record_id, note FROM {STG_KOHESIO.qualified} "
        "ORDER BY source_file, source_row"
    ).fetchall()
    assert [r[:2] for r in rows] == [
        ("eu_kohesio/a.tsv", 1),
        ("eu_kohesio/a.tsv", 2),
        ("eu_kohesio/a.tsv", 3),
    ]
    assert rows[0][2].endswith("-1") and rows[2][2].endswith("-2")
    assert rows[0][2][:-2] == rows[2][2][:-2]
    assert "identical to data row 1 (line 2)" in rows[2][3]
    assert "identical" not in rows[1][3]
    q = con.execute(f"SELECT source_file, source_row, reason FROM {STG_QUARANTINE.qualified}")
    ((qfile, qrow, reason),) = q.fetchall()
    assert (qfile, qrow) == ("eu_kohesio/b.tsv", 1)
    assert reason.startswith("duplicate beneficiary line (same values in another file)")


def test_names_without_latin_letters_still_get_an_id() -> None:
    bg = name_org_id_any("БИСТРА МИЦЕВА ЕООД")
    assert bg is not None and bg.startswith("FTNAME-")
    assert name_org_id_any("  бистра   мицева  ЕООД ") == bg  # case and spacing
    assert name_org_id_any("ФЛАМЕЙЗИНГ ЕООД") != bg
    from assets.common.orgids import _eval

    # Latin names keep the id the shared macro gives them
    assert name_org_id_any("Harbour Bank plc") == _eval(
        "SELECT ft_name_org_id(?)", "Harbour Bank plc"
    )
    assert name_org_id_any("  ") is None


# --------------------------------------------------------------------------- pure functions


def test_split_export_line_cases() -> None:
    row = split_export_line("BG,Region,Name, with comma,1.5,0.5,2,Latin, with comma,", ",")
    assert isinstance(row, ExportRow)
    assert row.values["beneficiary"] == "Name, with comma"
    assert row.values["beneficiary_latin"] == "Latin, with comma"
    assert row.note is not None and row.note.startswith("2 delimiter")
    plain = split_export_line("BG\tR\tN\t1.0\t\t3\t\t", "\t")
    assert isinstance(plain, ExportRow)
    assert (plain.values["eu_budget"], plain.values["project_count"], plain.note) == (
        None,
        "3",
        None,
    )
    assert split_export_line("BG,R,N,", ",") == "4 fields where the beneficiaries export has 7"
    assert isinstance(split_export_line("BG,R,N,abc,def,1,,", ","), str)


def test_split_glued_header_only_when_a_data_row_follows() -> None:
    titles, rest = split_glued_header(
        ",".join(EXPORT_TITLES[:-1]) + ",Transliterated NameBulgaria,R,N,1.0,1.0,1,,", ","
    )
    assert titles == list(EXPORT_TITLES)
    assert rest == "Bulgaria,R,N,1.0,1.0,1,,"
    # a longer title that merely starts with a known one is not a glued header
    for header in (
        "Country,Region,Beneficiary Name English,Total Budget",
        "Country,Region,Beneficiary Name,Total Budget,EU Contribution,Number of Projects,"
        "Transliterated Name_2",
        "Operation_Unique_Identifier,Beneficiary,FundingSource,Total_Eligible_Expenditure_amount",
    ):
        assert split_glued_header(header, ",")[1] is None


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("Estuary Region Combined Authority", "local"),
        ("Urząd Marszałkowski Województwa Mazowieckiego", "local"),
        ("Ministerium für Wirtschaft des Landes Brandenburg", "local"),
        ("Ministry of Regional Development and Public Works", "national"),
        ("Ministerstvo pro místní rozvoj", "national"),
        ("Harbourton City Council", "local"),
        ("Agency for Regional Development", "local"),
        ("Cohesion Programmes Directorate", "national"),
        ("Община Петрич", "local"),
    ],
)
def test_managing_authority_keyword_levels(name: str, level: str) -> None:
    c = duckdb.connect()
    stg_kohesio.install_macros(c)
    got = c.execute(
        "SELECT ft_ma_keyword_level(?), ft_ma_keyword_basis(?)", [name, name]
    ).fetchone()
    c.close()
    assert got is not None and got[0] == level, got


# --------------------------------------------------------------------------- demo data, GX, Dagster


def _demo_rows() -> list[dict[str, str]]:
    with (DEMO / "harbourton_erdf_operations.tsv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_demo_file_loads_with_its_documented_totals(con, raw_dir: Path) -> None:
    shutil.copy(DEMO / "harbourton_erdf_operations.tsv", raw_dir / "eu_kohesio")
    assert build(con, raw_dir) == (4, 2)
    # by hand from the file: 1.6E+6 + 425000 + 1.2E+6 x 0.6 + 300000 = 3,045,000 EU;
    # 1.6E+6 + 425000 + 480000 + 200000 = 2,705,000 co-financing, of which the combined
    # authority (local) 425000 + 480000 and the ministry (national) 1.6E+6 + 200000
    got = con.execute(
        f"""SELECT award_type, funding_level, sum(amount_eur), count(*)
            FROM ({AWARDS_SQL}) GROUP BY ALL ORDER BY ALL"""
    ).fetchall()
    assert got == [
        ("co_financing", "local", Decimal("905000"), 2),
        ("co_financing", "national", Decimal("1800000"), 2),
        ("eu_share", "eu", Decimal("3045000"), 4),
    ]
    assert len(_demo_rows()) == 6  # rows in = 4 staged + 2 quarantined
    reasons = stg_reasons(con)
    assert reasons[5] == "unparseable Total_Eligible_Expenditure_amount: n/a"
    assert reasons[6].startswith("duplicate Operation_Unique_Identifier HBT-ERDF-0001")
    rows = staged(con, "project_ref", "consistency_note", "award_date", "programme")
    assert rows["HBT-ERDF-0002"]["programme"] == "Estuary Region ERDF Programme 2021-2027"
    assert {"HBT-ERDF-0001", "HBT-ERDF-0002"} <= {r["project_ref"] for r in rows.values()}
    assert rows["HBT-ERDF-0004"]["consistency_note"] is not None
    assert rows["HBT-ERDF-0003"]["award_date"] == dt.date(2021, 1, 1)


def test_gx_suite_passes_on_demo_and_catches_a_broken_split(con, raw_dir: Path) -> None:
    shutil.copy(DEMO / "harbourton_erdf_operations.tsv", raw_dir / "eu_kohesio")
    build(con, raw_dir)
    suite = load_suite(SUITE)
    outcome = run_suite(con, "staging", "stg_kohesio", suite)
    assert not outcome.errors, outcome.error_summary()
    assert outcome.passed, [e.label for e in outcome.expectations if e.failed]
    con.execute(
        f"UPDATE {STG_KOHESIO.qualified} SET cofinancing_amount_original = 1 "
        "WHERE record_id = 'HBT-ERDF-0001'"
    )
    outcome = run_suite(con, "staging", "stg_kohesio", suite)
    assert not outcome.errors
    assert [e.label for e in outcome.critical_failures] == [
        e.label
        for e in outcome.expectations
        if "total_amount_original IS NOT NULL" in json.dumps(e.to_dict())
    ]
    assert len(outcome.critical_failures) == 1
    assert outcome.critical_failures[0].unexpected_count == 1


def test_dagster_assets_materialize_with_their_check(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / "eu_kohesio").mkdir(parents=True)
    shutil.copy(DEMO / "harbourton_erdf_operations.tsv", raw / "eu_kohesio")
    suites = tmp_path / "expectations"
    suites.mkdir()
    shutil.copy(SUITE, suites)
    db = tmp_path / "build.duckdb"
    result = dg.materialize(
        [
            ref_ecb_rates,
            ref_funders,
            ref_orgid_prefixes,
            eu_kohesio.raw_kohesio,
            stg_kohesio.stg_kohesio,
            *build_gx_asset_checks(suites),
        ],
        resources={
            "duckdb": DuckDBResource(database=str(db)),
            "fundtrace": FundtraceSettings(raw_dir=str(raw), marts_db=str(tmp_path / "m.duckdb")),
        },
    )
    assert result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed
    c = duckdb.connect(str(db), read_only=True)
    try:
        assert c.execute(f"SELECT count(*) FROM {STG_KOHESIO.qualified}").fetchone() == (4,)
    finally:
        c.close()
