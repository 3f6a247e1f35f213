"""Real Kohesio beneficiaries exports (`../shared/realdata/eu-kohesio-beneficiaries`, see its
MANIFEST.md) through raw ingest, staging and the awards.

The files are never copied into the repository: each is symlinked into its own tmp_path raw
folder (the TSV and the CSV hold the same export, so together they would be duplicates of each
other). Expected counts and sums are computed here without the pipeline's parser:
- TSV: Python's csv module (tab, no quoting: the exporter writes quotes literally) and Decimal;
- CSV (broken: header glued to the first row, unquoted commas and quotes): data lines are
  counted as newline-terminated lines with text, and each line is read by a regular
  expression anchored on the exporter's float-formatted amounts, independently of the
  pipeline's field-splitting recovery.
"""

from __future__ import annotations

import csv
import os
import re
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from assets.common.money import load_ecb_rates
from assets.common.tables import create_table, ensure_schemas
from assets.raw.eu_kohesio import PARSER_VERSION, RAW_KOHESIO, SOURCE_SYSTEM, SUFFIXES, parse_file
from assets.raw.ingest import FILE_MANIFEST, QUARANTINE, ingest_folder
from assets.raw.reference import ECB_RATES, FUNDERS, ORGID_PREFIXES, SHIPPED_DIR, load_reference_csv
from assets.staging.quarantine import STG_QUARANTINE
from assets.staging.stg_kohesio import AWARDS_SQL, STG_KOHESIO, build_stg_kohesio

pytestmark = pytest.mark.realdata

REALDATA = Path(
    os.environ.get("FUNDTRACE_REALDATA_DIR")
    or Path(__file__).resolve().parents[2] / "shared" / "realdata"
)
KOHESIO = REALDATA / "eu-kohesio-beneficiaries"
HEADER = (
    "Country",
    "Region",
    "Beneficiary Name",
    "Total Budget",
    "EU Contribution",
    "Number of Projects",
    "Transliterated Name",
)


def _samples(suffix: str) -> list:
    """Real files of one kind, or one skipped parameter saying why there are none."""
    found = sorted(KOHESIO.glob(f"*{suffix}")) if KOHESIO.is_dir() else []
    if found:
        return [pytest.param(p, id=p.name) for p in found]
    reason = f"no real Kohesio {suffix} sample in {KOHESIO} (FUNDTRACE_REALDATA_DIR)"
    return [pytest.param(None, id="absent", marks=pytest.mark.skip(reason=reason))]


# --------------------------------------------------------------------------- independent reading


Expected = tuple[int, list[tuple[Decimal | None, Decimal | None]]]


def _dec(text: str) -> Decimal | None:
    return Decimal(text) if text.strip() else None


def read_tsv(path: Path) -> Expected:
    """(data lines, [(total, eu)] per line) with the csv module, no quote processing."""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        assert tuple(h for h in header if h) == HEADER
        rows = [r for r in reader if any(v.strip() for v in r)]
    return len(rows), [(_dec(r[3]), _dec(r[4])) for r in rows]


_AMOUNT = r"\d+\.\d+(?:[eE][+-]?\d+)?"
_HEAD = re.compile(r"[^,]*,[^,]*,")  # Country, Region (never contain commas in this export)
_SPLIT = re.compile(rf"(?=,({_AMOUNT})?,({_AMOUNT})?,\d+,)")


def read_broken_csv(path: Path) -> tuple[int, Expected]:
    """(data lines, (lines read, [(total, eu)])) for the exporter's broken CSV.

    A line is read when exactly one place after Country and Region is followed by two
    float-formatted (or empty) amounts and a whole number (the exporter writes floats, so a
    name containing `,12,3,` cannot be mistaken for them)."""
    lines = path.read_bytes().decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    header = ",".join(HEADER)
    if lines and lines[0].startswith(header):
        lines[0] = lines[0][len(header) :]  # glued first data row (or nothing)
    data = [line.rstrip("\r") for line in lines if line.strip()]
    amounts = []
    for line in data:
        head = _HEAD.match(line)
        fits = list(_SPLIT.finditer(line, head.end())) if head else []
        if len(fits) == 1:
            amounts.append((_dec(fits[0].group(1) or ""), _dec(fits[0].group(2) or "")))
    return len(data), (len(amounts), amounts)


# --------------------------------------------------------------------------- pipeline


def run_pipeline(tmp_path: Path, path: Path) -> duckdb.DuckDBPyConnection:
    raw = tmp_path / "raw"
    (raw / "eu_kohesio").mkdir(parents=True)
    (raw / "eu_kohesio" / path.name).symlink_to(path)
    con = duckdb.connect(str(tmp_path / "build.duckdb"))
    ensure_schemas(con)
    create_table(con, ECB_RATES, replace=True)
    load_ecb_rates(con, ECB_RATES.qualified)
    load_reference_csv(con, FUNDERS, "funder_id", SHIPPED_DIR / "funders.csv", None)
    load_reference_csv(con, ORGID_PREFIXES, "prefix", SHIPPED_DIR / "orgid_prefixes.csv", None)
    ingest_folder(
        con,
        source_system=SOURCE_SYSTEM,
        raw_dir=raw,
        folder="eu_kohesio",
        suffixes=SUFFIXES,
        raw_table=RAW_KOHESIO,
        parser=parse_file,
        parser_version=PARSER_VERSION,
        log=lambda _: None,
    )
    build_stg_kohesio(con)
    return con


def one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple:
    got = con.execute(sql).fetchone()
    assert got is not None
    return got


def check_reconciliation(
    con: duckdb.DuckDBPyConnection,
    data_lines: int,
    readable: list[tuple[Decimal | None, Decimal | None]],
) -> None:
    """Raw and staging counts and sums against the independently read lines."""
    status, rows_in, loaded, quarantined = one(
        con, f"SELECT status, rows_in, rows_loaded, rows_quarantined FROM {FILE_MANIFEST.qualified}"
    )
    assert status in ("loaded", "partial")
    assert rows_in == data_lines == loaded + quarantined
    assert one(con, f"SELECT count(*) FROM {RAW_KOHESIO.qualified}") == (loaded,)
    assert one(con, f"SELECT count(*) FROM {QUARANTINE.qualified}") == (quarantined,)

    # raw: every loaded row's amounts, as text, add up like the independent reading
    raw_amounts = con.execute(
        f"SELECT total_eligible, eu_budget FROM {RAW_KOHESIO.qualified}"
    ).fetchall()
    assert len(raw_amounts) == len(readable)

    def total(pairs: list[tuple[Decimal | None, Decimal | None]], i: int) -> Decimal:
        values = [p[i] for p in pairs]
        return sum((v for v in values if v is not None), Decimal(0))

    raw_pairs = [(_dec(t or ""), _dec(e or "")) for t, e in raw_amounts]
    assert total(raw_pairs, 0) == total(readable, 0)
    assert total(raw_pairs, 1) == total(readable, 1)

    # staging: rows with an EU Contribution are staged, the others quarantined with the reason
    splittable = [p for p in readable if p[1] is not None]
    staged, stg_total, stg_eu = one(
        con,
        f"SELECT count(*), sum(total_amount_original), sum(eu_amount_original) "
        f"FROM {STG_KOHESIO.qualified}",
    )
    stg_q = one(con, f"SELECT count(*) FROM {STG_QUARANTINE.qualified}")[0]
    assert staged + stg_q == loaded
    assert staged == len(splittable)
    assert stg_total == total(splittable, 0)
    assert stg_eu == total(splittable, 1)
    reasons = con.execute(
        f"SELECT DISTINCT regexp_extract(reason, '^[^:]*') FROM {STG_QUARANTINE.qualified}"
    ).fetchall()
    assert set(reasons) <= {("EU Contribution empty",)}

    # awards: EU shares sum to the EU contributions; co-financing to the positive remainders
    co = sum(
        (t - e for t, e in splittable if t is not None and e is not None and t > e), Decimal(0)
    )
    got = dict(
        con.execute(f"SELECT award_type, sum(amount_eur) FROM ({AWARDS_SQL}) GROUP BY 1").fetchall()
    )
    assert got == {"eu_share": total(splittable, 1), "co_financing": co}


@pytest.mark.parametrize("path", _samples(".tsv"))
def test_real_tsv_counts_and_sums(tmp_path: Path, path: Path) -> None:
    data_lines, readable = read_tsv(path)
    con = run_pipeline(tmp_path, path)
    try:
        check_reconciliation(con, data_lines, readable)
    finally:
        con.close()


@pytest.mark.parametrize("path", _samples(".csv"))
def test_real_broken_csv_counts_and_sums(tmp_path: Path, path: Path) -> None:
    data_lines, (n_readable, readable) = read_broken_csv(path)
    con = run_pipeline(tmp_path, path)
    try:
        loaded, quarantined = one(
            con, f"SELECT rows_loaded, rows_quarantined FROM {FILE_MANIFEST.qualified}"
        )
        # the lines the independent reading cannot place are exactly the quarantined ones
        assert (loaded, quarantined) == (n_readable, data_lines - n_readable)
        check_reconciliation(con, data_lines, readable)
    finally:
        con.close()
