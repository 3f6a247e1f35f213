"""Private funding template: raw parsing (assets/raw/private_funding.py), staging rules, levels
and EUR conversion (assets/staging/stg_private_funding.py), awards, GX suite, Dagster wiring.

EUR values are checked against the `currencyconverter` package itself (ECB rates, last known
rate on or before the date), independently of the SQL conversion.
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from currency_converter import CurrencyConverter
from dagster_duckdb import DuckDBResource

from assets.common.money import load_ecb_rates
from assets.common.tables import create_table, ensure_schemas
from assets.common.unicode_names import name_org_id_any
from assets.intermediate.int_funding_awards import AWARD_COLUMNS, AWARD_TYPES
from assets.raw import private_funding
from assets.raw.ingest import FILE_MANIFEST, QUARANTINE, IngestReport, ingest_folder
from assets.raw.private_funding import (
    PARSER_VERSION,
    RAW_PRIVATE,
    SOURCE_SYSTEM,
    SUFFIXES,
    parse_file,
)
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
from assets.staging import stg_private_funding
from assets.staging.quarantine import STG_QUARANTINE
from assets.staging.stg_private_funding import (
    AWARDS_SQL,
    STG_PRIVATE,
    build_stg_private_funding,
)
from pipelines.quality import build_gx_asset_checks, load_suite, run_suite
from pipelines.resources import FundtraceSettings

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "data" / "raw" / "private"
SUITE = REPO / "expectations" / "staging__stg_private_funding.json"
HEADER = [
    "funder_id",
    "funder_name",
    "recipient_id",
    "recipient_name",
    "project_id",
    "instrument",
    "amount",
    "currency",
    "date",
    "source_url",
]
SMART_CITY = ("GB-COH-09990001", "Harbourton Smart City Ltd")


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    d = tmp_path / "raw"
    (d / "private").mkdir(parents=True)
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
        folder="private",
        suffixes=SUFFIXES,
        raw_table=RAW_PRIVATE,
        parser=parse_file,
        parser_version=PARSER_VERSION,
        log=log.append,
    )
    return report, log


def build(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> tuple[int, int]:
    ingest(con, raw_dir)
    return build_stg_private_funding(con)


def write_csv(
    path: Path, rows: list[list[str]], *, delim: str = ",", encoding: str = "utf-8"
) -> Path:
    with path.open("w", encoding=encoding, newline="") as fh:
        csv.writer(fh, delimiter=delim, lineterminator="\n").writerows(rows)
    return path


def row(
    funder: tuple[str, str],
    instrument: str,
    amount: str,
    currency: str,
    date: str,
    *,
    recipient: tuple[str, str] = SMART_CITY,
    project: str = "",
) -> list[str]:
    return [
        *funder,
        *recipient,
        project,
        instrument,
        amount,
        currency,
        date,
        "https://harbourton.example/x",
    ]


def staged_rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cur = con.execute(f"SELECT * FROM {STG_PRIVATE.qualified} ORDER BY source_file, source_row")
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def stg_reasons(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int, str]]:
    return con.execute(
        f"SELECT source_file, source_row, reason FROM {STG_QUARANTINE.qualified} "
        "WHERE source_system = ? ORDER BY source_file, source_row",
        [SOURCE_SYSTEM],
    ).fetchall()


def manifest(con: duckdb.DuckDBPyConnection, source_file: str) -> dict[str, Any]:
    cur = con.execute(
        f"SELECT * FROM {FILE_MANIFEST.qualified} WHERE source_file = ?", [source_file]
    )
    names = [d[0] for d in cur.description or []]
    got = cur.fetchone()
    assert got is not None
    return dict(zip(names, got, strict=True))


_CONVERTER = CurrencyConverter(
    fallback_on_missing_rate=True, fallback_on_missing_rate_method="last_known"
)


def ecb_eur(amount: str, currency: str, day: dt.date) -> Decimal:
    """The package's own conversion, rounded like DECIMAL(18,4)."""
    value = Decimal(str(_CONVERTER.convert(float(amount), currency, "EUR", date=day)))
    return value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


# --------------------------------------------------------------------------- parsing and typing


def test_template_rows_typed_converted_and_levelled(con, raw_dir: Path) -> None:
    write_csv(
        raw_dir / "private" / "p.csv",
        [
            HEADER,
            row(
                ("GB-COH-09990002", "Tidewater Digital Ltd"),
                "equity",
                "190000",
                "GBP",
                "2022-11-01",
            ),
            row(
                ("GB-LAE-HBT", "Harbourton City Council"),
                " Equity ",
                "£510,000.00",
                "gbp",
                "01/11/2022",
            ),
            row(
                ("", "Harbourton Angels Syndicate"),
                "In-kind",
                "1.2E+4",
                "usd",
                "2025-01-18",
                project="HBT-PRJ-DATA",
            ),
        ],
    )
    assert build(con, raw_dir) == (3, 0)
    rows = staged_rows(con)
    tide, council, angels = rows
    assert (tide["instrument"], tide["funder_org_ref"], tide["recipient_org_ref"]) == (
        "equity",
        "GB-COH-09990002",
        "GB-COH-09990001",
    )
    assert (tide["funding_level"], tide["funding_level_basis"]) == (
        "private",
        "org-id prefix GB-COH",
    )
    # a council investing through the private template keeps the level its id says
    assert (council["instrument"], council["funding_level"]) == ("equity", "local")
    assert council["amount_original"] == Decimal("510000")
    assert council["award_date"] == dt.date(2022, 11, 1)
    # a funder without id: name reference, level defaults to private (the template's purpose)
    assert angels["funder_org_ref"] == name_org_id_any("Harbourton Angels Syndicate")
    assert angels["funding_level"] == "private"
    assert angels["funding_level_basis"].startswith("private template default")
    assert (angels["instrument"], angels["currency_original"], angels["project_ref"]) == (
        "in_kind",
        "USD",
        "HBT-PRJ-DATA",
    )
    # 2025-01-18 is a Saturday: the rate of Friday 17 January
    assert angels["fx_date"] == dt.date(2025, 1, 17)
    assert angels["amount_eur"] == ecb_eur("12000", "USD", dt.date(2025, 1, 18))
    assert tide["amount_eur"] == ecb_eur("190000", "GBP", dt.date(2022, 11, 1))
    assert all(r["note"] is None for r in rows)


def test_level_from_funders_reference_and_unlevelled_prefix(con, raw_dir: Path) -> None:
    write_csv(
        raw_dir / "private" / "p.csv",
        [
            HEADER,
            row(("XM-DAC-918", "EU Institutions"), "grant", "1000", "EUR", "2024-01-10"),
            row(("XI-PIC-999999999", "Some Participant"), "loan", "1000", "EUR", "2024-01-10"),
            row(
                ("GB-GOR-EA9999", "Ministry for Urban Renewal"),
                "grant",
                "1000",
                "EUR",
                "2024-01-10",
            ),
        ],
    )
    assert build(con, raw_dir) == (3, 0)
    levels = {r["funder_org_ref"]: r["funding_level"] for r in staged_rows(con)}
    assert levels == {
        "XM-DAC-918": "eu",  # shipped funders reference
        "XI-PIC-999999999": "private",  # prefix known but without a level: template default
        "GB-GOR-EA9999": "national",
    }


def test_bad_rows_are_quarantined_with_the_first_failed_rule(con, raw_dir: Path) -> None:
    council = ("GB-LAE-HBT", "Harbourton City Council")
    write_csv(
        raw_dir / "private" / "bad.csv",
        [
            HEADER,
            row(council, "donation", "100", "GBP", "2024-01-10"),
            row(council, "", "100", "GBP", "2024-01-10"),
            row(council, "loan", "abc", "GBP", "2024-01-10"),
            row(council, "loan", "0", "GBP", "2024-01-10"),
            row(council, "loan", "100", "EURO", "2024-01-10"),
            row(council, "loan", "100", "GBP", "yesterday"),
            row(council, "loan", "100", "XYZ", "2024-01-10"),
            row(council, "loan", "100", "GBP", "1998-05-01"),
            row(("", ""), "loan", "100", "GBP", "2024-01-10"),
            row(council, "loan", "100", "GBP", "2024-01-10", recipient=("", "")),
            row(council, "loan", "100", "GBP", "2024-01-10"),
        ],
    )
    assert build(con, raw_dir) == (1, 10)
    reasons = [r[1:] for r in stg_reasons(con)]
    assert reasons == [
        (1, "unknown instrument: donation (allowed: equity, loan, sponsorship, in_kind, grant)"),
        (2, "missing instrument"),
        (3, "unparseable or out-of-range amount: abc"),
        (4, "amount must be greater than zero: 0"),
        (5, "invalid currency: EURO"),
        (6, "missing or unparseable date: yesterday"),
        (7, "no ECB rate: no ECB rate for XYZ on 2024-01-10"),
        (8, "no ECB rate: date before the first ECB rate (1999-01-04) on 1998-05-01"),
        (9, "no usable funder_id or funder_name"),
        (10, "no usable recipient_id or recipient_name"),
    ]
    m = manifest(con, "private/bad.csv")
    assert m["rows_in"] == m["rows_loaded"] == 11  # ingest keeps every row; staging decides
    assert len(staged_rows(con)) + len(reasons) == 11


def test_identical_rows_kept_in_file_duplicates_across_files(con, raw_dir: Path) -> None:
    bank = ("GB-COH-09990007", "Harbour Bank plc")
    tranche = row(bank, "loan", "50000", "GBP", "2024-03-01")
    write_csv(
        raw_dir / "private" / "a.csv",
        [HEADER, tranche, row(bank, "loan", "50000", "GBP", "2024-06-01"), tranche],
    )
    write_csv(raw_dir / "private" / "b.csv", [HEADER, tranche])
    assert build(con, raw_dir) == (3, 1)
    rows = staged_rows(con)
    assert [(r["source_file"], r["source_row"]) for r in rows] == [
        ("private/a.csv", 1),
        ("private/a.csv", 2),
        ("private/a.csv", 3),
    ]
    assert rows[0]["record_id"][:-2] == rows[2]["record_id"][:-2]
    assert rows[0]["record_id"] != rows[2]["record_id"]
    assert rows[2]["note"].startswith("identical to data row 1 (line 2)")
    ((qfile, qrow, reason),) = stg_reasons(con)
    assert (qfile, qrow) == ("private/b.csv", 1)
    assert reason == (
        "duplicate row (same values in another file): kept the first copy, "
        "private/a.csv data row 1 (line 2)"
    )


def test_semicolon_cp1252_titles_any_order_and_extra_columns(con, raw_dir: Path) -> None:
    header = ["Notes", "AMOUNT", "Currency", "Date", "Instrument", "Funder Name", "Recipient_Name"]
    write_csv(
        raw_dir / "private" / "sheet.csv",
        [
            header,
            [
                "café launch",
                "£1.234,50",
                "GBP",
                "2024-05-01",
                "sponsorship",
                "Harbour Bank plc",
                "Harbour Arts Collective",
            ],
            [
                "",
                "2000",
                "EUR",
                "2024-05-02",
                "grant",
                "Stichting Noordzee Havensteden",
                "Harbour Arts Collective",
            ],
            [
                "",
                "300",
                "GBP",
                "2024-05-03",
                "in kind",
                "Northquay Telecom Ltd",
                "Quayside Food Bank",
            ],
        ],
        delim=";",
        encoding="cp1252",
    )
    assert build(con, raw_dir) == (3, 0)
    m = manifest(con, "private/sheet.csv")
    assert m["encoding"] == "cp1252"
    assert "columns ignored: Notes" in m["message"] and "delimiter ';'" in m["message"]
    rows = staged_rows(con)
    assert rows[0]["amount_original"] == Decimal("1234.50")
    assert rows[2]["instrument"] == "in_kind"


def test_file_without_the_template_fails_alone(con, raw_dir: Path) -> None:
    write_csv(raw_dir / "private" / "other.csv", [["investor", "sum", "when"], ["a", "1", "2024"]])
    write_csv(
        raw_dir / "private" / "good.csv",
        [
            HEADER,
            row(("GB-COH-09990002", "Tidewater Digital Ltd"), "equity", "1", "GBP", "2024-01-10"),
        ],
    )
    report, log = ingest(con, raw_dir)
    assert (report.files_failed, report.rows_loaded) == (1, 1)
    bad = manifest(con, "private/other.csv")
    assert bad["status"] == "failed"
    assert bad["message"].startswith("private/other.csv: not the private funding template")
    assert "no column instrument; amount; currency; date" in bad["message"]
    assert "could not map column(s): investor, sum, when" in bad["message"]
    assert any("FAILED private/other.csv" in line for line in log)
    assert build_stg_private_funding(con) == (1, 0)


def test_wrong_field_count_quarantined_at_ingest(con, raw_dir: Path) -> None:
    tide = ("GB-COH-09990002", "Tidewater Digital Ltd")
    write_csv(
        raw_dir / "private" / "p.csv",
        [
            HEADER,
            row(tide, "equity", "1", "GBP", "2024-01-10"),
            ["GB-COH-09990002", "Tidewater Digital Ltd", "25,000", "GBP"],
            [*row(tide, "loan", "2", "GBP", "2024-01-11"), ""],
        ],
    )
    report, _ = ingest(con, raw_dir)
    assert (report.rows_loaded, report.rows_quarantined) == (2, 1)
    q = con.execute(f"SELECT source_row, source_locator, reason FROM {QUARANTINE.qualified}")
    assert q.fetchall() == [
        (2, "data row 2 (line 3)", "4 fields where the header has 10: shifted or unquoted column")
    ]


def test_xlsx_template_with_date_and_number_cells(con, raw_dir: Path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    notes = book.active
    assert notes is not None
    notes.title = "notes"
    notes.append(["Invented demo data"])
    sheet = book.create_sheet("funding")
    sheet.append(HEADER)
    sheet.append(
        [
            "GB-COH-09990002",
            "Tidewater Digital Ltd",
            *SMART_CITY,
            "",
            "equity",
            190000,
            "GBP",
            dt.datetime(2022, 11, 1),
            "",
        ]
    )
    sheet.append([])
    sheet.append(
        [
            "GB-COH-OC999001",
            "Seaboard Infrastructure Partners LLP",
            *SMART_CITY,
            "HBT-PRJ-LIGHT",
            "loan",
            500000.5,
            "EUR",
            dt.date(2024, 4, 10),
            "",
        ]
    )
    book.save(raw_dir / "private" / "book.xlsx")
    assert build(con, raw_dir) == (2, 0)
    rows = staged_rows(con)
    assert [(r["amount_original"], r["award_date"], r["source_locator"]) for r in rows] == [
        (Decimal("190000"), dt.date(2022, 11, 1), "sheet 'funding' row 2"),
        (Decimal("500000.5"), dt.date(2024, 4, 10), "sheet 'funding' row 4"),
    ]
    assert "read sheet 'funding'" in manifest(con, "private/book.xlsx")["message"]


def test_awards_have_the_canonical_shape(con, raw_dir: Path) -> None:
    shutil.copy(DEMO / "harbourton_private_funding.csv", raw_dir / "private")
    build(con, raw_dir)
    rel = con.sql(AWARDS_SQL)
    assert rel.columns == AWARD_COLUMNS
    got = con.execute(
        f"SELECT award_type, project_ref, control_basis, controller_org_ref = funder_org_ref, "
        f"award_id FROM ({AWARDS_SQL})"
    ).fetchall()
    assert {g[0] for g in got} <= set(AWARD_TYPES)
    assert all(g[2] == "funder" and g[3] for g in got)
    assert len({g[4] for g in got}) == len(got)
    assert {g[1] for g in got} == {None, "HBT-PRJ-DATA", "HBT-PRJ-LIGHT"}


# --------------------------------------------------------------------------- demo, GX, Dagster


def test_demo_file_loads_with_its_documented_totals(con, raw_dir: Path) -> None:
    shutil.copy(DEMO / "harbourton_private_funding.csv", raw_dir / "private")
    assert build(con, raw_dir) == (6, 1)
    # by hand from the file: GBP 510,000 + 190,000 + 25,000 + 40,000; EUR 500,000; USD 250,000
    got = con.execute(
        f"SELECT currency_original, sum(amount_original), count(*) FROM {STG_PRIVATE.qualified} "
        "GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert got == [
        ("EUR", Decimal("500000"), 1),
        ("GBP", Decimal("765000"), 4),
        ("USD", Decimal("250000"), 1),
    ]
    ((_, qrow, reason),) = stg_reasons(con)
    assert qrow == 7 and reason.startswith("unknown instrument: donation")
    levels = con.execute(
        f"SELECT funder_org_ref, funding_level FROM {STG_PRIVATE.qualified} "
        "WHERE funder_org_ref = 'GB-LAE-HBT'"
    ).fetchall()
    assert levels == [("GB-LAE-HBT", "local")]
    # independent check of every EUR value against the currencyconverter package
    with (DEMO / "harbourton_private_funding.csv").open(encoding="utf-8", newline="") as fh:
        src = list(csv.DictReader(fh))
    for r in staged_rows(con):
        published = src[r["source_row"] - 1]
        amount = published["amount"].replace(",", "")
        day = r["award_date"]
        assert r["amount_eur"] == ecb_eur(amount, published["currency"].upper(), day)


def test_gx_suite_passes_on_demo_and_catches_bad_rows(con, raw_dir: Path) -> None:
    shutil.copy(DEMO / "harbourton_private_funding.csv", raw_dir / "private")
    build(con, raw_dir)
    suite = load_suite(SUITE)
    outcome = run_suite(con, "staging", "stg_private_funding", suite)
    assert not outcome.errors, outcome.error_summary()
    assert outcome.passed, [e.label for e in outcome.expectations if e.failed]
    con.execute(f"UPDATE {STG_PRIVATE.qualified} SET instrument = 'gift' WHERE source_row = 1")
    outcome = run_suite(con, "staging", "stg_private_funding", suite)
    assert [e.column for e in outcome.critical_failures] == ["instrument"]


def test_dagster_assets_materialize_with_their_check(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / "private").mkdir(parents=True)
    shutil.copy(DEMO / "harbourton_private_funding.csv", raw / "private")
    suites = tmp_path / "expectations"
    suites.mkdir()
    shutil.copy(SUITE, suites)
    db = tmp_path / "build.duckdb"
    result = dg.materialize(
        [
            ref_ecb_rates,
            ref_funders,
            ref_orgid_prefixes,
            private_funding.raw_private_funding,
            stg_private_funding.stg_private_funding,
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
        assert c.execute(f"SELECT count(*) FROM {STG_PRIVATE.qualified}").fetchone() == (6,)
    finally:
        c.close()
