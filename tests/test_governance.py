"""Governance register: raw parsers (assets/raw/governance.py), staging rules
(assets/staging/stg_governance.py), GX suites and the shipped demo files.

Every test writes its own small files (three data rows) into `<tmp>/raw/governance/` and ingests
them with the same call the asset makes; staging runs on the DuckDB file in tmp_path.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from assets.common.money import load_ecb_rates
from assets.common.sql import install_macros
from assets.common.tables import create_table, ensure_schemas
from assets.raw import reference
from assets.raw.governance import (
    RAW_ASSETS,
    RAW_MEMBERS,
    RAW_PARTNERSHIPS,
    RAW_PROJECTS,
    RAW_SPECS,
    cell_text,
    ingest_governance,
    raw_governance,
)
from assets.raw.ingest import FILE_MANIFEST, QUARANTINE
from assets.raw.reference import ECB_RATES
from assets.staging import stg_governance as stg
from assets.staging.quarantine import STG_QUARANTINE
from pipelines.quality import EXPECTATIONS_DIR, load_suite, run_suite
from pipelines.resources import FundtraceSettings

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "raw" / "governance"

P_HEAD = ["partnership_id", "name", "legal_form", "city", "country", "start_date", "end_date",
          "accountable_to_id", "accountable_to_name", "decision_body", "source_url"]  # fmt: skip
M_HEAD = ["partnership_id", "member_id", "member_name", "member_type", "role", "share_pct",
          "voting_pct", "start_date", "end_date", "source_url"]  # fmt: skip
J_HEAD = ["project_id", "partnership_id", "title", "city", "start_date", "end_date", "budget",
          "currency", "cordis_id", "ocids", "kohesio_id", "source_url"]  # fmt: skip
A_HEAD = ["asset_id", "project_id", "description", "asset_type", "owner_id", "owner_name",
          "licence"]  # fmt: skip


def prow(pid: str, legal: str = "company", start: str = "", end: str = "", **kw: str) -> list[str]:
    row = dict(zip(P_HEAD, [pid, f"Partnership {pid}", legal, "Harbourton", "GB", start, end,
                            "GB-LAE-HBT", "Council cabinet", "Board", ""], strict=True))  # fmt: skip
    row.update(kw)
    return [row[c] for c in P_HEAD]


def mrow(pid: str, mid: str, name: str, mtype: str, role: str, share: str = "", **kw: str):
    row = dict(zip(M_HEAD, [pid, mid, name, mtype, role, share, "", "", "", ""], strict=True))
    row.update(kw)
    return [row[c] for c in M_HEAD]


def jrow(prj: str, pid: str, **kw: str) -> list[str]:
    row = dict.fromkeys(J_HEAD, "")
    row.update(project_id=prj, partnership_id=pid, title=f"Project {prj}")
    row.update(kw)
    return [row[c] for c in J_HEAD]


def arow(aid: str, prj: str, atype: str = "data", **kw: str) -> list[str]:
    row = dict.fromkeys(A_HEAD, "")
    row.update(asset_id=aid, project_id=prj, description="x", asset_type=atype)
    row.update(kw)
    return [row[c] for c in A_HEAD]


THREE_PARTNERSHIPS = [prow("P1"), prow("P2", "mou"), prow("P3", "consortium")]


def csv_bytes(
    header: list[str],
    rows: list[list[str]],
    *,
    encoding: str = "utf-8",
    bom: bool = False,
    delimiter: str = ",",
    eol: str = "\n",
) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator=eol)
    w.writerow(header)
    w.writerows(rows)
    data = buf.getvalue().encode(encoding)
    return (b"\xef\xbb\xbf" + data) if bom else data


def write(folder: Path, name: str, header: list[str], rows: list[list[str]], **kw: Any) -> Path:
    path = folder / name
    path.write_bytes(csv_bytes(header, rows, **kw))
    return path


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    d = tmp_path / "raw"
    (d / "governance").mkdir(parents=True)
    return d


@pytest.fixture
def folder(raw_dir: Path) -> Path:
    return raw_dir / "governance"


@pytest.fixture(scope="module")
def ecb_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ECB rates built once per module, copied into each test database."""
    path = tmp_path_factory.mktemp("ecb") / "ecb.parquet"
    c = duckdb.connect()
    create_table(c, ECB_RATES, replace=True)
    load_ecb_rates(c, ECB_RATES.qualified)
    c.execute(f"COPY {ECB_RATES.qualified} TO '{path}' (FORMAT parquet)")
    c.close()
    return path


@pytest.fixture
def con(tmp_path: Path, ecb_parquet: Path):
    c = duckdb.connect(str(tmp_path / "build.duckdb"))
    ensure_schemas(c)
    create_table(c, ECB_RATES, replace=True)
    c.execute(f"INSERT INTO {ECB_RATES.qualified} SELECT * FROM '{ecb_parquet}'")
    install_macros(c)
    yield c
    c.close()


def ingest(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> list[str]:
    log: list[str] = []
    ingest_governance(con, raw_dir, log=log.append)
    return log


def manifest(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    cur = con.execute(f"SELECT * FROM {FILE_MANIFEST.qualified}")
    names = [d[0] for d in cur.description or []]
    return {r[1]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def rows(con: duckdb.DuckDBPyConnection, sql: str, *params: Any) -> list[tuple]:
    return con.execute(sql, list(params)).fetchall()


def stg_reasons(con: duckdb.DuckDBPyConnection, table: str) -> dict[int, str]:
    return dict(
        rows(
            con,
            f"SELECT source_row, reason FROM {STG_QUARANTINE.qualified} "
            "WHERE staging_table = ? ORDER BY source_row",
            table,
        )
    )


def staged(con: duckdb.DuckDBPyConnection, spec_name: str, cols: str) -> list[tuple]:
    return rows(con, f"SELECT {cols} FROM staging.{spec_name} ORDER BY source_row")


def assert_reconciles(con: duckdb.DuckDBPyConnection) -> None:
    """rows_in = loaded + quarantined per file at ingest, and per file x table at staging."""
    for f, m in manifest(con).items():
        assert m["rows_in"] == m["rows_loaded"] + m["rows_quarantined"], f
    for pair in stg.STAGING_PAIRS:
        for (source_file,) in rows(con, f"SELECT DISTINCT source_file FROM {pair.raw.qualified}"):
            n_raw = rows(
                con, f"SELECT count(*) FROM {pair.raw.qualified} WHERE source_file = ?", source_file
            )[0][0]
            n_stg = rows(
                con,
                f"SELECT count(*) FROM {pair.staging.qualified} WHERE source_file = ?",
                source_file,
            )[0][0]
            n_q = rows(
                con,
                f"SELECT count(*) FROM {STG_QUARANTINE.qualified} "
                "WHERE staging_table = ? AND source_file = ?",
                pair.staging.name,
                source_file,
            )[0][0]
            assert n_raw == n_stg + n_q, (pair.staging.name, source_file)


# --------------------------------------------------------------------------- raw: CSV quirks


def test_header_case_whitespace_bom_semicolons_crlf_and_trailing_empty_rows(con, raw_dir, folder):
    header = [" Partnership ID ", "NAME", "Legal-Form", "Start Date", "Notes"]
    body = [
        ["P1", "One", "company", "01/04/2022", "n"],
        ["P2", "Two", "MoU", "2023-03-15", ""],
        ["P3", "Three", "consortium", "", ""],
        ["", "", "", "", ""],
        ["", "", "", "", ""],
    ]
    write(folder, "Partnerships.csv", header, body, bom=True, delimiter=";", eol="\r\n")
    ingest(con, raw_dir)
    m = manifest(con)["governance/Partnerships.csv"]
    assert (m["status"], m["rows_in"], m["rows_loaded"]) == ("loaded", 3, 3)
    assert "columns ignored: Notes" in m["message"]
    assert rows(
        con,
        f"SELECT partnership_id, name, legal_form, start_date, source_row FROM "
        f"{RAW_PARTNERSHIPS.qualified} ORDER BY source_row",
    ) == [
        ("P1", "One", "company", "01/04/2022", 1),
        ("P2", "Two", "MoU", "2023-03-15", 2),
        ("P3", "Three", "consortium", None, 3),
    ]
    stg.build_stg_governance(con)
    assert staged(con, "stg_governance_partnerships", "legal_form, start_date") == [
        ("company", dt.date(2022, 4, 1)),
        ("mou", dt.date(2023, 3, 15)),
        ("consortium", None),
    ]


def test_windows_1252_file_is_decoded(con, raw_dir, folder):
    write(folder, "partnerships.csv", P_HEAD, THREE_PARTNERSHIPS)
    projects = [
        jrow("J1", "P1", title="Lighting \u2013 phase 1", budget="£1,500", currency="GBP",
             start_date="2024-05-17"),
        jrow("J2", "P2", title="Café data", budget="2000", currency="EUR"),
        jrow("J3", "P3"),
    ]  # fmt: skip
    write(folder, "projects.csv", J_HEAD, projects, encoding="cp1252")
    ingest(con, raw_dir)
    assert manifest(con)["governance/projects.csv"]["encoding"] == "cp1252"
    stg.build_stg_governance(con)
    got = staged(con, "stg_governance_projects", "title, budget_original, budget_currency")
    assert got == [
        ("Lighting \u2013 phase 1", Decimal("1500"), "GBP"),
        ("Café data", Decimal("2000"), "EUR"),
        ("Project J3", None, None),
    ]


def test_unknown_file_is_reported_and_the_others_load(con, raw_dir, folder):
    write(folder, "partnerships.csv", P_HEAD, THREE_PARTNERSHIPS)
    write(folder, "board_minutes.csv", ["date", "decision"], [["2024-01-01", "x"]] * 3)
    (folder / "notes.txt").write_text("not a table")
    log = ingest(con, raw_dir)
    m = manifest(con)
    assert m["governance/partnerships.csv"]["rows_loaded"] == 3
    bad = m["governance/board_minutes.csv"]
    assert bad["status"] == "failed"
    assert "governance/board_minutes.csv is not a governance register table" in bad["message"]
    assert "partnerships, partnership_members, projects, assets" in bad["message"]
    assert any("notes.txt ignored" in line for line in log)
    stg.build_stg_governance(con)
    assert_reconciles(con)


def test_missing_required_columns_fail_that_file_naming_them(con, raw_dir, folder):
    write(folder, "partnerships.csv", P_HEAD, THREE_PARTNERSHIPS)
    header = ["partnership_id", "member_id", "member_name", "share_pct"]
    write(folder, "partnership_members.csv", header, [["P1", "X", "Y", "5"]] * 3)
    ingest(con, raw_dir)
    m = manifest(con)
    bad = m["governance/partnership_members.csv"]
    assert bad["status"] == "failed"
    assert "missing required column(s) member_type, role" in bad["message"]
    assert "governance/partnership_members.csv" in bad["message"]
    assert rows(con, f"SELECT count(*) FROM {RAW_MEMBERS.qualified}") == [(0,)]
    assert m["governance/partnerships.csv"]["status"] == "loaded"


def test_ragged_row_is_quarantined_with_its_line_and_trailing_empty_fields_are_fine(
    con, raw_dir, folder
):
    lines = [
        ",".join(A_HEAD),
        "A1,J1,x,data,,,",
        "A2,J1,x,data,,,,,",  # spreadsheet export with trailing empty cells: fine
        "A3,J1,x,data,GB-LAE-HBT,Council,OGL,extra",  # one value too many: shifted
    ]
    (folder / "assets.csv").write_text("\n".join(lines) + "\n")
    ingest(con, raw_dir)
    m = manifest(con)["governance/assets.csv"]
    assert (m["rows_in"], m["rows_loaded"], m["rows_quarantined"]) == (3, 2, 1)
    q = rows(con, f"SELECT source_row, source_locator, reason FROM {QUARANTINE.qualified}")
    assert q == [
        (
            3,
            "data row 3 (line 4)",
            "assets: 8 fields where the header has 7: shifted or unquoted column",
        )
    ]


# --------------------------------------------------------------------------- raw: XLSX


def _workbook(path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    notes = wb.active
    assert notes is not None
    notes.title = "Notes"
    notes.append(["Register kept by the analysts (invented test data)"])
    ps = wb.create_sheet("Partnerships ")
    ps.append(["Partnership ID", "Name", "Legal form", "Start date"])
    ps.append(["P1", "One", "company", dt.datetime(2022, 4, 1)])
    ps.append(["P2", "Two", "mou", dt.date(2023, 3, 15)])
    ps.append(["P3", "Three", "consortium", "15/03/2023"])
    ms = wb.create_sheet("Partnership members")
    ms.append(["partnership_id", "member_id", "member_name", "member_type", "role", "share_pct"])
    ms.append(["P1", "GB-LAE-HBT", "Council", "public_body", "owner", 0.51])
    ms["F2"].number_format = "0%"  # Excel shows 51%, stores 0.51
    ms.append(["P1", "GB-COH-09990002", "Tidewater", "company", "owner", 0.49])  # plain 0.49
    ms.append([None, None, None, None, None, None])
    ms.append(["P1", "HBT-PERSON-0001", "A Person", "person", "board_member", None])
    js = wb.create_sheet("projects")
    js.append(["Projects of the Harbourton register (invented test data)"])  # title block
    js.append([])
    js.append(["project_id", "partnership_id", "title", "cordis_id", "budget", "currency"])
    js.append(["J1", "P3", "T1", 999001.0, 1250000.5, "EUR"])
    js.append(["J2", "P3", "T2", 999002, None, None])
    js.append(["J3", "P1", "T3", None, 10, "EUR"])
    wb.save(path)


def test_xlsx_workbook_sheets_formats_and_ignored_sheets(con, raw_dir, folder):
    _workbook(folder / "Register 2024.xlsx")
    ingest(con, raw_dir)
    m = manifest(con)["governance/Register 2024.xlsx"]
    assert (m["status"], m["rows_in"], m["rows_loaded"]) == ("loaded", 9, 9)
    assert "other sheets ignored: Notes" in m["message"]
    assert rows(
        con, f"SELECT start_date, source_locator FROM {RAW_PARTNERSHIPS.qualified} ORDER BY 2"
    ) == [
        ("2022-04-01", "sheet 'Partnerships ' row 2"),
        ("2023-03-15", "sheet 'Partnerships ' row 3"),
        ("15/03/2023", "sheet 'Partnerships ' row 4"),
    ]
    assert rows(
        con, f"SELECT share_pct, source_row FROM {RAW_MEMBERS.qualified} ORDER BY source_row"
    ) == [("51%", 1), ("0.49", 2), (None, 4)]
    assert rows(con, f"SELECT cordis_id, budget FROM {RAW_PROJECTS.qualified} ORDER BY 1") == [
        ("999001", "1250000.5"),
        ("999002", None),
        (None, "10"),
    ]
    assert rows(
        con, f"SELECT source_row, source_locator FROM {RAW_PROJECTS.qualified} ORDER BY 1"
    ) == [
        (1, "sheet 'projects' row 4"),
        (2, "sheet 'projects' row 5"),
        (3, "sheet 'projects' row 6"),
    ]
    stg.build_stg_governance(con)
    assert staged(con, "stg_governance_members", "share_pct") == [
        (Decimal("51"),),  # the percentage-formatted cell
        (Decimal("0.49"),),  # a plain 0.49 stays 0.49 percent points
        (None,),
    ]
    assert_reconciles(con)


def test_cell_text_renders_what_the_analyst_saw():
    assert cell_text(0.51, "0%") == "51%"
    assert cell_text(0.125, "0.0%") == "12.5%"
    assert cell_text(0.51, "General") == "0.51"
    assert cell_text(999001.0) == "999001"
    assert cell_text(dt.datetime(2024, 4, 1)) == "2024-04-01"
    assert cell_text("  ") is None


def test_xlsx_without_register_sheets_fails_alone(con, raw_dir, folder):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Sheet1"
    ws.append(["a", "b"])
    wb.save(folder / "book.xlsx")
    write(folder, "partnerships.csv", P_HEAD, THREE_PARTNERSHIPS)
    ingest(con, raw_dir)
    m = manifest(con)
    assert m["governance/book.xlsx"]["status"] == "failed"
    assert (
        "no sheet holds a governance register table (sheets: Sheet1"
        in (m["governance/book.xlsx"]["message"])
    )
    assert m["governance/partnerships.csv"]["rows_loaded"] == 3


def test_xlsx_sheet_missing_required_columns_fails_the_workbook_naming_them(con, raw_dir, folder):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "assets"
    ws.append(["asset_id", "project_id", "description"])
    for i in range(3):
        ws.append([f"A{i}", "J1", "x"])
    wb.save(folder / "book.xlsx")
    ingest(con, raw_dir)
    m = manifest(con)["governance/book.xlsx"]
    assert m["status"] == "failed"
    assert (
        "governance/book.xlsx sheet 'assets': not a governance 'assets' table: missing "
        "required column(s) asset_type" in m["message"]
    )


def test_changed_broken_and_deleted_files_leave_no_stale_rows_in_any_table(con, raw_dir, folder):
    book = folder / "register.xlsx"
    _workbook(book)
    ingest(con, raw_dir)
    counts = {s.name: rows(con, f"SELECT count(*) FROM {s.qualified}")[0][0] for s in RAW_SPECS}
    assert counts == {
        RAW_PARTNERSHIPS.name: 3,
        RAW_MEMBERS.name: 3,
        RAW_PROJECTS.name: 3,
        RAW_ASSETS.name: 0,
    }
    # unchanged: not parsed again
    log = ingest(con, raw_dir)
    assert not any("rows loaded" in line for line in log)
    # the workbook is replaced by an unreadable file: none of its old rows stay
    book.write_bytes(b"not a zip file")
    ingest(con, raw_dir)
    for spec in RAW_SPECS:
        assert rows(con, f"SELECT count(*) FROM {spec.qualified}") == [(0,)], spec.name
    # a good workbook again, then deleted
    _workbook(book)
    ingest(con, raw_dir)
    assert rows(con, f"SELECT count(*) FROM {RAW_MEMBERS.qualified}") == [(3,)]
    book.unlink()
    ingest(con, raw_dir)
    for spec in RAW_SPECS:
        assert rows(con, f"SELECT count(*) FROM {spec.qualified}") == [(0,)], spec.name


# --------------------------------------------------------------------------- staging rules


def test_partnership_rules_legal_form_name_and_duplicate_ids(con, raw_dir, folder):
    body = [
        prow("HBT-P-1", "Company"),
        prow("HBT-P-2", "joint venture"),
        prow("hbt-p-1 ", "mou"),  # same id, other case and a space: a duplicate
    ]
    write(folder, "partnerships.csv", P_HEAD, body)
    ingest(con, raw_dir)
    stg.build_stg_governance(con)
    assert staged(con, "stg_governance_partnerships", "partnership_id, legal_form") == [
        ("HBT-P-1", "company")
    ]
    reasons = stg_reasons(con, "stg_governance_partnerships")
    assert reasons[2].startswith("unknown legal_form: joint venture (allowed company, mou")
    assert reasons[3] == (
        "duplicate partnership_id: HBT-P-1, kept the first copy at "
        "governance/partnerships.csv data row 1 (line 2)"
    )
    assert_reconciles(con)


def test_dates_day_first_unparseable_and_end_before_start(con, raw_dir, folder):
    body = [
        prow("P1", start="01/04/2022", end="31/03/2026"),
        prow("P2", start="2024-05-01", end="30/04/2024"),
        prow("P3", start="next spring"),
    ]
    write(folder, "partnerships.csv", P_HEAD, body)
    ingest(con, raw_dir)
    stg.build_stg_governance(con)
    assert staged(con, "stg_governance_partnerships", "start_date, end_date") == [
        (dt.date(2022, 4, 1), dt.date(2026, 3, 31))
    ]
    assert stg_reasons(con, "stg_governance_partnerships") == {
        2: "end_date before start_date: 30/04/2024 < 2024-05-01",
        3: "unparseable start_date: next spring",
    }


def test_member_type_and_role_must_be_known_spelling_is_forgiven(con, raw_dir, folder):
    write(folder, "partnerships.csv", P_HEAD, THREE_PARTNERSHIPS)
    body = [
        mrow("P1", "HBT-PERSON-0001", "A", "Person", "Board member"),
        mrow("P1", "GB-COH-09990002", "B", "corporation", "owner", "10"),
        mrow("P1", "GB-CHC-1199003", "C", "ngo", "chairman"),
    ]
    write(folder, "partnership_members.csv", M_HEAD, body)
    ingest(con, raw_dir)
    stg.build_stg_governance(con)
    assert staged(con, "stg_governance_members", "member_type, role") == [
        ("person", "board_member")
    ]
    reasons = stg_reasons(con, "stg_governance_members")
    assert reasons[2].startswith("unknown member_type: corporation (allowed public_body,")
    assert reasons[3].startswith("unknown role: chairman (allowed owner, board_member,")


@pytest.mark.parametrize("column", ["share_pct", "voting_pct"])
def test_percentages_are_percent_points_within_0_100(con, raw_dir, folder, column):
    write(folder, "partnerships.csv", P_HEAD, THREE_PARTNERSHIPS)
    values = ["51%", "0.51", "12,5 %", "150", "-5", "half"]
    body = [
        mrow(f"P{i % 3 + 1}", f"GB-COH-0999000{i}", f"Co {i}", "company", "partner",
             **{column: v})
        for i, v in enumerate(values)
    ]  # fmt: skip
    write(folder, "partnership_members.csv", M_HEAD, body)
    ingest(con, raw_dir)
    stg.build_stg_governance(con)
    assert staged(con, "stg_governance_members", column) == [
        (Decimal("51"),),
        (Decimal("0.51"),),  # not rescaled: 0.51 percent points
        (Decimal("12.5"),),
    ]
    assert stg_reasons(con, "stg_governance_members") == {
        4: f"{column} outside 0-100 (percent points): 150",
        5: f"{column} outside 0-100 (percent points): -5",
        6: f"unparseable {column}: half",
    }


def test_member_ids_are_normalised_persons_keep_register_ids_names_get_ftname(con, raw_dir, folder):
    write(folder, "partnerships.csv", P_HEAD, [prow("P1", accountable_to_id="gb-lae-hbt")])
    body = [
        mrow("p1", "gb-coh-9990002", "Tidewater Digital Ltd", "company", "owner", "19"),
        mrow("P1", " hbt-person-0006 ", "Simon Achterberg", "person", "board_member"),
        mrow("P1", "", "Harbourton  Citizens' Panel", "community", "advisory_panel"),
    ]
    write(folder, "partnership_members.csv", M_HEAD, body)
    ingest(con, raw_dir)
    stg.build_stg_governance(con)
    name_ref = rows(con, "SELECT ft_name_org_id('Harbourton Citizens'' Panel')")[0][0]
    assert name_ref.startswith("FTNAME-")
    assert staged(
        con, "stg_governance_members", "partnership_id, member_ref, member_ref_basis, member_name"
    ) == [
        ("P1", "GB-COH-09990002", "org-id", "Tidewater Digital Ltd"),
        ("P1", "HBT-PERSON-0006", "person id", "Simon Achterberg"),
        ("P1", name_ref, "name", "Harbourton Citizens' Panel"),
    ]
    assert staged(con, "stg_governance_partnerships", "accountable_to_ref") == [("GB-LAE-HBT",)]


def test_duplicate_membership_and_member_with_several_roles(con, raw_dir, folder):
    write(folder, "partnerships.csv", P_HEAD, THREE_PARTNERSHIPS)
    body = [
        mrow("P1", "GB-COH-09990002", "Tidewater", "company", "owner", "19"),
        mrow("P1", "GB-COH-09990002", "Tidewater", "company", "operator"),  # other role: fine
        mrow("P1", "gb-coh-9990002", "Tidewater Digital", "company", "owner", "19"),  # same
    ]
    write(folder, "partnership_members.csv", M_HEAD, body)
    ingest(con, raw_dir)
    stg.build_stg_governance(con)
    assert [r[0] for r in staged(con, "stg_governance_members", "role")] == ["owner", "operator"]
    assert stg_reasons(con, "stg_governance_members")[3].startswith(
        "duplicate membership: P1/GB-COH-09990002/owner, kept the first copy at"
    )


def test_members_and_projects_need_a_staged_partnership(con, raw_dir, folder):
    write(folder, "partnerships.csv", P_HEAD, [prow("P1"), prow("P2", "kingdom"), prow("P3")])
    members = [
        mrow("P1", "GB-LAE-HBT", "Council", "public_body", "owner", "100"),
        mrow("P2", "GB-LAE-HBT", "Council", "public_body", "owner", "100"),
        mrow("P9", "GB-LAE-HBT", "Council", "public_body", "owner", "100"),
    ]
    write(folder, "partnership_members.csv", M_HEAD, members)
    write(folder, "projects.csv", J_HEAD, [jrow("J1", "P1"), jrow("J2", "P2"), jrow("J3", "")])
    ingest(con, raw_dir)
    stg.build_stg_governance(con)
    assert stg_reasons(con, "stg_governance_members") == {
        2: "partnership_id quarantined in partnerships: P2",
        3: "unknown partnership_id (not in partnerships): P9",
    }
    assert stg_reasons(con, "stg_governance_projects") == {
        2: "partnership_id quarantined in partnerships: P2",
        3: "missing partnership_id",
    }
    assert_reconciles(con)


def test_assets_need_a_staged_project_a_known_type_and_unique_ids(con, raw_dir, folder):
    write(folder, "partnerships.csv", P_HEAD, THREE_PARTNERSHIPS)
    write(folder, "projects.csv", J_HEAD, [jrow("J1", "P1"), jrow("J2", "P9"), jrow("J3", "P3")])
    body = [
        arow("A1", "J1", "Infrastructure", owner_id="gb-lae-hbt"),
        arow("A2", "J2", "data"),
        arow("A3", "J3", "patent"),
        arow("a1", "J3", "ip"),
        arow("A5", "J7", "ip"),
    ]
    write(folder, "assets.csv", A_HEAD, body)
    ingest(con, raw_dir)
    stg.build_stg_governance(con)
    assert staged(con, "stg_governance_assets", "asset_id, asset_type, owner_ref") == [
        ("A1", "infrastructure", "GB-LAE-HBT")
    ]
    reasons = stg_reasons(con, "stg_governance_assets")
    assert reasons[2] == "project_id quarantined in projects: J2"
    assert reasons[3].startswith("unknown asset_type: patent (allowed infrastructure, data")
    assert reasons[4].startswith("duplicate asset_id: A1, kept the first copy at")
    assert reasons[5] == "unknown project_id (not in projects): J7"
    assert_reconciles(con)


def test_project_budget_money_and_link_ids(con, raw_dir, folder):
    from currency_converter import CurrencyConverter

    write(folder, "partnerships.csv", P_HEAD, THREE_PARTNERSHIPS)
    body = [
        # 2024-04-01 is Easter Monday (no ECB fixing): the rate of Thursday 2024-03-28 applies
        jrow("J1", "P1", budget="£3,200,000", currency="gbp", start_date="01/04/2024",
             ocids="ocds-hbt999-A; ocds-hbt999-B | ocds-hbt999-A\nocds-hbt999-C",
             kohesio_id=" HBT-ERDF-0001 "),
        jrow("J2", "P3", budget="9.850.000,00", currency="EUR", cordis_id="999001.0"),
        jrow("J3", "P2"),
    ]  # fmt: skip
    write(folder, "projects.csv", J_HEAD, body)
    ingest(con, raw_dir)
    stg.build_stg_governance(con)
    got = staged(
        con,
        "stg_governance_projects",
        "project_id, budget_original, budget_currency, budget_eur, fx_date, cordis_id, "
        "kohesio_id, ocids",
    )
    conv = CurrencyConverter(
        fallback_on_missing_rate=True, fallback_on_missing_rate_method="last_known"
    )
    expected_eur = Decimal(str(conv.convert(3_200_000, "GBP", "EUR", date=dt.date(2024, 4, 1))))
    j1, j2, j3 = got
    assert j1[:3] == ("J1", Decimal("3200000"), "GBP")
    assert abs(j1[3] - expected_eur) <= Decimal("0.01")
    assert j1[4] == dt.date(2024, 3, 28)
    assert j1[5:] == (None, "HBT-ERDF-0001", ["ocds-hbt999-A", "ocds-hbt999-B", "ocds-hbt999-C"])
    assert j2[1:6] == (Decimal("9850000"), "EUR", Decimal("9850000"), None, "999001")
    assert j3[1] is None and j3[7] == []
    links = rows(con, stg.PROJECT_LINKS_SQL)
    assert links == [
        ("J1", "P1", "kohesio", "HBT-ERDF-0001"),
        ("J1", "P1", "ocid", "ocds-hbt999-A"),
        ("J1", "P1", "ocid", "ocds-hbt999-B"),
        ("J1", "P1", "ocid", "ocds-hbt999-C"),
        ("J2", "P3", "cordis", "999001"),
    ]


def test_project_budget_rules_quarantine_what_cannot_be_converted(con, raw_dir, folder):
    write(folder, "partnerships.csv", P_HEAD, THREE_PARTNERSHIPS)
    body = [
        jrow("J1", "P1", budget="2,400,000", currency="", start_date="2024-01-01"),
        jrow("J2", "P1", budget="1000", currency="XYZ", start_date="2024-01-01"),
        jrow("J3", "P1", budget="1000", currency="GBP"),  # no date for the ECB rate
        jrow("J4", "P1", budget="about a million", currency="GBP", start_date="2024-01-01"),
        jrow("J5", "P1", budget="1000", currency="£", start_date="2024-01-01"),
    ]
    write(folder, "projects.csv", J_HEAD, body)
    ingest(con, raw_dir)
    stg.build_stg_governance(con)
    assert staged(con, "stg_governance_projects", "project_id") == []
    assert stg_reasons(con, "stg_governance_projects") == {
        1: "budget without currency: 2,400,000",
        2: "budget cannot be converted to EUR: no ECB rate for XYZ",
        3: "budget cannot be converted to EUR: no date to pick an ECB rate "
        "(start_date is needed for the rate)",
        4: "unparseable budget: about a million",
        5: "invalid currency: £",
    }


def test_missing_ids_are_quarantined(con, raw_dir, folder):
    write(folder, "partnerships.csv", P_HEAD, [prow(""), prow("P2"), prow("P3", name="")])
    write(folder, "partnership_members.csv", M_HEAD, [mrow("P2", "", "", "company", "lead")])
    write(folder, "projects.csv", J_HEAD, [jrow("", "P2")])
    ingest(con, raw_dir)
    stg.build_stg_governance(con)
    assert stg_reasons(con, "stg_governance_partnerships") == {
        1: "missing partnership_id",
        3: "missing name",
    }
    assert stg_reasons(con, "stg_governance_members") == {1: "no usable member_id or member_name"}
    assert stg_reasons(con, "stg_governance_projects") == {1: "missing project_id"}


# --------------------------------------------------------------------------- owner shares


def _suite_outcome(con: duckdb.DuckDBPyConnection, table: str):
    suite = load_suite(EXPECTATIONS_DIR / f"staging__{table}.json")
    return run_suite(con, "staging", table, suite)


def test_owner_shares_above_100_are_flagged_not_quarantined(con, raw_dir, folder):
    write(folder, "partnerships.csv", P_HEAD, THREE_PARTNERSHIPS)
    body = [
        # P1: 60 + 50 from the start = 110
        mrow("P1", "GB-LAE-HBT", "Council", "public_body", "owner", "60%"),
        mrow("P1", "GB-COH-09990002", "Tidewater", "company", "owner", "50"),
        # P2: 70 until 2023-01-01, then a handover to 70 held by someone else: never > 100
        mrow("P2", "GB-LAE-HBT", "Council", "public_body", "owner", "70",
             end_date="2023-01-01"),
        mrow("P2", "GB-COH-09990002", "Tidewater", "company", "owner", "70",
             start_date="2023-01-01"),
        # P3: 60 from the start, 45 joins on 2024-06-01 while the first still holds 60
        mrow("P3", "GB-LAE-HBT", "Council", "public_body", "owner", "60"),
        mrow("P3", "GB-COH-09990002", "Tidewater", "company", "owner", "45",
             start_date="01/06/2024"),
    ]  # fmt: skip
    write(folder, "partnership_members.csv", M_HEAD, body)
    ingest(con, raw_dir)
    stg.build_stg_governance(con)
    assert stg_reasons(con, "stg_governance_members") == {}
    notes = staged(con, "stg_governance_members", "partnership_id, validation_note")
    assert notes == [
        ("P1", "owner shares of partnership P1 add up to 110.0% from the start (more than 100%)"),
        ("P1", "owner shares of partnership P1 add up to 110.0% from the start (more than 100%)"),
        ("P2", None),
        ("P2", None),
        ("P3", "owner shares of partnership P3 add up to 105.0% on 2024-06-01 (more than 100%)"),
        ("P3", "owner shares of partnership P3 add up to 105.0% on 2024-06-01 (more than 100%)"),
    ]
    outcome = _suite_outcome(con, "stg_governance_members")
    assert not outcome.errors
    assert not outcome.critical_failures
    [failed] = outcome.warning_failures
    assert "owner_share_total" in failed.kwargs["unexpected_rows_query"]
    assert failed.unexpected_count == 2  # P1 and P3, not P2 (a same-day handover)


def test_critical_expectations_catch_what_staging_must_never_let_through(con, raw_dir, folder):
    """The suites are not vacuous: tamper with staged rows and the critical checks fail."""
    write(folder, "partnerships.csv", P_HEAD, THREE_PARTNERSHIPS)
    write(
        folder,
        "partnership_members.csv",
        M_HEAD,
        [mrow("P1", "GB-LAE-HBT", "Council", "public_body", "owner", "51")],
    )
    ingest(con, raw_dir)
    stg.build_stg_governance(con)
    con.execute("UPDATE staging.stg_governance_members SET share_pct = 150, role = 'chair'")
    con.execute("UPDATE staging.stg_governance_partnerships SET legal_form = 'llp'")
    members = _suite_outcome(con, "stg_governance_members")
    partnerships = _suite_outcome(con, "stg_governance_partnerships")
    assert not members.errors and not partnerships.errors
    assert {e.column for e in members.critical_failures} == {"share_pct", "role"}
    assert [e.column for e in partnerships.critical_failures] == ["legal_form"]


# --------------------------------------------------------------------------- demo data


def _demo_csv(name: str) -> list[dict[str, str]]:
    path = DEMO / name
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252")
    reader = csv.DictReader(io.StringIO(text))
    out = []
    for rec in reader:
        rec = {
            (k or "").strip().lower().replace(" ", "_"): (v or "").strip() for k, v in rec.items()
        }
        if any(rec.values()):
            out.append(rec)
    return out


def test_demo_register_loads_as_documented(con, tmp_path):
    raw = tmp_path / "demo_raw"
    shutil.copytree(DEMO, raw / "governance")
    ingest(con, raw)
    counts = stg.build_stg_governance(con)

    # counted from the files themselves
    partnerships = _demo_csv("partnerships.csv")
    members = _demo_csv("partnership_members.csv")
    projects = _demo_csv("projects.csv")
    assets = _demo_csv("assets.csv")
    roles = set(stg.ROLES)
    bad_members = [
        m for m in members if m["role"].lower().replace(" ", "_").replace("-", "_") not in roles
    ]
    assert [m["member_name"] for m in bad_members] == ["Harbourton Business Improvement District"]
    assert counts == {
        "stg_governance_partnerships": (len(partnerships), 0),
        "stg_governance_members": (len(members) - 1, 1),
        "stg_governance_projects": (len(projects), 0),
        "stg_governance_assets": (len(assets), 0),
    }
    assert (len(partnerships), len(members), len(projects), len(assets)) == (3, 30, 3, 4)
    assert_reconciles(con)

    # the cast: owners of the partnership company and the board member who owns the supplier
    owners = rows(
        con,
        "SELECT member_ref, share_pct FROM staging.stg_governance_members "
        "WHERE partnership_id = 'HBT-PART-SCL' AND role = 'owner' ORDER BY share_pct DESC",
    )
    assert owners == [
        ("GB-LAE-HBT", Decimal("51")),
        ("GB-UKPRN-19990001", Decimal("30")),
        ("GB-COH-09990002", Decimal("19")),
    ]
    assert rows(
        con,
        "SELECT role FROM staging.stg_governance_members WHERE member_ref = 'HBT-PERSON-0006'",
    ) == [("board_member",)]
    assert rows(
        con,
        "SELECT accountable_to_ref FROM staging.stg_governance_partnerships "
        "WHERE partnership_id = 'HBT-PART-SCL'",
    ) == [("GB-LAE-HBT",)]

    # budgets per currency, summed from the files by hand-rolled parsing
    def amount(text: str) -> Decimal:
        t = text.replace("£", "")
        if re.search(r",\d{1,2}$", t):  # decimal comma: 9.850.000,00
            t = t.replace(".", "").replace(",", ".")
        return Decimal(t.replace(",", ""))

    by_cur: dict[str, Decimal] = {}
    for p in projects:
        by_cur[p["currency"]] = by_cur.get(p["currency"], Decimal(0)) + amount(p["budget"])
    assert by_cur == {"GBP": Decimal("4750000"), "EUR": Decimal("11482310.75")}
    assert (
        dict(
            rows(
                con,
                "SELECT budget_currency, sum(budget_original) FROM staging.stg_governance_projects "
                "GROUP BY 1",
            )
        )
        == by_cur
    )

    assert rows(con, stg.PROJECT_LINKS_SQL) == [
        ("HBT-PRJ-DATA", "HBT-PART-SCL", "kohesio", "HBT-ERDF-0002"),
        ("HBT-PRJ-DATA", "HBT-PART-SCL", "ocid", "ocds-hbt999-DATA-2023-001"),
        ("HBT-PRJ-DATA", "HBT-PART-SCL", "ocid", "ocds-hbt999-DATA-2024-002"),
        ("HBT-PRJ-LIGHT", "HBT-PART-SCL", "kohesio", "HBT-ERDF-0001"),
        ("HBT-PRJ-LIGHT", "HBT-PART-SCL", "ocid", "ocds-hbt999-LIGHT-2024-001"),
        ("HBT-PRJ-TIDEWAYS", "HBT-PART-TIDEWAYS", "cordis", "999001"),
    ]

    # every suite runs without errors and passes on the demo (warnings included)
    for spec in stg.STG_SPECS:
        outcome = _suite_outcome(con, spec.name)
        assert not outcome.errors, outcome.error_summary()
        assert outcome.passed, [e.label for e in outcome.expectations if e.failed]


def test_demo_files_say_they_are_invented():
    readme = (DEMO.parent / "README.md").read_text(encoding="utf-8")
    assert "invented" in readme.lower()
    for name in ("partnerships.csv", "partnership_members.csv", "projects.csv", "assets.csv"):
        assert name in readme


# --------------------------------------------------------------------------- Dagster wiring


def test_assets_materialize_in_dagster(tmp_path: Path):
    raw = tmp_path / "raw"
    shutil.copytree(DEMO, raw / "governance")
    db = tmp_path / "build.duckdb"
    assets = [
        raw_governance,
        stg.stg_governance_partnerships,
        stg.stg_governance_members,
        stg.stg_governance_projects,
        stg.stg_governance_assets,
        reference.ref_ecb_rates,
    ]
    result = dg.materialize(
        assets,
        resources={
            "duckdb": DuckDBResource(database=str(db)),
            "fundtrace": FundtraceSettings(raw_dir=str(raw), marts_db=str(tmp_path / "m.duckdb")),
        },
    )
    assert result.success
    counts = {
        e.step_materialization_data.materialization.asset_key.to_user_string(): (
            e.step_materialization_data.materialization.metadata["dagster/row_count"].value
        )
        for e in result.get_asset_materialization_events()
    }
    assert counts["raw/raw_governance_members"] == 30
    assert counts["staging/stg_governance_members"] == 29
    assert counts["staging/stg_governance_assets"] == 4

    for spec in (s for a in assets for s in a.specs):
        assert spec.description and spec.kinds, spec.key
        assert spec.group_name == spec.key.path[0], spec.key
