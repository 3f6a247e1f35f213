"""Council "spend over £500" CSVs: header synonyms, encodings, values, payer and recipient rules
(assets/raw/council_spend.py, assets/staging/stg_council_spend_payments.py).

Every test writes its own 3-row files into `<tmp>/raw/council_spend/` and runs the same
`ingest_folder` call as the asset, then the staging build. Expected values are written out
by hand from the fixture rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
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
from assets.intermediate.int_funding_awards import AWARD_COLUMNS, AWARD_TYPES
from assets.raw import council_spend as cs
from assets.raw import reference
from assets.raw.ingest import FILE_MANIFEST, QUARANTINE, ingest_folder
from assets.raw.reference import ECB_RATES, FUNDERS, ORGID_PREFIXES, SHIPPED_DIR, load_reference_csv
from assets.staging import stg_council_spend_payments as stg
from assets.staging.per_file import FileCacheRefresh
from assets.staging.quarantine import STG_QUARANTINE
from pipelines.quality import EXPECTATIONS_DIR, load_suite, run_suite
from pipelines.resources import FundtraceSettings

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "raw" / "council_spend"
COUNCILS = "match,council_org_id,council_name\nHarbourton City Council,GB-LAE-HBT,Harbourton City Council\nHCC,GB-LAE-HBT,\n"  # fmt: skip

# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Reference tables (prefixes, funders, ECB rates) built once; each test copies the file."""
    path = tmp_path_factory.mktemp("template") / "refs.duckdb"
    con = duckdb.connect(str(path))
    ensure_schemas(con)
    load_reference_csv(con, ORGID_PREFIXES, "prefix", SHIPPED_DIR / "orgid_prefixes.csv", None)
    load_reference_csv(con, FUNDERS, "funder_id", SHIPPED_DIR / "funders.csv", None)
    create_table(con, ECB_RATES, replace=True)
    load_ecb_rates(con, ECB_RATES.qualified)
    con.close()
    return path


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    d = tmp_path / "raw"
    (d / "council_spend").mkdir(parents=True)
    (d / "council_spend" / "councils.csv").write_text(COUNCILS)
    return d


@pytest.fixture
def con(tmp_path: Path, template_db: Path):
    shutil.copy(template_db, tmp_path / "build.duckdb")
    c = duckdb.connect(str(tmp_path / "build.duckdb"))
    yield c
    c.close()


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


def write(raw_dir: Path, name: str, header: list[str], rows: list[list[str]], **kw: Any) -> str:
    (raw_dir / "council_spend" / name).write_bytes(csv_bytes(header, rows, **kw))
    return f"council_spend/{name}"


def run_all(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> tuple[int, int, FileCacheRefresh]:
    """Ingest the folder, load councils.csv and build staging: (staged, quarantined, refresh)."""
    ingest_folder(
        con,
        source_system=cs.SOURCE_SYSTEM,
        raw_dir=raw_dir,
        folder=cs.FOLDER,
        suffixes=cs.SUFFIXES,
        raw_table=cs.RAW_SPEND,
        parser=cs.parse_file,
        parser_version=cs.PARSER_VERSION,
        log=lambda _m: None,
    )
    cs.load_councils(con, raw_dir)
    return stg.build_stg_council_spend_payments(con)


def run(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> tuple[int, int]:
    """Ingest the folder, load councils.csv and build staging: (staged, quarantined)."""
    staged, quarantined, _ = run_all(con, raw_dir)
    return staged, quarantined


def staged(con: duckdb.DuckDBPyConnection, cols: str, where: str = "TRUE") -> list[tuple]:
    return con.execute(
        f"SELECT {cols} FROM {stg.STG_PAYMENTS.qualified} WHERE {where} "
        "ORDER BY source_file, source_row"
    ).fetchall()


def quarantine(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int, str]]:
    return con.execute(
        f"SELECT source_file, source_row, reason FROM {STG_QUARANTINE.qualified} "
        "WHERE source_system = 'council_spend' ORDER BY source_file, source_row"
    ).fetchall()


def manifest(con: duckdb.DuckDBPyConnection, rel: str) -> tuple:
    row = con.execute(
        f"SELECT status, encoding, rows_in, rows_loaded, rows_quarantined, message "
        f"FROM {FILE_MANIFEST.qualified} WHERE source_file = ?",
        [rel],
    ).fetchone()
    assert row is not None, f"{rel} not in the manifest"
    return row


D = Decimal

# --------------------------------------------------------------------------- header mapping


def test_header_key_ignores_case_spacing_punctuation_and_pound() -> None:
    assert cs.header_key(" Supplier Name ") == cs.header_key("supplier_name") == "suppliername"
    assert cs.header_key("SupplierName") == "suppliername"
    assert cs.header_key("Amount £") == cs.header_key("Amount (£)") == cs.header_key("AMOUNT GBP")
    assert cs.header_key("\ufeffBody_Name") == "bodyname"
    assert cs.header_key("Value £") == "value"


def test_synonyms_are_unambiguous_and_cover_the_brief() -> None:
    # each normalised title belongs to one field (the module raises at import otherwise)
    index = cs.SYNONYM_INDEX
    expect = {
        "Supplier Name": "supplier_name", "Supplier": "supplier_name", "Vendor": "supplier_name",
        "Supplier name": "supplier_name", "Amount": "amount", "Net Amount": "amount",
        "Value £": "amount", "Amount £": "amount", "Date": "payment_date",
        "Payment Date": "payment_date", "Date Paid": "payment_date",
        "Transaction Date": "payment_date", "Transaction Number": "transaction_id",
        "Trans No": "transaction_id", "trans_no": "transaction_id", "body_name": "body_name",
        "Body Name": "body_name", "Organisation": "body_name", "Client": "body_name",
        "Expenditure Catergory": "expense_type", "Organisatonal Unit": "department",
        "caporrev": "capital_or_revenue", "Type of Expenditure": "capital_or_revenue",
    }  # fmt: skip
    for title, field in expect.items():
        assert index[cs.header_key(title)][0] == field, title


def test_better_synonym_wins_and_the_other_is_reported() -> None:
    hm = cs.map_headers(["Date", "Payment Date", "Amount", "Net Amount", "Supplier", "Misc"])
    assert hm.fields == {"payment_date": 1, "amount": 3, "supplier_name": 4}
    assert hm.ignored == ["Date", "Amount"]
    assert hm.unmapped == ["Misc"]


def test_one_typing_slip_is_accepted_but_not_two() -> None:
    hm = cs.map_headers(["Suplier Name", "Amount", "Paymnet Date", "Expenditure Catagory"])
    assert hm.fields["supplier_name"] == 0  # deletion
    assert hm.fields["payment_date"] == 2  # transposition
    assert hm.fields["expense_type"] == 3  # substitution
    assert set(hm.typos) == {"Suplier Name", "Paymnet Date", "Expenditure Catagory"}
    assert "supplier_name" not in cs.map_headers(["Suplir Nam", "Amount", "Date"]).fields


# Each layout: (title, role). Roles fill the cells below; every layout gets the same 3 rows.
ROLE_VALUES: dict[str, list[str]] = {
    "body": ["Harbourton City Council", "HCC", "harbourton city council "],
    "dept": ["Highways", "Digital Services", "Highways"],
    "cat": ["Street Lighting", "Software", "Grants"],
    "code": ["CL1", "IT2", "CG3"],
    "date": ["05/07/2024", "11/07/2024", "30/09/2024"],
    "txn": ["T-1", "T-2", "T-3"],
    "amount": ["48250.00", "6,480.00", "-125.50"],
    "vat": ["9650.00", "1296.00", "0"],
    "caprev": ["Capital", "Revenue", "Revenue"],
    "supid": ["S1", "S2", "S3"],
    "supplier": ["Lumenwave Systems Ltd", "Tidewater Digital Ltd", "Quayside Food Bank"],
    "company": ["09990003", "9990002", ""],
}
LAYOUTS: dict[str, list[tuple[str, str]]] = {
    "oxford-snake-caporrev": [("body_name", "body"), ("organisational_unit", "dept"), ("expenditure_category", "cat"), ("expenditure_code", "code"), ("paid_date", "date"), ("trans_no", "txn"), ("amount", "amount"), ("caporrev", "caprev"), ("supplier_id", "supid"), ("supplier_name", "supplier")],
    "oxford-title-trailing-space": [("Body Name", "body"), ("Organisational Unit", "dept"), ("Expenditure Category", "cat"), ("Expenditure Code", "code"), ("Paid Date", "date"), ("Trans No", "txn"), ("Amount", "amount"), ("Type", "caprev"), ("Supplier ID", "supid"), ("Supplier Name ", "supplier")],
    "oxford-organisatonal-typo": [("Body Name", "body"), ("Organisatonal Unit", "dept"), ("Expenditure Category", "cat"), ("Expenditure Code", "code"), ("Paid Date", "date"), ("Trans No", "txn"), ("Amount", "amount"), ("Type", "caprev"), ("Supplier ID", "supid"), ("Supplier Name", "supplier")],
    "oxford-organisation-expenditure-unit": [("Organisation", "body"), ("Service Area", "dept"), ("Expenditure Unit", "cat"), ("Expenditure Code", "code"), ("Paid Date", "date"), ("Trans No", "txn"), ("Amount", "amount"), ("caporrev", "caprev"), ("Supplier ID", "supid"), ("Supplier Name", "supplier")],
    "oxford-client-catergory": [("Client", "body"), ("Service Area", "dept"), ("Expenditure Catergory", "cat"), ("Expenditure Code", "code"), ("Paid Date", "date"), ("Trans No", "txn"), ("Amount", "amount"), ("Type of Expenditure", "caprev"), ("Supplier ID", "supid"), ("Supplier Name", "supplier")],
    "oxford-body-underscore-capital-or-revenue": [("Body_Name", "body"), ("Organisational Unit", "dept"), ("Expenditure Category", "cat"), ("Expenditure Code", "code"), ("Paid Date", "date"), ("Trans No", "txn"), ("Amount", "amount"), ("Capital or Revenue", "caprev"), ("Supplier ID", "supid"), ("Supplier Name", "supplier")],
    "net-amount-vat-vendor-company": [("Organisation Name", "body"), ("Department", "dept"), ("Expense Type", "cat"), ("Payment Date", "date"), ("Transaction Number", "txn"), ("Net Amount", "amount"), ("VAT", "vat"), ("Vendor", "supplier"), ("Company Number", "company")],
    "value-pound-date-supplier": [("Body", "body"), ("Supplier", "supplier"), ("Value £", "amount"), ("Date", "date"), ("Reference", "txn")],
    "amount-pound-parenthesis-payee": [("Council", "body"), ("Payee", "supplier"), ("Amount (£)", "amount"), ("Transaction Date", "date"), ("Trans No", "txn"), ("Directorate", "dept")],
    "upper-case-date-paid": [("BODY NAME", "body"), ("SUPPLIER NAME", "supplier"), ("AMOUNT £", "amount"), ("DATE PAID", "date"), ("CAPITAL/REVENUE", "caprev")],
    "lower-supplier-name-amount-pound": [("Body Name", "body"), ("Supplier name", "supplier"), ("Amount £", "amount"), ("Payment Date", "date"), ("trans_no", "txn"), ("Expenditure Catagory", "cat")],
}  # fmt: skip


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_header_variant_maps_and_stages(con, raw_dir: Path, layout: str) -> None:
    cols = LAYOUTS[layout]
    rows = [[ROLE_VALUES[role][i] for _, role in cols] for i in range(3)]
    rel = write(raw_dir, f"{layout}.csv", [t for t, _ in cols], rows)
    assert run(con, raw_dir) == (3, 0)
    assert manifest(con, rel)[:5] == ("loaded", "utf-8", 3, 3, 0)
    roles = {role for _, role in cols}
    got = staged(
        con,
        "supplier_name, amount_original, payment_date, council_org_ref, department, "
        "expense_type, transaction_id, capital_or_revenue, vat_amount, recipient_org_ref",
    )
    assert [g[:4] for g in got] == [
        ("Lumenwave Systems Ltd", D("48250"), dt.date(2024, 7, 5), "GB-LAE-HBT"),
        ("Tidewater Digital Ltd", D("6480"), dt.date(2024, 7, 11), "GB-LAE-HBT"),
        ("Quayside Food Bank", D("-125.50"), dt.date(2024, 9, 30), "GB-LAE-HBT"),
    ]
    for i, g in enumerate(got):
        assert g[4] == (ROLE_VALUES["dept"][i] if "dept" in roles else None)
        assert g[5] == (ROLE_VALUES["cat"][i] if "cat" in roles else None)
        assert g[6] == (ROLE_VALUES["txn"][i] if "txn" in roles else None)
        assert g[7] == (ROLE_VALUES["caprev"][i] if "caprev" in roles else None)
        assert g[8] == ([D("9650"), D("1296"), D("0")][i] if "vat" in roles else None)
    expected_refs = ["GB-COH-09990003", "GB-COH-09990002"] if "company" in roles else [None, None]
    for g, ref in zip(got[:2], expected_refs, strict=True):
        assert g[9] == ref if ref else g[9].startswith("FTNAME-")


# --------------------------------------------------------------------------- encodings, layout


def test_utf8_bom_and_crlf(con, raw_dir: Path) -> None:
    rel = write(
        raw_dir,
        "bom.csv",
        ["Supplier Name", "Amount", "Payment Date", "Body Name"],
        [["Café Quayside Ltd", "742.50", "14/11/2024", "HCC"]] * 3,
        bom=True,
        eol="\r\n",
    )
    assert (raw_dir / rel).read_bytes().startswith(b"\xef\xbb\xbfSupplier Name")
    assert run(con, raw_dir) == (3, 0)
    status, enc, *_ = manifest(con, rel)
    assert (status, enc) == ("loaded", "utf-8")
    assert {r[0] for r in staged(con, "supplier_name")} == {"Café Quayside Ltd"}


def test_windows_1252_with_pound_amounts(con, raw_dir: Path) -> None:
    rel = write(
        raw_dir,
        "cp1252.csv",
        ["Vendor", "Amount £", "Date Paid", "Client"],
        [
            ["Harbourton Older People\u2019s Forum", "£1,875.00", "07/11/2024", "HCC"],
            ["Café Quayside Ltd", "£742.50", "14/11/2024", "HCC"],
            ["Lumenwave Systems Ltd", "(£480.00)", "12/11/2024", "HCC"],
        ],
        encoding="cp1252",
    )
    raw = (raw_dir / rel).read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert run(con, raw_dir) == (3, 0)
    status, enc, _, _, _, message = manifest(con, rel)
    assert (status, enc) == ("loaded", "cp1252")
    assert "transcoded from cp1252" in message
    assert staged(con, "supplier_name, amount_original") == [
        ("Harbourton Older People\u2019s Forum", D("1875")),
        ("Café Quayside Ltd", D("742.5")),
        ("Lumenwave Systems Ltd", D("-480")),
    ]


def test_title_lines_above_the_header_are_skipped(con, raw_dir: Path) -> None:
    data = (
        "Harbourton City Council - spend over £500,,\n"
        "Quarter 3 2024,,\n"
        "\n"
        "Supplier,Amount,Date\n"
        "Tidewater Digital Ltd,100.00,01/07/2024\n"
        "Portside Mobility Ltd,200.00,02/07/2024\n"
        "Northquay Telecom Ltd,300.00,03/07/2024\n"
    )
    (raw_dir / "council_spend" / "titled.csv").write_text(data)
    (raw_dir / "council_spend" / "councils.csv").write_text(
        COUNCILS + "titled.csv,GB-LAE-HBT,Harbourton City Council\n"
    )
    assert run(con, raw_dir) == (3, 0)
    _, _, _, loaded, _, message = manifest(con, "council_spend/titled.csv")
    assert loaded == 3 and "header line 4" in message and "3 line(s) above the header" in message
    assert staged(con, "source_row, source_locator, supplier_name") == [
        (1, "data row 1 (line 5)", "Tidewater Digital Ltd"),
        (2, "data row 2 (line 6)", "Portside Mobility Ltd"),
        (3, "data row 3 (line 7)", "Northquay Telecom Ltd"),
    ]


def test_unknown_layout_fails_alone_naming_file_and_columns(con, raw_dir: Path) -> None:
    good = write(raw_dir, "good.csv", ["Supplier", "Amount", "Date", "Body"],
                 [["Tidewater Digital Ltd", "10", "01/07/2024", "HCC"]] * 3)  # fmt: skip
    bad = write(raw_dir, "bad.csv", ["Recipient Ref", "Cost", "When", "Body Name"],
                [["R1", "10", "01/07/2024", "HCC"]] * 3)  # fmt: skip
    assert run(con, raw_dir) == (3, 0)
    status, _, rows_in, loaded, quarantined, message = manifest(con, bad)
    assert (status, loaded, quarantined) == ("failed", 0, 1) and rows_in == 1
    assert "council_spend/bad.csv" in message
    for needle in ("supplier", "amount", "payment date", "'Recipient Ref'", "'Cost'", "'When'"):
        assert needle in message, needle
    # only the columns it could not map are listed as such
    assert "could not map: 'Recipient Ref', 'Cost', 'When' (" in message
    q = con.execute(
        f"SELECT source_row, reason FROM {QUARANTINE.qualified} WHERE source_file = ?", [bad]
    ).fetchall()
    assert q == [(None, message)]
    assert manifest(con, good)[:4] == ("loaded", "utf-8", 3, 3)


def test_shifted_row_is_quarantined_at_ingest_and_a_stray_comma_is_not(con, raw_dir: Path) -> None:
    (raw_dir / "council_spend" / "ragged.csv").write_text(
        "Body,Supplier,Amount,Date\n"
        "HCC,Tidewater Digital Ltd,100,01/07/2024\n"
        "HCC,Smith, John,200,02/07/2024\n"
        "HCC,Portside Mobility Ltd,300,03/07/2024,\n"
    )
    assert run(con, raw_dir) == (2, 0)
    assert manifest(con, "council_spend/ragged.csv")[:5] == ("partial", "utf-8", 3, 2, 1)
    q = con.execute(
        f"SELECT source_row, source_locator, reason FROM {QUARANTINE.qualified} "
        "WHERE source_file = 'council_spend/ragged.csv'"
    ).fetchall()
    assert q == [
        (
            2,
            "data row 2 (line 3)",
            "council_spend/ragged.csv data row 2 (line 3): 5 fields where the header has 4: "
            "shifted or unquoted column",
        )
    ]
    assert staged(con, "source_row, amount_original") == [(1, D("100")), (3, D("300"))]


def test_a_file_duckdb_cannot_sniff_is_read_by_python_without_breaking_the_run(
    con, raw_dir: Path
) -> None:
    # mixed line ends and a stray character after a closing quote make DuckDB's reader fail;
    # that failure must not abort the ingest transaction of this or any later file
    (raw_dir / "council_spend" / "a-mixed.csv").write_bytes(
        b"Body,Supplier,Amount,Date\r\nHCC,A Ltd,1,01/07/2024\r\n"
        b"HCC,B Ltd,2,01/07/2024\nHCC,C Ltd,3,01/07/2024\n"
    )
    (raw_dir / "council_spend" / "b-quote.csv").write_bytes(
        b'Body,Supplier,Amount,Date\nHCC,"D Ltd"x,4,01/07/2024\nHCC,E Ltd,5,01/07/2024\n'
    )
    write(raw_dir, "c-clean.csv", ["Body", "Supplier", "Amount", "Date"],
          [["HCC", "F Ltd", "6", "01/07/2024"]])  # fmt: skip
    assert run(con, raw_dir) == (6, 0)
    for rel, n in (("a-mixed.csv", 3), ("b-quote.csv", 2), ("c-clean.csv", 1)):
        assert manifest(con, f"council_spend/{rel}")[:4] == ("loaded", "utf-8", n, n)
    assert [r[0] for r in staged(con, "amount_original")] == [D(i) for i in range(1, 7)]


# --------------------------------------------------------------------------- values


def test_amount_forms_and_credits(con, raw_dir: Path) -> None:
    amounts = ["£1,234.56", "(123.45)", "-50.00", "(£480.00)", "1,500", "£-20", "#VALUE!", ""]
    rows = [["HCC", f"Supplier {i}", a, "01/07/2024"] for i, a in enumerate(amounts)]
    write(raw_dir, "amounts.csv", ["Body", "Supplier", "Amount", "Date"], rows)
    assert run(con, raw_dir) == (6, 2)
    assert staged(con, "amount_original, is_credit") == [
        (D("1234.56"), False),
        (D("-123.45"), True),
        (D("-50"), True),
        (D("-480"), True),
        (D("1500"), False),
        (D("-20"), True),
    ]
    assert [(r[1], r[2]) for r in quarantine(con)] == [
        (7, "unparseable amount: #VALUE!"),
        (8, "missing amount"),
    ]


def test_date_forms(con, raw_dir: Path) -> None:
    dates = ["05/11/2024", "05-Nov-24", "2024-11-05", "05/11/2024 00:00:00", "5-Nov-2024",
             "2024-11-05T10:30:00", "00:00:00", "31/02/2024"]  # fmt: skip
    rows = [["HCC", f"Supplier {i}", "10", d] for i, d in enumerate(dates)]
    write(raw_dir, "dates.csv", ["Body", "Supplier", "Amount", "Paid Date"], rows)
    assert run(con, raw_dir) == (6, 2)
    assert {r[0] for r in staged(con, "payment_date")} == {dt.date(2024, 11, 5)}
    assert [(r[1], r[2]) for r in quarantine(con)] == [
        (7, "unparseable payment date: 00:00:00"),
        (8, "unparseable payment date: 31/02/2024"),
    ]


def test_money_is_converted_at_the_ecb_rate_and_pre_1999_is_quarantined(con, raw_dir: Path) -> None:
    write(raw_dir, "fx.csv", ["Body", "Supplier", "Amount", "Date"],
          [["HCC", "A Ltd", "100", "05/11/2024"], ["HCC", "B Ltd", "100", "09/11/2024"],
           ["HCC", "C Ltd", "100", "31/12/1998"]])  # fmt: skip
    assert run(con, raw_dir) == (2, 1)
    # 2024-11-09 is a Saturday: the Friday fixing applies
    rates = dict(
        con.execute(
            "SELECT rate_date, units_per_eur FROM raw.ref_ecb_rates WHERE currency = 'GBP' "
            "AND rate_date IN (DATE '2024-11-05', DATE '2024-11-08')"
        ).fetchall()
    )
    got = staged(con, "currency_original, amount_eur, fx_rate, fx_date")
    assert got[0] == ("GBP", (D(100) / rates[dt.date(2024, 11, 5)]).quantize(D("0.0001")),
                      rates[dt.date(2024, 11, 5)], dt.date(2024, 11, 5))  # fmt: skip
    assert got[1][2:] == (rates[dt.date(2024, 11, 8)], dt.date(2024, 11, 8))
    reason = quarantine(con)[0][2]
    assert reason.startswith("no ECB rate for the payment date") and "1999-01-04" in reason


def test_redacted_suppliers_are_kept_as_one_redacted_recipient_per_council(
    con, raw_dir: Path
) -> None:
    names = ["Redacted personal data", "REDACTED", "Personal data redacted",
             "Redacted, personal information", "Redacted Personal Details",
             "REDACTIVE MEDIA SALES LIMITED", "Withheld - personal data"]  # fmt: skip
    rows = [["HCC", n, "100", "01/07/2024"] for n in names]
    write(raw_dir, "redacted.csv", ["Body", "Supplier Name", "Amount", "Date"], rows)
    assert run(con, raw_dir) == (7, 0)
    got = staged(con, "supplier_name, recipient_kind, recipient_org_ref, recipient_ref_basis")
    for name, kind, ref, basis in got:
        if name.startswith("REDACTIVE"):
            assert (kind, basis) == ("organisation", "name") and ref.startswith("FTNAME-")
        else:
            assert (kind, ref, basis) == ("redacted", "FT-REDACTED-GB-LAE-HBT", "redacted"), name
    assert stg.is_redacted_name("Redacted personal data")
    assert not stg.is_redacted_name("Personal Data Solutions Ltd")
    assert not stg.is_redacted_name(None)


def test_company_and_charity_numbers_make_the_recipient_ref(con, raw_dir: Path) -> None:
    header = ["Body", "Supplier", "Amount", "Date", "Company No", "Charity Number"]
    write(raw_dir, "ids.csv", header, [
        ["HCC", "Lumenwave Systems Ltd", "1", "01/07/2024", "9990003", ""],
        ["HCC", "Quayside Food Bank", "1", "01/07/2024", "N/A", "1199004"],
        ["HCC", "Harbour Arts Collective", "1", "01/07/2024", "not registered", ""],
        ["HCC", "", "1", "01/07/2024", "SC311560", ""],
    ])  # fmt: skip
    assert run(con, raw_dir) == (4, 0)
    got = staged(con, "recipient_org_ref, recipient_ref_basis, supplier_company_number")
    assert got[0] == ("GB-COH-09990003", "company number", "09990003")
    assert got[1] == ("GB-CHC-1199004", "charity number", None)
    assert got[2][1:] == ("name", None) and got[2][0].startswith("FTNAME-")
    assert got[3] == ("GB-COH-SC311560", "company number", "SC311560")


def test_missing_supplier_is_quarantined(con, raw_dir: Path) -> None:
    write(raw_dir, "nosupplier.csv", ["Body", "Supplier", "Amount", "Date"],
          [["HCC", "   ", "100", "01/07/2024"], ["HCC", "Tidewater Digital Ltd", "5", "01/07/2024"],
           ["", "", "", ""]])  # fmt: skip
    assert run(con, raw_dir) == (1, 1)  # the all-blank row is not a record
    assert quarantine(con) == [("council_spend/nosupplier.csv", 1, "missing supplier")]


def test_split_lines_are_all_kept(con, raw_dir: Path) -> None:
    line = ["HCC", "HCC-24-07071", "Quayside Food Bank", "850.00", "16/07/2024"]
    write(raw_dir, "split.csv", ["Body", "Trans No", "Supplier", "Amount", "Date"],
          [line, line, ["HCC", "HCC-24-07071", "Quayside Food Bank", "150.00", "16/07/2024"]])  # fmt: skip
    assert run(con, raw_dir) == (3, 0)
    got = staged(con, "payment_id, transaction_id, amount_original")
    assert [g[0] for g in got] == [f"council_spend/split.csv#{i}" for i in (1, 2, 3)]
    assert sum(g[2] for g in got) == D("1850")


# --------------------------------------------------------------------------- payer


def test_unknown_payer_is_quarantined_until_councils_csv_names_it(con, raw_dir: Path) -> None:
    write(raw_dir, "payers.csv", ["Body Name", "Supplier", "Amount", "Date"], [
        ["Harbourton City Council", "A Ltd", "1", "01/07/2024"],
        ["Harbourton Port Authority", "B Ltd", "2", "01/07/2024"],
        ["  harbourton   CITY council ", "C Ltd", "3", "01/07/2024"],
    ])  # fmt: skip
    assert run(con, raw_dir) == (2, 1)
    (_, row, reason), = quarantine(con)  # fmt: skip
    assert row == 2
    assert reason.startswith("unknown payer: add it to council_spend/councils.csv")
    assert "'Harbourton Port Authority'" in reason and "payers.csv" in reason
    assert {r[0] for r in staged(con, "council_org_ref")} == {"GB-LAE-HBT"}

    # the analyst adds the body; the spend file is not re-read, staging resolves it
    with (raw_dir / "council_spend" / "councils.csv").open("a") as fh:
        fh.write("Harbourton Port Authority,GB-GOR-PA9999,Harbourton Port Authority\n")
    assert run(con, raw_dir) == (3, 0)
    assert staged(con, "council_org_ref, council_name, funding_level", "source_row = 2") == [
        ("GB-GOR-PA9999", "Harbourton Port Authority", "national")
    ]


def test_payer_order_name_then_file_glob_then_body_org_id(con, raw_dir: Path) -> None:
    (raw_dir / "council_spend" / "councils.csv").write_text(
        "match,council_org_id,council_name\n"
        "HCC,gb-lae-hbt,\n"
        "harbourton-*.csv,GB-LAE-HBT,Harbourton City Council\n"
        "*.csv,GB-LAE-ZZZ,Catch-all Council\n"
    )
    write(raw_dir, "harbourton-q1.csv", ["Supplier", "Amount", "Date"],
          [["A Ltd", "1", "01/07/2024"]] * 3)  # fmt: skip
    write(raw_dir, "other.csv", ["Body", "Supplier", "Amount", "Date"], [
        ["HCC", "A Ltd", "1", "01/07/2024"],
        ["GB-LAE-OXF", "B Ltd", "1", "01/07/2024"],
        ["Somewhere Council", "C Ltd", "1", "01/07/2024"],
    ])  # fmt: skip
    assert run(con, raw_dir) == (6, 0)
    got = staged(con, "source_file, council_org_ref, council_name, payer_basis")
    assert got[:3] == [(
        "council_spend/harbourton-q1.csv", "GB-LAE-HBT", "Harbourton City Council",
        "councils.csv file glob 'harbourton-*.csv'",
    )] * 3  # fmt: skip
    assert got[3][1:] == ("GB-LAE-HBT", "HCC", "councils.csv name")  # name from the file
    assert got[4][1:] == ("GB-LAE-ZZZ", "Catch-all Council", "councils.csv file glob '*.csv'")
    assert got[5][1:] == ("GB-LAE-ZZZ", "Catch-all Council", "councils.csv file glob '*.csv'")
    # without the catch-all glob, an org-id in the body column is the payer
    (raw_dir / "council_spend" / "councils.csv").write_text(
        "match,council_org_id,council_name\nHCC,GB-LAE-HBT,\n"
    )
    run(con, raw_dir)
    assert staged(con, "council_org_ref, payer_basis", "source_file LIKE '%other.csv'")[1] == (
        "GB-LAE-OXF",
        "body column org-id",
    )


def test_councils_csv_is_not_a_spend_file_and_bad_lines_are_quarantined(con, raw_dir: Path) -> None:
    (raw_dir / "council_spend" / "councils.csv").write_text(
        "match,council_org_id,council_name\n"
        "HCC,GB-LAE-HBT,Harbourton City Council\n"
        ",GB-LAE-XXX,No match\n"
        "Oxford,OXF,Oxford\n"
        "hcc,GB-LAE-OXF,Clash\n"
        "HCC,GB-LAE-HBT,Harbourton again\n"
    )
    write(raw_dir, "a.csv", ["Body", "Supplier", "Amount", "Date"],
          [["HCC", "A Ltd", "1", "01/07/2024"]] * 3)  # fmt: skip
    assert run(con, raw_dir) == (3, 0)
    status, _, rows_in, loaded, quarantined, message = manifest(con, "council_spend/councils.csv")
    assert (status, rows_in, loaded, quarantined) == ("partial", 3, 0, 3)
    assert "not a spend file" in message and "1 mapping(s)" in message
    reasons = [
        r[0]
        for r in con.execute(
            f"SELECT reason FROM {QUARANTINE.qualified} WHERE source_file = "
            "'council_spend/councils.csv' ORDER BY source_row"
        ).fetchall()
    ]
    assert reasons[0].endswith("data row 2: empty match")
    assert "'OXF' is not an org-id" in reasons[1]
    assert "'hcc' is already mapped to GB-LAE-HBT in data row 1" in reasons[2]
    assert con.execute(f"SELECT count(*) FROM {cs.RAW_COUNCILS.qualified}").fetchone() == (1,)
    assert con.execute(
        f"SELECT count(*) FROM {cs.RAW_SPEND.qualified} WHERE source_file LIKE '%councils.csv'"
    ).fetchone() == (0,)


def test_councils_csv_without_its_columns_fails_visibly(con, raw_dir: Path) -> None:
    (raw_dir / "council_spend" / "councils.csv").write_text("body,org\nHCC,GB-LAE-HBT\n")
    write(raw_dir, "a.csv", ["Body", "Supplier", "Amount", "Date"],
          [["HCC", "A Ltd", "1", "01/07/2024"]] * 3)  # fmt: skip
    assert run(con, raw_dir) == (0, 3)
    status, *_, message = manifest(con, "council_spend/councils.csv")
    assert status == "failed" and "missing match, council_org_id" in message
    assert all(r[2].startswith("unknown payer") for r in quarantine(con))
    n, problems = cs.load_councils(con, raw_dir)
    assert n == 0 and "missing match, council_org_id" in problems[0]


def test_council_for_file_mirrors_the_sql_glob() -> None:
    mappings, _ = cs.read_councils(DEMO / "councils.csv", "council_spend/councils.csv")
    assert cs.council_for_file(mappings, "Harbourton-Payments-2024-Q4.csv") is not None
    assert cs.council_for_file(mappings, "harbourton-spend-over-500-2024-q3.csv") is None


# --------------------------------------------------------------------------- awards


def test_awards_sql_has_the_canonical_columns(con, raw_dir: Path) -> None:
    write(raw_dir, "aw.csv", ["Body", "Service Area", "Expense Type", "Trans No", "Supplier",
                              "Amount", "Date"], [
        ["HCC", "Highways", "Street Lighting", "T1", "Lumenwave Systems Ltd", "10", "01/07/2024"],
        ["HCC", "Adult Social Care", "Direct Payments", "", "Redacted personal data", "20",
         "01/07/2024"],
        ["HCC", "Highways", "Street Lighting", "T1", "Lumenwave Systems Ltd", "10", "01/07/2024"],
    ])  # fmt: skip
    run(con, raw_dir)
    cur = con.execute(f"SELECT * FROM ({stg.AWARDS_SQL}) ORDER BY source_row")
    assert [d[0] for d in cur.description or []] == AWARD_COLUMNS
    rows = [dict(zip(AWARD_COLUMNS, r, strict=True)) for r in cur.fetchall()]
    assert {r["award_type"] for r in rows} <= set(AWARD_TYPES)
    assert len({r["award_id"] for r in rows}) == 3
    assert rows[0]["award_id"] == "council_spend:council_spend/aw.csv#1"
    assert (rows[0]["programme"], rows[0]["title"], rows[0]["source_record_id"]) == (
        "Highways",
        "Street Lighting",
        "T1",
    )
    assert (rows[0]["funder_org_ref"], rows[0]["controller_org_ref"], rows[0]["funding_level"]) == (
        "GB-LAE-HBT",
        "GB-LAE-HBT",
        "local",
    )
    redacted = rows[1]
    assert redacted["recipient_kind"] == "redacted" and redacted["recipient_name"] is None
    assert redacted["source_record_id"] == "data row 2"


# --------------------------------------------------------------------------- demo data


def _demo_truth() -> dict[str, tuple[int, int, Decimal]]:
    """Per demo file: (data rows, rows with a parseable amount, their total), read here with
    csv and Decimal."""

    def amount(text: str) -> Decimal | None:
        t = text.strip().replace("£", "").replace(",", "")
        neg = t.startswith("(") and t.endswith(")")
        try:
            v = Decimal(t.strip("()"))
        except ArithmeticError:
            return None
        return -v if neg else v

    out = {}
    for name, enc, col in (
        ("harbourton-spend-over-500-2024-q3.csv", "utf-8-sig", "Net Amount"),
        ("harbourton-payments-2024-q4.csv", "cp1252", "Amount £"),
    ):
        with (DEMO / name).open(encoding=enc, newline="") as fh:
            rows = list(csv.DictReader(fh))
        vals = [v for r in rows if (v := amount(r[col])) is not None]
        out[f"council_spend/{name}"] = (len(rows), len(vals), sum(vals, Decimal(0)))
    return out


def test_demo_folder_through_dagster_assets(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(DEMO, raw / "council_spend")
    db = tmp_path / "build.duckdb"
    result = dg.materialize(
        [
            reference.ref_orgid_prefixes,
            reference.ref_funders,
            reference.ref_ecb_rates,
            cs.raw_council_spend,
            cs.raw_council_spend_councils,
            stg.stg_council_spend_payments,
        ],
        resources={
            "duckdb": DuckDBResource(database=str(db)),
            "fundtrace": FundtraceSettings(raw_dir=str(raw), marts_db=str(tmp_path / "m.duckdb")),
        },
    )
    assert result.success
    con = duckdb.connect(str(db), read_only=True)
    truth = _demo_truth()
    assert len(truth) == 2
    for rel, (n_rows, n_parseable, total) in truth.items():
        n_staged, staged_total = con.execute(
            f"SELECT count(*), sum(amount_original) FROM {stg.STG_PAYMENTS.qualified} "
            "WHERE source_file = ?",
            [rel],
        ).fetchone() or (0, 0)
        n_quar = con.execute(
            f"SELECT count(*) FROM {STG_QUARANTINE.qualified} WHERE source_file = ?", [rel]
        ).fetchone()
        assert n_staged + (n_quar[0] if n_quar else 0) == n_rows
        # every parseable amount in the demo is on a staged row
        assert (n_staged, Decimal(staged_total)) == (n_parseable, total)
    # the story the demo tells: the partnership company and the street-lighting supplier
    flows = dict(
        con.execute(
            f"SELECT recipient_org_ref, count(*) FROM {stg.STG_PAYMENTS.qualified} "
            "WHERE recipient_org_ref IN ('GB-COH-09990001', 'GB-COH-09990003', "
            "'FT-REDACTED-GB-LAE-HBT') GROUP BY 1"
        ).fetchall()
    )
    assert flows == {"GB-COH-09990001": 4, "GB-COH-09990003": 8, "FT-REDACTED-GB-LAE-HBT": 2}
    levels = con.execute(
        f"SELECT DISTINCT council_org_ref, funding_level FROM {stg.STG_PAYMENTS.qualified}"
    ).fetchall()
    assert levels == [("GB-LAE-HBT", "local")]
    con.close()


def test_gx_suite_passes_on_the_demo_and_flags_a_file_loaded_twice(con, raw_dir: Path) -> None:
    suite = load_suite(EXPECTATIONS_DIR / "staging__stg_council_spend_payments.json")
    shutil.rmtree(raw_dir / "council_spend")
    shutil.copytree(DEMO, raw_dir / "council_spend")
    run(con, raw_dir)
    outcome = run_suite(con, "staging", stg.STG_PAYMENTS.name, suite)
    assert outcome.errors == [] and len(outcome.expectations) == len(suite["expectations"])
    assert outcome.passed, [e.label for e in outcome.expectations if not e.success]

    # the same content under a second name: loaded twice, flagged by a warning only
    shutil.copy(
        raw_dir / "council_spend" / "harbourton-spend-over-500-2024-q3.csv",
        raw_dir / "council_spend" / "harbourton-spend-over-500-2024-q3 (copy).csv",
    )
    run(con, raw_dir)
    outcome = run_suite(con, "staging", stg.STG_PAYMENTS.name, suite)
    assert outcome.errors == [] and outcome.critical_failures == []
    (warning,) = outcome.warning_failures
    assert "count(DISTINCT source_file) > 1" in warning.kwargs["unexpected_rows_query"]
    assert warning.unexpected_count == 1


def test_a_new_spend_file_is_staged_alone_and_matches_a_full_build(con, raw_dir: Path) -> None:
    header = ["Body Name", "Supplier", "Amount", "Date"]
    write(raw_dir, "jan.csv", header, [["Harbourton City Council", "A Ltd", "1", "01/01/2024"]])
    write(raw_dir, "feb.csv", header, [["Harbourton City Council", "B Ltd", "x", "01/02/2024"]])
    assert run(con, raw_dir) == (1, 1)
    write(raw_dir, "mar.csv", header, [
        ["Harbourton City Council", "C Ltd", "3", "01/03/2024"],
        ["Nobody Knows Council", "D Ltd", "4", "01/03/2024"],
    ])  # fmt: skip
    staged_n, quarantined_n, refresh = run_all(con, raw_dir)
    assert (staged_n, quarantined_n) == (2, 2)
    assert (refresh.full, refresh.derived, refresh.kept) == (False, ["council_spend/mar.csv"], 2)

    def both() -> tuple[list[tuple], list[tuple]]:
        return staged(con, "* EXCLUDE (loaded_at)"), quarantine(con)

    incremental = both()
    assert [r[0] for r in staged(con, "supplier_name")] == ["A Ltd", "C Ltd"]
    con.execute(f"DROP TABLE {stg.PAYMENT_ROWS}")  # from scratch: the same rows
    assert stg.build_stg_council_spend_payments(con)[2].full
    assert both() == incremental
