"""Real public OCDS samples (OCDS sample-data real examples, Contracts Finder via bluetail)
through raw ingest and staging.

The samples live OUTSIDE the repository (`../shared/realdata`, see its MANIFEST.md) and are never
copied into it: each test symlinks the files it needs into tmp_path. Expected figures are
computed here with `json` and `decimal.Decimal`, independently of the pipeline. Merge semantics
are applied only where a figure cannot be stated without them: awards are counted once per
(ocid, award id) and a later release's value replaces an earlier one (OCDS identifier merge).

Per file means: files are loaded in batches in which no ocid appears in two files (the samples
publish some processes twice, as a release and inside a record), so every compiled release and
award in staging belongs to exactly one file and can be compared with that file.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from assets.raw.ingest import FILE_MANIFEST, ingest_folder
from assets.raw.ocds import RAW_RELEASES, SUFFIXES, parse_file
from assets.staging import stg_ocds
from assets.staging.quarantine import STG_QUARANTINE
from assets.staging.stg_ocds import (
    STG_AWARD_SUPPLIERS,
    STG_AWARDS,
    STG_HISTORY,
    STG_PARTIES,
    STG_RELEASES,
)
from pipelines.quality import EXPECTATIONS_DIR, load_suite, run_suite

pytestmark = pytest.mark.realdata

REALDATA = Path(
    os.environ.get("FUNDTRACE_REALDATA_DIR")
    or Path(__file__).resolve().parents[2] / "shared" / "realdata"
)
EXAMPLES = REALDATA / "ocds-sample-data-real-examples"
BLUETAIL = REALDATA / "uk-contracts-finder-bluetail"
TABLES = (
    "stg_ocds_release_history", "stg_ocds_releases", "stg_ocds_parties", "stg_ocds_tenders",
    "stg_ocds_awards", "stg_ocds_award_suppliers", "stg_ocds_contracts", "stg_ocds_bids",
)  # fmt: skip


def _need(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"real samples not present: {folder}")
    return folder


# --------------------------------------------------------------------------- independent reading


def releases_of(value: Any) -> Iterator[dict[str, Any]]:
    """The releases a JSON value publishes, by the standard's packaging rules: a release
    package's releases; a record's embedded releases, else its compiledRelease; a release."""
    if isinstance(value, list):
        for item in value:
            yield from releases_of(item)
    elif isinstance(value, dict):
        if "records" in value:
            yield from releases_of(value["records"])
        elif "compiledRelease" in value or "versionedRelease" in value:
            embedded = [r for r in value.get("releases") or [] if isinstance(r, dict) and "id" in r]
            for r in embedded or [value.get("compiledRelease")]:
                if isinstance(r, dict):
                    yield {"ocid": value.get("ocid"), **r} if "ocid" not in r else r
        elif "releases" in value:
            yield from value["releases"]
        else:
            yield value


def independent_figures(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_bytes(), parse_float=Decimal)
    releases = sorted(releases_of(data), key=lambda r: str(r.get("date") or ""))
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for r in releases:
        raw_awards = r.get("awards")
        awards = raw_awards if isinstance(raw_awards, list) else [raw_awards] if raw_awards else []
        for index, a in enumerate(awards):
            key = (r["ocid"], str(a["id"]) if a.get("id") is not None else f"#{index}")
            value = merged.setdefault(key, {})
            value.update(
                {k: v for k, v in (a.get("value") or {}).items() if k in ("amount", "currency")}
            )
    totals: dict[str, Decimal] = {}
    for value in merged.values():
        amount, currency = value.get("amount"), str(value.get("currency") or "").strip().upper()
        if amount in (None, "") or len(currency) != 3 or not currency.isalpha():
            continue
        totals[currency] = totals.get(currency, Decimal(0)) + Decimal(str(amount))
    return {
        "releases": len(releases),
        "ocids": {r["ocid"] for r in releases},
        "awards": len(merged),
        "totals": totals,
    }


def batches(files: list[Path], figures: dict[Path, dict[str, Any]]) -> list[list[Path]]:
    """Greedy partition: no ocid in two files of one batch."""
    out: list[tuple[list[Path], set[str]]] = []
    for f in files:
        for members, seen in out:
            if not (figures[f]["ocids"] & seen):
                members.append(f)
                seen |= figures[f]["ocids"]
                break
        else:
            out.append(([f], set(figures[f]["ocids"])))
    return [members for members, _ in out]


def load_batch(
    tmp: Path, template: Path, root: Path, files: list[Path]
) -> duckdb.DuckDBPyConnection:
    raw = tmp / "raw"
    for f in files:
        link = raw / "ocds" / f.relative_to(root)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(f)
    shutil.copy(template, tmp / "build.duckdb")
    con = duckdb.connect(str(tmp / "build.duckdb"))
    report = ingest_folder(
        con, source_system="ocds", raw_dir=raw, folder="ocds", suffixes=SUFFIXES,
        raw_table=RAW_RELEASES, parser=parse_file, parser_version="test", log=lambda _m: None,
    )  # fmt: skip
    assert report.files_failed == 0, con.execute(f"SELECT source_file, message FROM {FILE_MANIFEST.qualified} WHERE status = 'failed'").fetchall()  # fmt: skip
    stg_ocds.build_all(con)
    return con


def _check_batch(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    figures: dict[Path, dict[str, Any]],
    files: list[Path],
) -> None:
    for f in files:
        rel = "ocds/" + f.relative_to(root).as_posix()
        expected = figures[f]
        got_ocids = {r[0] for r in con.execute(f"SELECT ocid FROM {STG_RELEASES.qualified} WHERE source_file = ?", [rel]).fetchall()}  # fmt: skip
        assert got_ocids == expected["ocids"], rel
        (awards,) = con.execute(f"SELECT count(*) FROM {STG_AWARDS.qualified} WHERE source_file = ?", [rel]).fetchone() or (0,)  # fmt: skip
        assert awards == expected["awards"], rel
        totals = dict(con.execute(
            f"SELECT award_value_currency, sum(award_value_amount) FROM {STG_AWARDS.qualified} "
            "WHERE source_file = ? AND award_value_currency IS NOT NULL GROUP BY 1", [rel]).fetchall())  # fmt: skip
        assert totals == expected["totals"], rel
        # rows in = loaded + quarantined, raw -> history
        n_raw, n_hist, n_q = con.execute(
            f"""SELECT (SELECT count(*) FROM {RAW_RELEASES.qualified} WHERE source_file = $1),
                       (SELECT count(*) FROM {STG_HISTORY.qualified} WHERE source_file = $1),
                       (SELECT count(*) FROM {STG_QUARANTINE.qualified}
                        WHERE source_file = $1 AND staging_table = 'stg_ocds_release_history')""",
            [rel],
        ).fetchone() or (0, 0, 0)
        assert n_raw == expected["releases"] == n_hist + n_q, rel


def _run(tmp_path: Path, template_db: Path, root: Path) -> int:
    files = sorted(p for p in _need(root).rglob("*.json") if p.is_file())
    figures = {f: independent_figures(f) for f in files}
    for n, members in enumerate(batches(files, figures)):
        con = load_batch(tmp_path / f"b{n}", template_db, root, members)
        try:
            _check_batch(con, root, figures, members)
            for table in TABLES:
                outcome = run_suite(
                    con, "staging", table, load_suite(EXPECTATIONS_DIR / f"staging__{table}.json")
                )
                assert outcome.errors == [], outcome.error_summary()
                assert outcome.critical_failures == [], [e.label for e in outcome.critical_failures]
        finally:
            con.close()
    return len(files)


def test_real_examples_per_file_ocids_and_award_totals(tmp_path: Path, template_db: Path) -> None:
    assert _run(tmp_path, template_db, EXAMPLES) == 178


def test_contracts_finder_bluetail_per_file_ocids_and_award_totals(
    tmp_path: Path, template_db: Path
) -> None:
    assert _run(tmp_path, template_db, BLUETAIL) == 169


# --------------------------------------------------------------------------- quirks in real files


def test_moldova_lowercase_mdl_is_kept_without_a_guessed_eur_value(
    tmp_path: Path, template_db: Path
) -> None:
    root = _need(EXAMPLES)
    files = sorted((root / "moldova" / "sample" / "releases").glob("*.json"))
    published = [
        a["value"]["currency"]
        for f in files for r in releases_of(json.loads(f.read_bytes()))
        for a in r.get("awards") or [] if isinstance(a.get("value"), dict)
    ]  # fmt: skip
    assert published and set(published) == {"mdl"}
    con = load_batch(tmp_path, template_db, root, files)
    try:
        got = con.execute(
            f"SELECT award_value_currency, award_value_currency_published, count(*), count(amount_eur), "
            f"list(DISTINCT value_note) FROM {STG_AWARDS.qualified} WHERE award_value_amount IS NOT NULL GROUP BY ALL"
        ).fetchall()
        assert got == [("MDL", "mdl", len(published), 0, ["no EUR value: no ECB rate for MDL"])]
    finally:
        con.close()


def test_contracts_finder_identifiers_and_html_entities(tmp_path: Path, template_db: Path) -> None:
    root = _need(BLUETAIL)
    files = sorted(root.rglob("*.json"))
    coh: set[str] = set()
    empty_schemes = 0
    escaped_names = 0
    for f in files:
        for r in releases_of(json.loads(f.read_bytes())):
            for p in r.get("parties") or []:
                ident = p.get("identifier") or {}
                if ident.get("scheme") == "":
                    empty_schemes += 1
                if ident.get("scheme") == "GB-COH" and (ident.get("id") or "").strip():
                    number = ident["id"].strip().upper()
                    coh.add("GB-COH-" + (number.zfill(8) if number.isdigit() else number))
                if "&amp;" in (p.get("name") or "") or "&#" in (p.get("name") or ""):
                    escaped_names += 1
    assert empty_schemes > 0 and escaped_names > 0
    figures = {f: independent_figures(f) for f in files}
    found: set[str] = set()
    for n, members in enumerate(batches(files, figures)):
        con = load_batch(tmp_path / f"b{n}", template_db, root, members)
        try:
            found |= {r[0] for r in con.execute(
                f"SELECT DISTINCT party_org_ref FROM {STG_PARTIES.qualified} "
                "WHERE party_origin = 'parties' AND party_org_ref LIKE 'GB-COH-%' AND identifier_scheme = 'GB-COH'").fetchall()}  # fmt: skip
            assert con.execute(
                f"SELECT count(*) FROM {STG_PARTIES.qualified} WHERE regexp_matches(party_org_ref, '^-|-$') "
                "OR (identifier_scheme IS NULL AND party_org_ref NOT LIKE 'FTNAME-%')"
            ).fetchone() == (0,)
            assert con.execute(
                f"""SELECT count(*) FROM (SELECT party_name AS n FROM {STG_PARTIES.qualified}
                    UNION ALL SELECT supplier_name FROM {STG_AWARD_SUPPLIERS.qualified})
                    WHERE n LIKE '%&amp;%' OR n LIKE '%&#%'"""
            ).fetchone() == (0,)
            # suppliers reference parties by local id only: every one resolves
            assert con.execute(
                f"SELECT count(*) FROM {STG_AWARD_SUPPLIERS.qualified} WHERE NOT party_resolved"
            ).fetchone() == (0,)
        finally:
            con.close()
    assert found == coh and len(coh) == 201


def test_records_merge_like_the_publishers_compiled_release(
    tmp_path: Path, template_db: Path
) -> None:
    """Where a record carries both its releases and the publisher's compiledRelease, merging the
    releases gives the awards of the publisher's own compilation."""
    root = _need(EXAMPLES)
    files = sorted(root.glob("*/**/records/*.json"))
    expected: dict[str, dict[str, Decimal]] = {}
    for f in files:
        record = json.loads(f.read_bytes(), parse_float=Decimal)
        compiled = record["compiledRelease"]
        totals: dict[str, Decimal] = {}
        for a in compiled.get("awards") or []:
            v = a.get("value") or {}
            if v.get("amount") not in (None, "") and str(v.get("currency") or "").strip():
                c = str(v["currency"]).upper()
                totals[c] = totals.get(c, Decimal(0)) + Decimal(str(v["amount"]))
        expected[compiled["ocid"]] = totals
    con = load_batch(tmp_path, template_db, root, files)
    try:
        got: dict[str, dict[str, Decimal]] = {o: {} for o in expected}
        for ocid, cur, total in con.execute(
            f"SELECT ocid, award_value_currency, sum(award_value_amount) FROM {STG_AWARDS.qualified} "
            "WHERE award_value_currency IS NOT NULL GROUP BY ALL"
        ).fetchall():
            got[ocid][cur] = total
        assert got == expected
    finally:
        con.close()
