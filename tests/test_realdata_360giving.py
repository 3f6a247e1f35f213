"""Real public 360Giving samples through raw ingest and staging.

The samples live OUTSIDE the repository (`../shared/realdata`, see its MANIFEST.md) and are
never copied into it: each test symlinks the files it needs into tmp_path. Expected counts
and sums are computed here, independently of the pipeline, with `json`/`csv` and
`decimal.Decimal`.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections import Counter, defaultdict
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import duckdb
import pytest

from assets.common.money import load_ecb_rates
from assets.common.tables import create_table, ensure_schemas
from assets.raw.ingest import FILE_MANIFEST, QUARANTINE, ingest_folder
from assets.raw.reference import ECB_RATES, FUNDERS, ORGID_PREFIXES, SHIPPED_DIR, load_reference_csv
from assets.raw.threesixty_giving import (
    PARSER_VERSION,
    RAW_GRANTS,
    SOURCE_SYSTEM,
    SUFFIXES,
    parse_file,
)
from assets.staging.quarantine import STG_QUARANTINE
from assets.staging.stg_360giving_grants import STG_GRANTS, build_stg_360giving_grants

pytestmark = pytest.mark.realdata

REALDATA = Path(
    os.environ.get("FUNDTRACE_REALDATA_DIR")
    or Path(__file__).resolve().parents[2] / "shared" / "realdata"
)
GRANTNAV = REALDATA / "360giving-grantnav"
COVE = REALDATA / "360giving-dataquality" / "cove_360_fixtures"


def _need(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"real samples not present: {folder}")
    return folder


# --------------------------------------------------------------------------- independent reading


def _grants_array(path: Path) -> list[Any] | None:
    """The top-level `grants` list of a JSON file, or None (invalid JSON / not a package)."""
    try:
        data = json.loads(path.read_bytes(), parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(data, dict) and isinstance(data.get("grants"), list):
        return data["grants"]
    return None


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        return None


def _currency(value: Any) -> str:
    return str(value).strip().upper() if value is not None else ""


def _csv_records(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252")
    rows = list(csv.DictReader(text.splitlines()))
    return [r for r in rows if any((v or "").strip() for v in r.values())]


def file_truth(path: Path) -> tuple[int, dict[str, Decimal]]:
    """(number of grants, sum of numeric Amount Awarded per upper-cased currency)."""
    sums: dict[str, Decimal] = defaultdict(Decimal)
    if path.suffix.lower() == ".json":
        grants = _grants_array(path)
        assert grants is not None, f"{path} is not a 360Giving package"
        for g in grants:
            amount = _decimal(g.get("amountAwarded")) if isinstance(g, dict) else None
            if amount is not None:
                sums[_currency(g.get("currency"))] += amount
        return len(grants), dict(sums)
    records = _csv_records(path)
    for r in records:
        amount = _decimal(r.get("Amount Awarded"))
        if amount is not None:
            sums[_currency(r.get("Currency"))] += amount
    return len(records), dict(sums)


def grant_files() -> list[Path]:
    """Real files that are complete 360Giving grant tables (decided by reading them here)."""
    out: list[Path] = []
    if GRANTNAV.is_dir():
        out += [p for p in sorted(GRANTNAV.glob("*.json")) if _grants_array(p) is not None]
    if COVE.is_dir():
        out += [p for p in sorted(COVE.glob("*.json")) if _grants_array(p) is not None]
        required = {"Identifier", "Amount Awarded", "Currency", "Award Date"}
        for p in sorted(COVE.glob("*.csv")):
            header = next(csv.reader(p.read_bytes().decode("cp1252").splitlines()), [])
            if required <= {h.lstrip("\ufeff\u00ef\u00bb\u00bf").strip() for h in header}:
                out.append(p)
    return out


# --------------------------------------------------------------------------- pipeline


def build(tmp_path: Path, files: list[Path]) -> duckdb.DuckDBPyConnection:
    """Symlink `files` into a fresh raw folder, ingest, load references; no staging yet."""
    folder = tmp_path / "raw" / "360giving"
    folder.mkdir(parents=True)
    for f in files:
        (folder / f.name).symlink_to(f)
    con = duckdb.connect(str(tmp_path / "build.duckdb"))
    ensure_schemas(con)
    ingest_folder(
        con,
        source_system=SOURCE_SYSTEM,
        raw_dir=tmp_path / "raw",
        folder="360giving",
        suffixes=SUFFIXES,
        raw_table=RAW_GRANTS,
        parser=parse_file,
        parser_version=PARSER_VERSION,
        log=lambda _msg: None,
    )
    load_reference_csv(con, ORGID_PREFIXES, "prefix", SHIPPED_DIR / "orgid_prefixes.csv", None)
    load_reference_csv(con, FUNDERS, "funder_id", SHIPPED_DIR / "funders.csv", None)
    create_table(con, ECB_RATES, replace=True)
    load_ecb_rates(con, ECB_RATES.qualified)
    return con


def staged_by_currency(con: duckdb.DuckDBPyConnection, rel: str) -> tuple[int, dict[str, Decimal]]:
    rows = con.execute(
        f"SELECT currency_original, count(*), sum(amount_original) FROM {STG_GRANTS.qualified} "
        "WHERE source_file = ? GROUP BY 1",
        [rel],
    ).fetchall()
    return sum(r[1] for r in rows), {r[0]: Decimal(r[2]) for r in rows}


def quarantined_by_currency(
    con: duckdb.DuckDBPyConnection, rel: str
) -> tuple[int, dict[str, Decimal]]:
    """Records of `rel` quarantined at raw (per record) or staging, with their raw amounts
    summed here in Python (unparseable amounts contribute nothing, as in file_truth)."""
    n_raw = con.execute(
        f"SELECT count(*) FROM {QUARANTINE.qualified} WHERE source_file = ? "
        "AND source_row IS NOT NULL",
        [rel],
    ).fetchone()
    rows = con.execute(
        f"SELECT r.currency, r.amount_awarded FROM {STG_QUARANTINE.qualified} q "
        f"JOIN {RAW_GRANTS.qualified} r USING (source_file, source_row) "
        "WHERE q.source_system = '360giving' AND q.source_file = ?",
        [rel],
    ).fetchall()
    n_stg = con.execute(
        f"SELECT count(*) FROM {STG_QUARANTINE.qualified} WHERE source_file = ?", [rel]
    ).fetchone()
    assert n_stg == (len(rows),), "every staging-quarantined row must join back to raw"
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for cur, amount in rows:
        value = _decimal(amount)
        if value is not None:
            sums[_currency(cur)] += value
    return (n_raw[0] if n_raw else 0) + len(rows), dict(sums)


def _add(a: dict[str, Decimal], b: dict[str, Decimal]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = defaultdict(Decimal)
    for d in (a, b):
        for k, v in d.items():
            out[k] += v
    return {k: v for k, v in out.items() if v or k in a or k in b}


# --------------------------------------------------------------------------- one file at a time


def _ids(paths: list[Path]) -> list[str]:
    return [f"{p.parent.name}/{p.name}" for p in paths]


_FILES = grant_files()


@pytest.mark.parametrize("path", _FILES or [None], ids=_ids(_FILES) or ["none"])
def test_single_real_file_reconciles(tmp_path: Path, path: Path | None) -> None:
    _need(REALDATA)
    if path is None:
        pytest.skip(f"no 360Giving grant files found under {REALDATA}")
    n_file, sums_file = file_truth(path)
    con = build(tmp_path, [path])
    rel = f"360giving/{path.name}"
    m = con.execute(
        f"SELECT status, message FROM {FILE_MANIFEST.qualified} WHERE source_file = ?", [rel]
    ).fetchone()
    assert m is not None and m[0] in ("loaded", "partial"), m
    build_stg_360giving_grants(con)

    n_staged, sums_staged = staged_by_currency(con, rel)
    n_quar, sums_quar = quarantined_by_currency(con, rel)
    assert n_staged + n_quar == n_file
    assert _add(sums_staged, sums_quar) == {k: v for k, v in sums_file.items()}
    if path.parent == GRANTNAV:  # clean real data: nothing lost to quarantine
        assert (n_staged, sums_staged) == (n_file, sums_file)
        assert n_quar == 0


# --------------------------------------------------------------------------- broken files


def test_malformed_json_is_quarantined_with_a_reason(tmp_path: Path) -> None:
    path = _need(COVE) / "fundingproviders-grants_malformed.json"
    if not path.is_file():
        pytest.skip(f"real samples not present: {path}")
    with pytest.raises(ValueError):
        json.loads(path.read_bytes())  # really invalid
    con = build(tmp_path, [path])
    rel = f"360giving/{path.name}"
    m = con.execute(
        f"SELECT status, rows_loaded, message FROM {FILE_MANIFEST.qualified} WHERE source_file = ?",
        [rel],
    ).fetchone()
    assert m is not None and m[:2] == ("failed", 0)
    q = con.execute(
        f"SELECT source_row, source_locator, reason FROM {QUARANTINE.qualified} "
        "WHERE source_file = ?",
        [rel],
    ).fetchall()
    assert len(q) == 1 and q[0][0] is None
    assert q[0][1].startswith("$.grants[")
    assert "JSON" in q[0][2] and q[0][2] == m[2]
    assert con.execute(f"SELECT count(*) FROM {RAW_GRANTS.qualified}").fetchone() == (0,)


def test_cp1252_csv_loads_as_cp1252(tmp_path: Path) -> None:
    path = _need(COVE) / "fundingproviders-grants_2_grants_cp1252.csv"
    if not path.is_file():
        pytest.skip(f"real samples not present: {path}")
    raw = path.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    expected_ids = [r["Identifier"] for r in csv.DictReader(raw.decode("cp1252").splitlines())]
    assert any("\u20ac" in i for i in expected_ids)  # the euro sign, 0x80 in cp1252
    con = build(tmp_path, [path])
    rel = f"360giving/{path.name}"
    m = con.execute(
        f"SELECT status, encoding, rows_loaded FROM {FILE_MANIFEST.qualified} "
        "WHERE source_file = ?",
        [rel],
    ).fetchone()
    assert m == ("loaded", "cp1252", len(expected_ids))
    got = [
        r[0]
        for r in con.execute(
            f"SELECT identifier FROM {RAW_GRANTS.qualified} ORDER BY source_row"
        ).fetchall()
    ]
    assert got == expected_ids


def test_bom_csv_is_rejected_naming_the_missing_columns(tmp_path: Path) -> None:
    path = _need(COVE) / "bom.csv"
    if not path.is_file():
        pytest.skip(f"real samples not present: {path}")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    con = build(tmp_path, [path])
    m = con.execute(
        f"SELECT status, message FROM {FILE_MANIFEST.qualified} WHERE source_file = ?",
        [f"360giving/{path.name}"],
    ).fetchone()
    assert m is not None and m[0] == "failed"
    assert "Amount Awarded" in m[1] and "Award Date" in m[1]
    # Identifier and Currency are present (the BOM must not hide Identifier)
    missing_part = m[1].split("(columns found")[0]
    assert "Identifier" not in missing_part and "Currency" not in missing_part


# --------------------------------------------------------------------------- whole folder


def test_whole_grantnav_folder_quarantines_shared_ids_as_duplicates(tmp_path: Path) -> None:
    folder = _need(GRANTNAV)
    a, b = folder / "a002400000KeYdsAAF.json", folder / "a002400000KeYdsAAF-currency.json"
    if not (a.is_file() and b.is_file()):
        pytest.skip(f"real samples not present: {a}, {b}")
    everything = sorted(p for p in folder.iterdir() if p.is_file())
    grant_paths = [p for p in everything if p.suffix == ".json" and _grants_array(p) is not None]

    ids_a = {g["id"] for g in _grants_array(a) or []}
    ids_b = {g["id"] for g in _grants_array(b) or []}
    shared = ids_a & ids_b
    assert shared  # the premise of this test
    total = 0
    sums_file: dict[str, Decimal] = {}
    all_ids: Counter[str] = Counter()
    for p in grant_paths:
        n, sums = file_truth(p)
        total += n
        sums_file = _add(sums_file, sums)
        all_ids.update(g["id"] for g in _grants_array(p) or [])

    con = build(tmp_path, everything)  # README.md, funders.jl, data.json are there too
    staged, quarantined, _ = build_stg_360giving_grants(con)

    # files that are not grant packages fail on their own; the rest load
    statuses = dict(
        con.execute(f"SELECT source_file, status FROM {FILE_MANIFEST.qualified}").fetchall()
    )
    for p in grant_paths:
        assert statuses[f"360giving/{p.name}"] == "loaded"
    if (folder / "data.json").is_file():
        assert statuses["360giving/data.json"] == "failed"  # a registry list, no grants

    assert staged + quarantined == total
    assert staged == len(all_ids)
    assert quarantined == sum(c - 1 for c in all_ids.values()) == len(shared)

    dups = con.execute(
        f"SELECT record_id, source_file, reason FROM {STG_QUARANTINE.qualified}"
    ).fetchall()
    assert {d[0] for d in dups} == shared
    for record_id, source_file, reason in dups:
        other = a.name if source_file.endswith(b.name) else b.name
        assert "duplicate" in reason.lower() and record_id in reason and other in reason
    # each shared id is staged exactly once
    staged_ids = Counter(
        r[0] for r in con.execute(f"SELECT grant_id FROM {STG_GRANTS.qualified}").fetchall()
    )
    assert all(staged_ids[i] == 1 for i in shared)

    # money: staged + quarantined copies = every grant in every file, per currency
    staged_sums = {
        r[0]: Decimal(r[1])
        for r in con.execute(
            f"SELECT currency_original, sum(amount_original) FROM {STG_GRANTS.qualified} GROUP BY 1"
        ).fetchall()
    }
    quar_sums: dict[str, Decimal] = defaultdict(Decimal)
    for p in grant_paths:
        quar_sums = _add(quar_sums, quarantined_by_currency(con, f"360giving/{p.name}")[1])
    assert _add(staged_sums, quar_sums) == sums_file


# --------------------------------------------------------------------------- timing


def test_time_staging_on_largest_file(tmp_path: Path) -> None:
    folder = _need(GRANTNAV)
    candidates = [p for p in folder.glob("*.json") if _grants_array(p) is not None]
    if not candidates:
        pytest.skip(f"no 360Giving grant files in {folder}")
    largest = max(candidates, key=lambda p: p.stat().st_size)
    n_file, _ = file_truth(largest)
    con = build(tmp_path, [largest])
    started = time.perf_counter()
    staged, quarantined, _ = build_stg_360giving_grants(con)
    elapsed = time.perf_counter() - started
    print(
        f"\nstaging build (no GX) on {largest.name} "
        f"({largest.stat().st_size / 1e6:.1f} MB, {n_file} grants): {elapsed:.3f} s"
    )
    assert staged + quarantined == n_file
