"""360Giving parsers (assets/raw/threesixty_giving.py), the shared ingest framework
(assets/raw/ingest.py) and the 360Giving staging model.

Every test writes its own 3-row files into `<tmp>/raw/360giving/` and ingests them into a
DuckDB file in tmp_path, exactly as the asset does (same `ingest_folder` call).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from assets.common.money import load_ecb_rates
from assets.common.tables import create_table, ensure_schemas
from assets.raw.ingest import FILE_MANIFEST, QUARANTINE, IngestReport, ingest_folder
from assets.raw.reference import (
    ECB_RATES,
    FUNDERS,
    ORGID_PREFIXES,
    SHIPPED_DIR,
    load_reference_csv,
)
from assets.raw.threesixty_giving import (
    PARSER_VERSION,
    RAW_GRANTS,
    SOURCE_SYSTEM,
    SUFFIXES,
    parse_file,
)
from assets.staging.quarantine import STG_QUARANTINE
from assets.staging.stg_360giving_grants import STG_GRANTS, build_stg_360giving_grants

STANDARD = [
    "Identifier",
    "Title",
    "Currency",
    "Amount Awarded",
    "Award Date",
    "Recipient Org:Identifier",
    "Recipient Org:Name",
    "Funding Org:Identifier",
    "Funding Org:Name",
]

# --------------------------------------------------------------------------- helpers


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    d = tmp_path / "raw"
    (d / "360giving").mkdir(parents=True)
    return d


@pytest.fixture
def con(tmp_path: Path):
    c = duckdb.connect(str(tmp_path / "build.duckdb"))
    ensure_schemas(c)
    yield c
    c.close()


def ingest(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> tuple[IngestReport, list[str]]:
    log: list[str] = []
    report = ingest_folder(
        con,
        source_system=SOURCE_SYSTEM,
        raw_dir=raw_dir,
        folder="360giving",
        suffixes=SUFFIXES,
        raw_table=RAW_GRANTS,
        parser=parse_file,
        parser_version=PARSER_VERSION,
        log=log.append,
    )
    return report, log


def csv_bytes(
    header: list[str],
    rows: list[list[str]],
    *,
    encoding: str = "utf-8",
    eol: str = "\n",
    bom: bool = False,
) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=eol)
    w.writerow(header)
    w.writerows(rows)
    data = buf.getvalue().encode(encoding)
    return (b"\xef\xbb\xbf" + data) if bom else data


def write_csv(path: Path, header: list[str], rows: list[list[str]], **kw: Any) -> Path:
    path.write_bytes(csv_bytes(header, rows, **kw))
    return path


def good_rows(prefix: str, n: int = 3) -> list[list[str]]:
    return [
        [
            f"360G-{prefix}-{i}",
            f"Grant {i}",
            "GBP",
            str(1000 * i),
            f"2024-05-{10 + i:02d}",
            f"GB-CHC-10000{i}",
            f"Charity {i}",
            "GB-LAE-HBT",
            "Harbourton Council",
        ]
        for i in range(1, n + 1)
    ]


def raw_rows(con: duckdb.DuckDBPyConnection, source_file: str, *cols: str) -> list[tuple]:
    return con.execute(
        f"SELECT {', '.join(cols)} FROM {RAW_GRANTS.qualified} WHERE source_file = ? "
        "ORDER BY source_row",
        [source_file],
    ).fetchall()


def manifest(con: duckdb.DuckDBPyConnection, source_file: str) -> dict[str, Any]:
    cur = con.execute(
        f"SELECT * FROM {FILE_MANIFEST.qualified} WHERE source_file = ?", [source_file]
    )
    names = [d[0] for d in cur.description or []]
    row = cur.fetchone()
    assert row is not None, f"no manifest row for {source_file}"
    return dict(zip(names, row, strict=True))


def quarantine(con: duckdb.DuckDBPyConnection, source_file: str) -> list[tuple]:
    return con.execute(
        f"SELECT source_row, source_locator, reason, record FROM {QUARANTINE.qualified} "
        "WHERE source_file = ? ORDER BY source_row NULLS FIRST",
        [source_file],
    ).fetchall()


# --------------------------------------------------------------------------- JSON


def test_json_package_nested_arrays_to_canonical_columns(con, raw_dir: Path) -> None:
    package = {
        "grants": [
            {
                "id": "360G-hbt-1",
                "title": " Smart lamp posts ",
                "currency": "GBP",
                "amountAwarded": 12500.5,
                "awardDate": "2024-05-17",
                "recipientOrganization": [
                    {
                        "id": "GB-COH-09990001",
                        "name": "Tidewater Digital Ltd",
                        "companyNumber": "09990001",
                    }
                ],
                "fundingOrganization": [
                    {"id": "GB-LAE-HBT", "name": "Harbourton City Council"},
                    {"id": "GB-GOR-PB1", "name": "Ministry of Urban Renewal"},
                ],
                "grantProgramme": [{"code": "SC1", "title": "Smart City"}],
                "beneficiaryLocation": [
                    {"name": "Harbourton", "countryCode": "GB"},
                    {"name": "Eastport", "countryCode": "GB"},
                ],
            },
            {
                "id": "360G-hbt-2",
                "title": "Community wifi",
                "currency": "GBP",
                "amountAwarded": 3000,
                "awardDate": "2024-06-01",
                "recipientOrganization": [{"id": "GB-CHC-1199002", "name": "Harbour Trust"}],
                "fundingOrganization": [{"id": "GB-LAE-HBT", "name": "Harbourton City Council"}],
            },
            {
                "id": "360G-hbt-3",
                "title": "Sensors",
                "currency": "EUR",
                "amountAwarded": 70,
                "awardDate": "2024-07-01",
                "recipientOrganization": [{"id": "360G-hbt-org-9", "name": "Sensor Co-op"}],
                "fundingOrganization": [{"id": "GB-LAE-HBT", "name": "Harbourton City Council"}],
            },
        ]
    }
    (raw_dir / "360giving" / "pkg.json").write_text(json.dumps(package), encoding="utf-8")
    report, _ = ingest(con, raw_dir)
    assert (report.files_parsed, report.files_failed, report.rows_loaded) == (1, 0, 3)

    rows = raw_rows(
        con,
        "360giving/pkg.json",
        "identifier",
        "title",
        "amount_awarded",
        "recipient_org_identifier",
        "recipient_org_company_number",
        "funding_org_identifier",
        "funding_org_name",
        "grant_programme_code",
        "grant_programme_title",
        "beneficiary_location_name",
        "org_counts",
        "source_row",
        "source_locator",
    )
    assert len(rows) == 3
    first = rows[0]
    assert first[0] == "360G-hbt-1"
    assert first[1] == "Smart lamp posts"  # trimmed
    assert first[2] == "12500.5"
    assert first[3:5] == ("GB-COH-09990001", "09990001")
    assert first[5:7] == ("GB-LAE-HBT", "Harbourton City Council")  # the first funder
    assert first[7:9] == ("SC1", "Smart City")
    assert first[9] == "Harbourton; Eastport"
    assert json.loads(first[10]) == {"fundingOrganization": 2}
    assert rows[1][10] is None  # only one funder: no count noted
    assert rows[1][2] == "3000"
    assert [(r[11], r[12]) for r in rows] == [
        (1, "$.grants[0]"),
        (2, "$.grants[1]"),
        (3, "$.grants[2]"),
    ]
    m = manifest(con, "360giving/pkg.json")
    assert (m["status"], m["file_format"], m["rows_in"], m["rows_loaded"]) == (
        "loaded",
        "json",
        3,
        3,
    )
    # provenance
    sha = con.execute(
        f"SELECT DISTINCT file_sha256, source_system FROM {RAW_GRANTS.qualified}"
    ).fetchall()
    import hashlib

    expected_sha = hashlib.sha256((raw_dir / "360giving" / "pkg.json").read_bytes()).hexdigest()
    assert sha == [(expected_sha, "360giving")]


# --------------------------------------------------------------------------- CSV


def test_csv_titles_case_spacing_bom_crlf(con, raw_dir: Path) -> None:
    header = [
        "IDENTIFIER",
        " title ",
        "currency",
        "Amount  Awarded",
        "award date",
        "Recipient Org : Identifier",
        "recipient org:name",
        "Funding Org:0:Identifier",  # flatten-tool index form
        "Funding Org:Name",
    ]
    path = write_csv(
        raw_dir / "360giving" / "bom.csv", header, good_rows("bom"), bom=True, eol="\r\n"
    )
    assert path.read_bytes().startswith(b"\xef\xbb\xbfIDENTIFIER") and b"\r\n" in path.read_bytes()
    report, _ = ingest(con, raw_dir)
    assert report.files_failed == 0
    rows = raw_rows(
        con,
        "360giving/bom.csv",
        "identifier",
        "title",
        "amount_awarded",
        "award_date",
        "recipient_org_identifier",
        "funding_org_identifier",
    )
    assert rows == [
        ("360G-bom-1", "Grant 1", "1000", "2024-05-11", "GB-CHC-100001", "GB-LAE-HBT"),
        ("360G-bom-2", "Grant 2", "2000", "2024-05-12", "GB-CHC-100002", "GB-LAE-HBT"),
        ("360G-bom-3", "Grant 3", "3000", "2024-05-13", "GB-CHC-100003", "GB-LAE-HBT"),
    ]
    m = manifest(con, "360giving/bom.csv")
    assert (m["status"], m["encoding"], m["rows_in"]) == ("loaded", "utf-8", 3)


def test_csv_source_row_is_the_data_row_number(con, raw_dir: Path) -> None:
    # header on line 1, data rows 1..3 on lines 2..4: source_row is the 1-based data row
    write_csv(raw_dir / "360giving" / "plain.csv", STANDARD, good_rows("p"))
    ingest(con, raw_dir)
    rows = raw_rows(con, "360giving/plain.csv", "identifier", "source_row", "source_locator")
    assert [(r[0], r[1]) for r in rows] == [("360G-p-1", 1), ("360G-p-2", 2), ("360G-p-3", 3)]
    assert ["data row 1" in r[2] for r in rows] == [True, False, False]
    assert "data row 3" in rows[2][2]


def test_windows_1252_csv_is_decoded(con, raw_dir: Path) -> None:
    rows = good_rows("w", 3)
    rows[0][1] = "Café £ fund"
    rows[1][6] = "Société Générale Trust"
    rows[2][3] = "£3,000"
    path = write_csv(raw_dir / "360giving" / "win.csv", STANDARD, rows, encoding="cp1252")
    raw = path.read_bytes()
    assert b"\xa3" in raw and b"\xe9" in raw  # really cp1252 bytes
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    ingest(con, raw_dir)
    got = raw_rows(con, "360giving/win.csv", "title", "recipient_org_name", "amount_awarded")
    assert got[0][0] == "Café £ fund"
    assert got[1][1] == "Société Générale Trust"
    assert got[2][2] == "£3,000"
    m = manifest(con, "360giving/win.csv")
    assert (m["status"], m["encoding"], m["rows_loaded"]) == ("loaded", "cp1252", 3)


def test_csv_shifted_row_is_quarantined_with_its_row_number(con, raw_dir: Path) -> None:
    rows = good_rows("s", 3)
    rows[1] = [*rows[1][:2], "extra, unquoted", *rows[1][2:]]  # one field too many
    write_csv(raw_dir / "360giving" / "shifted.csv", STANDARD, rows)
    ingest(con, raw_dir)
    loaded = raw_rows(con, "360giving/shifted.csv", "identifier", "amount_awarded", "source_row")
    assert loaded == [("360G-s-1", "1000", 1), ("360G-s-3", "3000", 3)]
    q = quarantine(con, "360giving/shifted.csv")
    assert len(q) == 1
    source_row, locator, reason, record = q[0]
    assert source_row == 2
    assert "data row 2" in locator and "line 3" in locator  # header is line 1
    assert "10 fields" in reason and "9" in reason
    assert "360G-s-2" in record
    m = manifest(con, "360giving/shifted.csv")
    assert m["status"] == "partial"
    assert (m["rows_in"], m["rows_loaded"], m["rows_quarantined"]) == (3, 2, 1)


# --------------------------------------------------------------------------- XLSX


def test_xlsx_finds_grants_sheet_after_notes_and_keeps_cells_as_text(con, raw_dir: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl", reason="openpyxl (dev extra) writes the fixture")
    wb = openpyxl.Workbook()
    notes = wb.active
    notes.title = "notes"
    notes.append(["About this file"])
    notes.append(["Invented test data"])
    sheet = wb.create_sheet("grants")
    sheet.append(STANDARD)
    sheet.append(
        [
            "360G-x-1",
            "A",
            "GBP",
            1000,
            dt.datetime(2024, 5, 17),
            "GB-CHC-1",
            "C1",
            "GB-LAE-HBT",
            "H",
        ]
    )
    sheet.append(
        [
            "360G-x-2",
            "B",
            "GBP",
            1500.5,
            dt.datetime(2024, 6, 3),
            "GB-CHC-2",
            "C2",
            "GB-LAE-HBT",
            "H",
        ]
    )
    sheet.append(
        ["360G-x-3", "C", "GBP", "2,000", "2024-07-01", "GB-CHC-3", "C3", "GB-LAE-HBT", "H"]
    )
    wb.save(raw_dir / "360giving" / "book.xlsx")

    report, _ = ingest(con, raw_dir)
    assert report.files_failed == 0
    rows = raw_rows(
        con, "360giving/book.xlsx", "identifier", "amount_awarded", "award_date", "source_locator"
    )
    assert [r[0] for r in rows] == ["360G-x-1", "360G-x-2", "360G-x-3"]
    assert [r[1] for r in rows] == ["1000", "1500.5", "2,000"]
    assert rows[0][2].startswith("2024-05-17")
    assert rows[1][2].startswith("2024-06-03")
    assert rows[2][2] == "2024-07-01"
    assert "grants" in rows[0][3] and "row 2" in rows[0][3]  # sheet row 2 = first data row
    m = manifest(con, "360giving/book.xlsx")
    assert (m["status"], m["file_format"], m["rows_loaded"]) == ("loaded", "xlsx", 3)
    assert "grants" in m["message"]


# --------------------------------------------------------------------------- broken files


def _good_neighbour(raw_dir: Path) -> None:
    write_csv(raw_dir / "360giving" / "good.csv", STANDARD, good_rows("g"))


def _assert_neighbour_loaded(con: duckdb.DuckDBPyConnection) -> None:
    assert [r[0] for r in raw_rows(con, "360giving/good.csv", "identifier")] == [
        "360G-g-1",
        "360G-g-2",
        "360G-g-3",
    ]
    m = manifest(con, "360giving/good.csv")
    assert (m["status"], m["rows_loaded"]) == ("loaded", 3)


def _assert_failed(con: duckdb.DuckDBPyConnection, rel: str) -> tuple[str, str]:
    assert raw_rows(con, rel, "identifier") == []  # nothing partial
    m = manifest(con, rel)
    assert m["status"] == "failed"
    assert m["rows_loaded"] == 0
    assert m["rows_in"] == m["rows_loaded"] + m["rows_quarantined"]
    q = quarantine(con, rel)
    assert len(q) == 1 and q[0][0] is None  # one whole-file entry
    assert q[0][2] and q[0][2] == m["message"]
    return q[0][1], q[0][2]


def test_truncated_json_quarantines_the_whole_file(con, raw_dir: Path) -> None:
    _good_neighbour(raw_dir)
    grants = [{"id": f"360G-t-{i}", "amountAwarded": i, "currency": "GBP"} for i in (1, 2)]
    text = json.dumps({"grants": grants})
    cut = text[: text.rindex("]")] + ', {"id": "360G-t-3", "amou'  # third grant cut off
    (raw_dir / "360giving" / "truncated.json").write_text(cut, encoding="utf-8")
    report, log = ingest(con, raw_dir)
    assert report.files_failed == 1
    locator, reason = _assert_failed(con, "360giving/truncated.json")
    assert locator == "$.grants[2]"
    assert "$.grants[2]" in reason and "JSON" in reason
    assert any("truncated.json" in line and "FAILED" in line for line in log)
    _assert_neighbour_loaded(con)


def test_json_without_grants_is_rejected(con, raw_dir: Path) -> None:
    _good_neighbour(raw_dir)
    (raw_dir / "360giving" / "other.json").write_text(
        json.dumps({"releases": [{"ocid": "ocds-1"}]}), encoding="utf-8"
    )
    ingest(con, raw_dir)
    _, reason = _assert_failed(con, "360giving/other.json")
    assert "grants" in reason
    _assert_neighbour_loaded(con)


def test_csv_without_required_titles_names_them(con, raw_dir: Path) -> None:
    _good_neighbour(raw_dir)
    write_csv(
        raw_dir / "360giving" / "notgrants.csv",
        ["Identifier", "Title", "Recipient Org:Name"],
        [["1", "a", "b"], ["2", "c", "d"], ["3", "e", "f"]],
    )
    ingest(con, raw_dir)
    _, reason = _assert_failed(con, "360giving/notgrants.csv")
    for title in ("Amount Awarded", "Currency", "Award Date"):
        assert title in reason
    assert "Identifier," not in reason.split("columns found")[0]  # present titles not blamed
    _assert_neighbour_loaded(con)


def test_zero_byte_file_is_failed_as_empty(con, raw_dir: Path) -> None:
    _good_neighbour(raw_dir)
    (raw_dir / "360giving" / "nothing.json").write_bytes(b"")
    ingest(con, raw_dir)
    _, reason = _assert_failed(con, "360giving/nothing.json")
    assert "empty" in reason
    _assert_neighbour_loaded(con)


# --------------------------------------------------------------------------- incremental


def test_incremental_unchanged_changed_and_deleted_files(con, raw_dir: Path) -> None:
    folder = raw_dir / "360giving"
    write_csv(folder / "a.csv", STANDARD, good_rows("a"))
    write_csv(folder / "b.csv", STANDARD, good_rows("b"))
    # c.json: 2 grants loaded + 1 record quarantined (not a JSON object)
    (folder / "c.json").write_text(
        json.dumps({"grants": [{"id": "360G-c-1"}, 5, {"id": "360G-c-3"}]}), encoding="utf-8"
    )

    first, _ = ingest(con, raw_dir)
    assert (first.files_seen, first.files_parsed) == (3, 3)
    assert len(quarantine(con, "360giving/c.json")) == 1
    a_loaded_at = raw_rows(con, "360giving/a.csv", "loaded_at")

    second, _ = ingest(con, raw_dir)
    assert (second.files_unchanged, second.files_parsed, second.files_removed) == (3, 0, 0)
    assert con.execute(f"SELECT count(*) FROM {RAW_GRANTS.qualified}").fetchone() == (8,)

    # change b.csv: one amount changed, one row dropped
    rows = good_rows("b")
    rows[0][3] = "999"
    write_csv(folder / "b.csv", STANDARD, rows[:2])
    third, _ = ingest(con, raw_dir)
    assert (third.files_parsed, third.files_unchanged) == (1, 2)
    assert raw_rows(con, "360giving/b.csv", "identifier", "amount_awarded") == [
        ("360G-b-1", "999"),
        ("360G-b-2", "2000"),
    ]
    assert raw_rows(con, "360giving/a.csv", "loaded_at") == a_loaded_at  # untouched
    assert manifest(con, "360giving/b.csv")["rows_loaded"] == 2

    # delete c.json: its rows, manifest entry and quarantine rows go
    (folder / "c.json").unlink()
    fourth, _ = ingest(con, raw_dir)
    assert (fourth.files_removed, fourth.files_parsed) == (1, 0)
    assert raw_rows(con, "360giving/c.json", "identifier") == []
    assert quarantine(con, "360giving/c.json") == []
    assert con.execute(
        f"SELECT count(*) FROM {FILE_MANIFEST.qualified} WHERE source_file = '360giving/c.json'"
    ).fetchone() == (0,)
    assert con.execute(f"SELECT count(*) FROM {RAW_GRANTS.qualified}").fetchone() == (5,)


# --------------------------------------------------------------------------- staging


def load_references(con: duckdb.DuckDBPyConnection) -> None:
    load_reference_csv(con, ORGID_PREFIXES, "prefix", SHIPPED_DIR / "orgid_prefixes.csv", None)
    load_reference_csv(con, FUNDERS, "funder_id", SHIPPED_DIR / "funders.csv", None)
    create_table(con, ECB_RATES, replace=True)
    load_ecb_rates(con, ECB_RATES.qualified)


STAGING_HEADER = [*STANDARD, "Recipient Org:Company Number"]


def test_staging_types_quarantines_and_resolves_orgs(con, raw_dir: Path) -> None:
    folder = raw_dir / "360giving"
    a = [
        # good: local funder, recipient GB-COH spelt canonically
        ["360G-st-1", "T1", "GBP", "1,000.50", "2024-05-17", "GB-COH-01234567", "Tidewater Digital Ltd", "GB-LAE-HBT", "Harbourton", ""],
        # unparseable amount
        ["360G-st-2", "T2", "GBP", "tbc", "2024-05-17", "GB-CHC-200001", "Trust", "GB-LAE-HBT", "Harbourton", ""],
        # invalid currency
        ["360G-st-3", "T3", "POUNDS", "50", "2024-05-17", "GB-CHC-200001", "Trust", "GB-LAE-HBT", "Harbourton", ""],
        # missing award date
        ["360G-st-4", "T4", "GBP", "60", "", "GB-CHC-200001", "Trust", "GB-LAE-HBT", "Harbourton", ""],
    ]  # fmt: skip
    b = [
        # national funder, the same company in a second spelling
        ["360G-st-5", "T5", "gbp", "2000", "17/05/2024", "gb-coh-1234567", "TIDEWATER DIGITAL LIMITED", "GB-GOR-PB1", "Ministry", ""],
        # private funder; recipient has only a 360G id but a company number
        ["360G-st-6", "T6", "EUR", "300", "2024-05-18", "360G-st-org-6", "Quay Labs Ltd", "GB-CHC-1234567", "Quay Trust", "9990001"],
        # duplicate of a grant in a.csv
        ["360G-st-1", "T1 again", "GBP", "1000.50", "2024-05-17", "GB-COH-01234567", "Tidewater", "GB-LAE-HBT", "Harbourton", ""],
    ]  # fmt: skip
    write_csv(folder / "a.csv", STAGING_HEADER, a)
    write_csv(folder / "b.csv", STAGING_HEADER, b)
    report, _ = ingest(con, raw_dir)
    assert report.rows_loaded == 7
    load_references(con)

    staged, quarantined, _ = build_stg_360giving_grants(con)
    assert (staged, quarantined) == (3, 4)

    # keyed by (file, grant id), not source_row, so this test does not depend on row numbering
    q = {
        (r[0], r[1]): r[2]
        for r in con.execute(
            f"SELECT source_file, record_id, reason FROM {STG_QUARANTINE.qualified} "
            "WHERE source_system = '360giving'"
        ).fetchall()
    }
    assert set(q) == {
        ("360giving/a.csv", "360G-st-2"),
        ("360giving/a.csv", "360G-st-3"),
        ("360giving/a.csv", "360G-st-4"),
        ("360giving/b.csv", "360G-st-1"),
    }
    amount = q[("360giving/a.csv", "360G-st-2")]
    assert "Amount Awarded" in amount and "tbc" in amount
    currency = q[("360giving/a.csv", "360G-st-3")]
    assert "Currency" in currency and "POUNDS" in currency
    assert "Award Date" in q[("360giving/a.csv", "360G-st-4")]
    dup = q[("360giving/b.csv", "360G-st-1")]
    assert "duplicate" in dup.lower() and "360G-st-1" in dup and "a.csv" in dup

    cur = con.execute(f"SELECT * FROM {STG_GRANTS.qualified} ORDER BY grant_id")
    names = [d[0] for d in cur.description or []]
    rows = {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}
    assert list(rows) == ["360G-st-1", "360G-st-5", "360G-st-6"]
    g1, g5, g6 = rows["360G-st-1"], rows["360G-st-5"], rows["360G-st-6"]

    # the kept copy of the duplicate is the first file's
    assert (g1["source_file"], g1["title"]) == ("360giving/a.csv", "T1")
    # typed money and dates
    from decimal import Decimal

    assert g1["amount_original"] == Decimal("1000.50") and g1["currency_original"] == "GBP"
    assert g5["currency_original"] == "GBP" and g5["award_date"] == dt.date(2024, 5, 17)
    assert g6["amount_eur"] == Decimal("300") and g6["fx_rate"] == 1
    assert g1["amount_eur"] is not None and g1["amount_eur"] > g1["amount_original"]  # GBP > EUR
    # one company, two spellings -> one ref
    assert g1["recipient_org_ref"] == g5["recipient_org_ref"] == "GB-COH-01234567"
    # 360G-only recipient with a company number -> the company's org-id
    assert g6["recipient_org_ref"] == "GB-COH-09990001"
    assert g6["recipient_ref_basis"] == "company number"
    assert g6["recipient_published_id"] == "360G-st-org-6"
    # funding level from who the funder is
    assert g1["funding_level"] == "local"
    assert g5["funding_level"] == "national"
    assert g6["funding_level"] == "private"
    assert "GB-LAE" in g1["funding_level_basis"]

    # reconciliation: every raw row is either staged or quarantined, once
    raw_n = con.execute(f"SELECT count(*) FROM {RAW_GRANTS.qualified}").fetchone()
    assert raw_n == (staged + quarantined,)
