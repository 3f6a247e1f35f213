"""Real Oxford City Council "expenditure over £500" files through raw ingest and staging.

The 15 quarterly files (2014-2017, 13+ header layouts) live OUTSIDE the repository
(`../shared/realdata/uk-la-spend-oxford-city-council`, see its MANIFEST.md) and are symlinked
into tmp_path. Expected counts and sums are computed here with the csv module and
`decimal.Decimal`, locating columns by their literal titles, independently of the pipeline's
synonym map and SQL parsers.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import duckdb
import pytest

from assets.common.money import load_ecb_rates
from assets.common.tables import create_table, ensure_schemas
from assets.raw import council_spend as cs
from assets.raw.ingest import FILE_MANIFEST, QUARANTINE, ingest_folder
from assets.raw.reference import ECB_RATES, FUNDERS, ORGID_PREFIXES, SHIPPED_DIR, load_reference_csv
from assets.staging.quarantine import STG_QUARANTINE
from assets.staging.stg_council_spend_payments import (
    STG_PAYMENTS,
    build_stg_council_spend_payments,
)

pytestmark = pytest.mark.realdata

REALDATA = Path(
    os.environ.get("FUNDTRACE_REALDATA_DIR")
    or Path(__file__).resolve().parents[2] / "shared" / "realdata"
)
OXFORD = REALDATA / "uk-la-spend-oxford-city-council"
COUNCILS = (
    "match,council_org_id,council_name\n"
    "Oxford City Council,GB-LAE-OXF,Oxford City Council\n"
    "OCC,GB-LAE-OXF,Oxford City Council\n"
    "expenditure-over-500-*,GB-LAE-OXF,Oxford City Council\n"
)
_DMY = re.compile(r"\d{2}/\d{2}/\d{4}")


def _files() -> list[Path]:
    return sorted(OXFORD.glob("*.csv")) if OXFORD.is_dir() else []


@dataclass
class Truth:
    rows: int  # non-blank data rows
    total: Decimal  # sum of every amount Decimal can read
    clean: int  # rows with a dd/mm/yyyy date, a supplier and a readable amount
    clean_total: Decimal
    redacted: int  # clean rows whose supplier says "Redacted ..." (not "Redactive ...")


def _column(header: list[str], *titles: str) -> int:
    norm = [h.strip().lower().replace("_", " ") for h in header]
    for t in titles:
        if t in norm:
            return norm.index(t)
    raise AssertionError(f"none of {titles} in {header}")


def file_truth(path: Path) -> Truth:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252")
    records = list(csv.reader(text.splitlines()))
    header, data = records[0], [r for r in records[1:] if any(c.strip() for c in r)]
    a = _column(header, "amount")
    d = _column(header, "paid date")
    s = _column(header, "supplier name")
    total = clean_total = Decimal(0)
    clean = redacted = 0
    for r in data:
        assert len(r) == len(header), f"{path.name}: ragged row {r}"
        try:
            amount = Decimal(r[a].strip().replace(",", ""))
        except InvalidOperation:
            continue
        total += amount
        supplier = r[s].strip()
        if _DMY.fullmatch(r[d].strip()) and supplier:
            clean += 1
            clean_total += amount
            if re.fullmatch(
                r"redacted[ ,]*(personal (data|information|details))?", supplier.lower()
            ):
                redacted += 1
    return Truth(len(data), total, clean, clean_total, redacted)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    """All 15 files ingested and staged once (each file is reconciled on its own below)."""
    files = _files()
    if not files:
        pytest.skip(f"real samples not present: {OXFORD}")
    tmp = tmp_path_factory.mktemp("oxford")
    folder = tmp / "raw" / "council_spend"
    folder.mkdir(parents=True)
    for f in files:
        (folder / f.name).symlink_to(f)
    (folder / "councils.csv").write_text(COUNCILS)
    con = duckdb.connect(str(tmp / "build.duckdb"))
    ensure_schemas(con)
    ingest_folder(
        con,
        source_system=cs.SOURCE_SYSTEM,
        raw_dir=tmp / "raw",
        folder=cs.FOLDER,
        suffixes=cs.SUFFIXES,
        raw_table=cs.RAW_SPEND,
        parser=cs.parse_file,
        parser_version=cs.PARSER_VERSION,
        log=lambda _m: None,
    )
    cs.load_councils(con, tmp / "raw")
    load_reference_csv(con, ORGID_PREFIXES, "prefix", SHIPPED_DIR / "orgid_prefixes.csv", None)
    load_reference_csv(con, FUNDERS, "funder_id", SHIPPED_DIR / "funders.csv", None)
    create_table(con, ECB_RATES, replace=True)
    load_ecb_rates(con, ECB_RATES.qualified)
    build_stg_council_spend_payments(con)
    return con


def test_the_sample_is_there() -> None:
    if not OXFORD.is_dir():
        pytest.skip(f"real samples not present: {OXFORD}")
    assert len(_files()) == 15
    headers = {p.read_bytes().split(b"\n", 1)[0] for p in _files()}
    assert len(headers) >= 13  # the header drift this test is about


def test_every_file_maps(built: duckdb.DuckDBPyConnection) -> None:
    statuses = dict(
        built.execute(
            f"SELECT source_file, status FROM {FILE_MANIFEST.qualified} "
            "WHERE source_file <> 'council_spend/councils.csv'"
        ).fetchall()
    )
    assert len(statuses) == 15
    assert set(statuses.values()) == {"loaded"}, statuses
    assert built.execute(f"SELECT count(*) FROM {QUARANTINE.qualified}").fetchone() == (0,)


@pytest.mark.parametrize("path", _files() or [None], ids=[p.name for p in _files()] or ["none"])
def test_file_reconciles(built: duckdb.DuckDBPyConnection, path: Path | None) -> None:
    if path is None:
        pytest.skip(f"real samples not present: {OXFORD}")
    truth = file_truth(path)
    rel = f"council_spend/{path.name}"
    m = built.execute(
        f"SELECT status, rows_in, rows_loaded FROM {FILE_MANIFEST.qualified} WHERE source_file = ?",
        [rel],
    ).fetchone()
    assert m == ("loaded", truth.rows, truth.rows)

    n_staged, staged_total, n_redacted, payers = built.execute(
        f"SELECT count(*), coalesce(sum(amount_original), 0), "
        "count(*) FILTER (WHERE recipient_kind = 'redacted'), list(DISTINCT council_org_ref) "
        f"FROM {STG_PAYMENTS.qualified} WHERE source_file = ?",
        [rel],
    ).fetchone() or (0, 0, 0, [])
    quarantined = built.execute(
        f"SELECT r.amount FROM {STG_QUARANTINE.qualified} q "
        f"JOIN {cs.RAW_SPEND.qualified} r USING (source_file, source_row) "
        "WHERE q.source_system = 'council_spend' AND q.source_file = ?",
        [rel],
    ).fetchall()
    # loaded + quarantined = data rows in the file
    assert n_staged + len(quarantined) == truth.rows
    # money: staged + quarantined rows with a readable amount = the file's total
    quarantined_total = Decimal(0)
    for (text,) in quarantined:
        with contextlib.suppress(InvalidOperation):
            quarantined_total += Decimal((text or "").replace(",", ""))
    assert Decimal(staged_total) + quarantined_total == truth.total
    # what is staged is exactly the clean rows; redacted ones are kept, not dropped
    assert (n_staged, Decimal(staged_total)) == (truth.clean, truth.clean_total)
    assert n_redacted == truth.redacted
    if n_staged:
        assert payers == ["GB-LAE-OXF"]


def test_known_quirks(built: duckdb.DuckDBPyConnection) -> None:
    reasons = dict(
        built.execute(
            f"SELECT source_file, list(DISTINCT regexp_extract(reason, '^[^:]*')) "
            f"FROM {STG_QUARANTINE.qualified} WHERE source_system = 'council_spend' GROUP BY 1"
        ).fetchall()
    )
    # apr-jun-2014 publishes "00:00:00" instead of every payment date
    assert reasons["council_spend/expenditure-over-500-apr-jun-2014.csv"] == [
        "unparseable payment date"
    ]
    # files without a body column are paid by Oxford through the file-name glob
    basis = dict(
        built.execute(
            f"SELECT regexp_extract(source_file, '[^/]+$'), list(DISTINCT payer_basis) "
            f"FROM {STG_PAYMENTS.qualified} GROUP BY 1"
        ).fetchall()
    )
    for name in ("expenditure-over-500-jan-mar-2017.csv", "expenditure-over-500-apr-jun-2017.csv"):
        assert basis[name] == ["councils.csv file glob 'expenditure-over-500-*'"]
    # "OCC" in the body column maps by name
    assert basis["expenditure-over-500-jul-sep-2016.csv"] == ["councils.csv name"]
    # a real company whose name starts like "redacted" stays a company
    assert built.execute(
        f"SELECT DISTINCT recipient_kind FROM {STG_PAYMENTS.qualified} "
        "WHERE supplier_name ILIKE 'REDACTIVE%'"
    ).fetchall() == [("organisation",)]
    # right-padded supplier names are trimmed
    assert built.execute(
        f"SELECT count(*) FROM {STG_PAYMENTS.qualified} WHERE supplier_name <> trim(supplier_name)"
    ).fetchone() == (0,)
