"""Real TED notices (`../shared/realdata/ted-xml-r209-notices` and `ted-eforms-notices`, see
their MANIFEST.md) through raw ingest and staging.

The files are never copied into the repository: they are symlinked into one tmp raw folder
(the notices are distinct, so loading them together also shows that the bad ones fail alone).
Expected figures are computed here with `xml.etree.ElementTree` and `Decimal`, without the
pipeline's reader:
- R2.0.9: only the form with CATEGORY="ORIGINAL" (six files also carry 23 or 24 machine
  translations, which would multiply the totals); award notices are F03/F06/F15/F25 and
  F21/F22/F23 with NOTICE/@TYPE *AWARD_CONTRACT; the award value is
  AWARD_CONTRACT/AWARDED_CONTRACT/VALUES/VAL_TOTAL, summed per @CURRENCY; one award row per
  CONTRACTOR (at least one per AWARD_CONTRACT).
- eForms: ContractAwardNotice with subtype 29-37; for each LotResult with TenderResultCode
  selec-w, the BT-720 PayableAmount of every LotTender it references, per @currencyID; one row
  per tenderer of each such tender, one per other LotResult.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from assets.common.money import load_ecb_rates
from assets.common.tables import create_table, ensure_schemas
from assets.raw.ingest import FILE_MANIFEST
from assets.raw.reference import ECB_RATES
from assets.raw.ted import RAW_AWARDS, RAW_NOTICES, ingest_ted
from assets.staging.quarantine import STG_QUARANTINE
from assets.staging.stg_ted_awards import STG_TED_AWARDS, STG_TED_NOTICES, build_stg_ted

pytestmark = pytest.mark.realdata

REALDATA = Path(
    os.environ.get("FUNDTRACE_REALDATA_DIR")
    or Path(__file__).resolve().parents[2] / "shared" / "realdata"
)
FOLDERS = ("ted-xml-r209-notices", "ted-eforms-notices")

T = "{http://publications.europa.eu/resource/schema/ted/R2.0.9/publication}"
NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
    "efac": "http://data.europa.eu/p27/eforms-ubl-extension-aggregate-components/1",
}


def _files() -> list[Path]:
    return sorted(
        p
        for folder in FOLDERS
        if (REALDATA / folder).is_dir()
        for p in (REALDATA / folder).glob("*.xml")
    )


def _params() -> list:
    found = _files()
    if found:
        return [pytest.param(p, id=p.name) for p in found]
    reason = f"no real TED notices in {REALDATA}/{{{','.join(FOLDERS)}}} (FUNDTRACE_REALDATA_DIR)"
    return [pytest.param(None, id="absent", marks=pytest.mark.skip(reason=reason))]


# --------------------------------------------------------------------------- independent reading


@dataclass
class Expected:
    status: str  # manifest status: loaded | empty | failed
    notices: int = 0
    award_rows: int = 0
    totals: dict[str, Decimal] = field(default_factory=dict)


def expected_r209(path: Path) -> Expected:
    root = ET.parse(path).getroot()
    forms = list(root.find(f"{T}FORM_SECTION") or [])
    (form,) = [f for f in forms if f.get("CATEGORY") == "ORIGINAL"]
    family = form.tag.removeprefix(T)[:3]
    notice = form.find(f"{T}NOTICE")
    notice_type = notice.get("TYPE") if notice is not None else None
    if family not in ("F03", "F06", "F15", "F25") and not (
        family in ("F21", "F22", "F23")
        and notice_type in ("AWARD_CONTRACT", "CONCESSION_AWARD_CONTRACT")
    ):
        return Expected("empty")
    totals: dict[str, Decimal] = defaultdict(Decimal)
    rows = 0
    for award in form.findall(f"{T}AWARD_CONTRACT"):
        rows += max(1, len(award.findall(f".//{T}CONTRACTOR")))
        for value in award.findall(f"{T}AWARDED_CONTRACT/{T}VALUES/{T}VAL_TOTAL"):
            totals[(value.get("CURRENCY") or "").upper()] += Decimal((value.text or "").strip())
    return Expected("loaded", 1, rows, dict(totals))


def naive_r209_totals(path: Path) -> dict[str, Decimal]:
    """What a reader that ignores CATEGORY would count: every form's awards."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for award in ET.parse(path).getroot().iter(f"{T}AWARDED_CONTRACT"):
        for value in award.findall(f"{T}VALUES/{T}VAL_TOTAL"):
            totals[(value.get("CURRENCY") or "").upper()] += Decimal((value.text or "").strip())
    return dict(totals)


def expected_eforms(path: Path) -> Expected:
    root = ET.parse(path).getroot()
    subtype = root.findtext(".//efac:NoticeSubType/cbc:SubTypeCode", namespaces=NS)
    if root.tag.rsplit("}", 1)[-1] != "ContractAwardNotice" or subtype not in {
        str(n) for n in range(29, 38)
    }:
        return Expected("empty")
    if not root.findtext("cbc:CustomizationID", namespaces=NS):
        return Expected("failed")
    result = root.find(".//efac:NoticeResult", NS)
    assert result is not None
    tenders = {t.findtext("cbc:ID", namespaces=NS): t for t in result.findall("efac:LotTender", NS)}
    parties = {
        p.findtext("cbc:ID", namespaces=NS): p for p in result.findall("efac:TenderingParty", NS)
    }
    totals: dict[str, Decimal] = defaultdict(Decimal)
    rows = 0
    for lot_result in result.findall("efac:LotResult", NS):
        refs = [(e.text or "").strip() for e in lot_result.findall("efac:LotTender/cbc:ID", NS)]
        if lot_result.findtext("cbc:TenderResultCode", namespaces=NS) != "selec-w" or not refs:
            rows += 1
            continue
        for ref in refs:
            tender = tenders[ref]
            amount = tender.find("cac:LegalMonetaryTotal/cbc:PayableAmount", NS)
            if amount is not None:
                totals[(amount.get("currencyID") or "").upper()] += Decimal(
                    (amount.text or "").strip()
                )
            party = parties[tender.findtext("efac:TenderingParty/cbc:ID", namespaces=NS)]
            rows += max(1, len(party.findall("efac:Tenderer", NS)))
    return Expected("loaded", 1, rows, dict(totals))


def expected(path: Path) -> Expected:
    return expected_r209(path) if path.parent.name == FOLDERS[0] else expected_eforms(path)


# --------------------------------------------------------------------------- one build


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    files = _files()
    if not files:
        pytest.skip(f"no real TED notices in {REALDATA}")
    base = tmp_path_factory.mktemp("ted_real")
    (base / "raw" / "ted").mkdir(parents=True)
    for path in files:
        (base / "raw" / "ted" / path.name).symlink_to(path)
    con = duckdb.connect(str(base / "build.duckdb"))
    ensure_schemas(con)
    create_table(con, ECB_RATES, replace=True)
    load_ecb_rates(con, ECB_RATES.qualified)
    ingest_ted(con, base / "raw", log=lambda _m: None)
    build_stg_ted(con)
    yield con
    con.close()


def _one(con: duckdb.DuckDBPyConnection, sql: str, *params: object) -> object:
    row = con.execute(sql, list(params)).fetchone()
    assert row is not None
    return row[0]


@pytest.mark.parametrize("path", _params())
def test_notices_award_rows_and_totals_per_currency(built, path: Path) -> None:
    con = built
    want = expected(path)
    source = f"ted/{path.name}"
    status, message = con.execute(
        f"SELECT status, message FROM {FILE_MANIFEST.qualified} WHERE source_file = ?", [source]
    ).fetchone() or (None, None)
    assert status == want.status, message
    assert (
        _one(con, f"SELECT count(*) FROM {STG_TED_NOTICES.qualified} WHERE source_file = ?", source)
        == want.notices
    )
    assert (
        _one(con, f"SELECT count(*) FROM {RAW_AWARDS.qualified} WHERE source_file = ?", source)
        == want.award_rows
    )
    assert (
        _one(con, f"SELECT count(*) FROM {STG_TED_AWARDS.qualified} WHERE source_file = ?", source)
        == want.award_rows
    )
    if path.parent.name == FOLDERS[0] and want.notices:
        forms = list(ET.parse(path).getroot().find(f"{T}FORM_SECTION") or [])
        translations = [f for f in forms if f.get("CATEGORY") not in (None, "ORIGINAL")]
        skipped = _one(
            con,
            f"SELECT translations_skipped FROM {RAW_NOTICES.qualified} WHERE source_file = ?",
            source,
        )
        assert skipped == str(len(translations))
    # nothing of a real file is quarantined at staging: every award row is staged
    assert (
        _one(con, f"SELECT count(*) FROM {STG_QUARANTINE.qualified} WHERE source_file = ?", source)
        == 0
    )
    # one row per award carries its value (a group's members repeat it)
    got = dict(
        con.execute(
            f"""SELECT currency_original, sum(value_original) FROM {STG_TED_AWARDS.qualified}
                WHERE source_file = ? AND coalesce(winner_index, 1) = 1
                  AND value_original IS NOT NULL GROUP BY 1""",
            [source],
        ).fetchall()
    )
    assert got == want.totals
    unconverted = _one(
        con,
        f"SELECT count(*) FROM {STG_TED_AWARDS.qualified} "
        "WHERE source_file = ? AND value_original IS NOT NULL AND value_eur IS NULL",
        source,
    )
    assert unconverted == 0


def _translated_params() -> list:
    found = [
        p
        for p in _files()
        if p.parent.name == FOLDERS[0] and b'CATEGORY="TRANSLATION"' in p.read_bytes()
    ]
    if found:
        return [pytest.param(p, id=p.name) for p in found]
    reason = f"no real R2.0.9 notice with translated forms in {REALDATA / FOLDERS[0]}"
    return [pytest.param(None, id="absent", marks=pytest.mark.skip(reason=reason))]


@pytest.mark.parametrize("path", _translated_params())
def test_translations_are_not_counted(built, path: Path) -> None:
    forms = list(ET.parse(path).getroot().find(f"{T}FORM_SECTION") or [])
    translations = [f for f in forms if f.get("CATEGORY") == "TRANSLATION"]
    skipped = _one(
        built,
        f"SELECT translations_skipped FROM {RAW_NOTICES.qualified} WHERE source_file = ?",
        f"ted/{path.name}",
    )
    assert skipped == str(len(translations)) and len(translations) >= 23
    want = expected(path).totals
    if want:  # the test can tell: counting every form would give other totals
        assert naive_r209_totals(path) != want


def test_the_invalid_sdk_example_fails_and_notices_that_are_not_awards_are_skipped(built) -> None:
    names = {p.name for p in _files()}
    manifest = dict(
        built.execute(
            f"SELECT source_file, status || ': ' || message FROM {FILE_MANIFEST.qualified}"
        ).fetchall()
    )
    if "INVALID_can_24_empty.xml" in names:
        assert manifest["ted/INVALID_can_24_empty.xml"].startswith("failed: unsupported eForms")
    for name in ("cn_24_minimal.xml", "pin-only_24.xml", "change-cn_24_void.xml"):
        if name in names:
            assert manifest[f"ted/{name}"].startswith("empty: not an award notice"), name
