"""TED notices: raw reading of R2.0.9 and eForms award notices (assets/raw/ted.py), typed
staging (assets/staging/stg_ted_awards.py), the procurement contracts it contributes, its GX
suites, its Dagster wiring, and the two shared helpers it added (HTML entities, alpha-3
countries).

Every test writes its own small notices into `<tmp>/raw/ted/` with the builders below;
expected values are written next to them.
"""

from __future__ import annotations

import datetime as dt
import html
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from currency_converter import CurrencyConverter
from dagster_duckdb import DuckDBResource

from assets.common.country_alpha3 import ALPHA3_TO_ALPHA2, country_iso2
from assets.common.html_text import html_unescape
from assets.common.money import load_ecb_rates
from assets.common.tables import create_table, ensure_schemas
from assets.intermediate import int_procurement_awards as ipa
from assets.raw import ted
from assets.raw.ingest import FILE_MANIFEST, QUARANTINE, IngestReport
from assets.raw.reference import ECB_RATES, ref_ecb_rates
from assets.raw.ted import R209_NS, RAW_AWARDS, RAW_NOTICES, ingest_ted, read_notice
from assets.staging import stg_ted_awards
from assets.staging.quarantine import STG_QUARANTINE
from assets.staging.stg_ted_awards import (
    CONTRACTS_SQL,
    STG_TED_AWARDS,
    STG_TED_NOTICES,
    build_stg_ted,
)
from pipelines.quality import build_gx_asset_checks, load_suite, run_suite
from pipelines.resources import FundtraceSettings

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "data" / "raw" / "ted"
SUITES = {
    name: REPO / "expectations" / f"staging__{name}.json"
    for name in ("stg_ted_awards", "stg_ted_notices")
}

# --------------------------------------------------------------------------- builders


def r209_contractor(name: str, nid: str | None = None, country: str = "UK") -> str:
    nid_xml = f"<NATIONALID>{nid}</NATIONALID>" if nid else ""
    return (
        f"<CONTRACTOR><ADDRESS_CONTRACTOR><OFFICIALNAME>{name}</OFFICIALNAME>{nid_xml}"
        f"<TOWN>Town</TOWN><COUNTRY VALUE='{country}'/></ADDRESS_CONTRACTOR><NO_SME/></CONTRACTOR>"
    )


def r209_award(
    item: int,
    contractors: list[str],
    *,
    value: str | None = "1000.00",
    currency: str | None = "EUR",
    contract_no: str | None = None,
    lot_no: str | None = None,
    tenders: str | None = "3",
    concluded: str | None = "2024-02-01",
    extra_values: str = "",
) -> str:
    head = (f"<CONTRACT_NO>{contract_no}</CONTRACT_NO>" if contract_no else "") + (
        f"<LOT_NO>{lot_no}</LOT_NO>" if lot_no else ""
    )
    if not contractors:
        return (
            f"<AWARD_CONTRACT ITEM='{item}'>{head}<NO_AWARDED_CONTRACT>"
            "<PROCUREMENT_UNSUCCESSFUL/></NO_AWARDED_CONTRACT></AWARD_CONTRACT>"
        )
    cur = f" CURRENCY='{currency}'" if currency is not None else ""
    val = f"<VAL_TOTAL{cur}>{value}</VAL_TOTAL>" if value is not None else ""
    group = "<AWARDED_TO_GROUP/>" if len(contractors) > 1 else "<NO_AWARDED_TO_GROUP/>"
    return (
        f"<AWARD_CONTRACT ITEM='{item}'>{head}<TITLE><P>Award {item}</P></TITLE><AWARDED_CONTRACT>"
        + (f"<DATE_CONCLUSION_CONTRACT>{concluded}</DATE_CONCLUSION_CONTRACT>" if concluded else "")
        + (
            f"<TENDERS><NB_TENDERS_RECEIVED>{tenders}</NB_TENDERS_RECEIVED></TENDERS>"
            if tenders
            else ""
        )
        + f"<CONTRACTORS>{group}{''.join(contractors)}</CONTRACTORS>"
        + f"<VALUES>{extra_values}{val}</VALUES></AWARDED_CONTRACT></AWARD_CONTRACT>"
    )


def r209_form(
    awards: list[str],
    *,
    category: str = "ORIGINAL",
    lg: str = "EN",
    form: str = "F03_2014",
    buyer: str = "Harbourton City Council",
    buyer_id: str | None = None,
    buyer_country: str = "UK",
    descrs: str = "<OBJECT_DESCR ITEM='1'><NO_EU_PROGR_RELATED/></OBJECT_DESCR>",
    procedure: str = "<PT_OPEN/>",
    dispatch: str | None = "2024-03-01",
    notice_type: str | None = None,
) -> str:
    bid = f"<NATIONALID>{buyer_id}</NATIONALID>" if buyer_id else ""
    return (
        f"<{form} CATEGORY='{category}' FORM='{form[:3]}' LG='{lg}'>"
        + (f"<NOTICE TYPE='{notice_type}'/>" if notice_type else "")
        + f"<CONTRACTING_BODY><ADDRESS_CONTRACTING_BODY><OFFICIALNAME>{buyer}</OFFICIALNAME>{bid}"
        f"<TOWN>Harbourton</TOWN><COUNTRY VALUE='{buyer_country}'/></ADDRESS_CONTRACTING_BODY>"
        "</CONTRACTING_BODY>"
        "<OBJECT_CONTRACT><TITLE><P>Test procurement</P></TITLE>"
        "<CPV_MAIN><CPV_CODE CODE='34993000'/></CPV_MAIN><TYPE_CONTRACT CTYPE='SUPPLIES'/>"
        f"{descrs}</OBJECT_CONTRACT><PROCEDURE>{procedure}</PROCEDURE>{''.join(awards)}"
        + (
            f"<COMPLEMENTARY_INFO><DATE_DISPATCH_NOTICE>{dispatch}</DATE_DISPATCH_NOTICE>"
            "</COMPLEMENTARY_INFO>"
            if dispatch
            else ""
        )
        + f"</{form}>"
    )


def r209(
    forms: list[str],
    *,
    doc_id: str = "000001-2024",
    ns: str = R209_NS,
    version: str = "R2.0.9.S05.E01",
    doc_type: tuple[str, str] = ("7", "Contract award notice"),
) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<TED_EXPORT xmlns="{ns}" VERSION="{version}" DOC_ID="{doc_id}">'
        "<CODED_DATA_SECTION><REF_OJS><DATE_PUB>20240305</DATE_PUB></REF_OJS>"
        f"<NOTICE_DATA><NO_DOC_OJS>2024/S 001-{doc_id[:6]}</NO_DOC_OJS><LG_ORIG>EN</LG_ORIG>"
        "</NOTICE_DATA><CODIF_DATA><DS_DATE_DISPATCH>20240301</DS_DATE_DISPATCH>"
        f"<TD_DOCUMENT_TYPE CODE='{doc_type[0]}'>{doc_type[1]}</TD_DOCUMENT_TYPE></CODIF_DATA>"
        f"</CODED_DATA_SECTION><FORM_SECTION>{''.join(forms)}</FORM_SECTION></TED_EXPORT>"
    )


EF_NS = (
    'xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2" '
    'xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2" '
    'xmlns:ext="urn:oasis:names:specification:ubl:schema:xsd:CommonExtensionComponents-2" '
    'xmlns:efac="http://data.europa.eu/p27/eforms-ubl-extension-aggregate-components/1" '
    'xmlns:efbc="http://data.europa.eu/p27/eforms-ubl-extension-basic-components/1" '
    'xmlns:efext="http://data.europa.eu/p27/eforms-ubl-extensions/1"'
)


def ef_org(org_id: str, name: str, company_id: str | None = None, country: str = "GBR") -> str:
    cid = (
        f"<cac:PartyLegalEntity><cbc:CompanyID>{company_id}</cbc:CompanyID></cac:PartyLegalEntity>"
        if company_id
        else ""
    )
    return (
        "<efac:Organization><efac:Company>"
        f"<cac:PartyIdentification><cbc:ID>{org_id}</cbc:ID></cac:PartyIdentification>"
        f"<cac:PartyName><cbc:Name>{name}</cbc:Name></cac:PartyName>"
        "<cac:PostalAddress><cac:Country>"
        f"<cbc:IdentificationCode>{country}</cbc:IdentificationCode></cac:Country>"
        f"</cac:PostalAddress>{cid}</efac:Company></efac:Organization>"
    )


def ef_result(
    res_id: str, lot: str, code: str, tenders: list[str], n_tenders: str | None = None
) -> str:
    refs = "".join(f"<efac:LotTender><cbc:ID>{t}</cbc:ID></efac:LotTender>" for t in tenders)
    stats = (
        "<efac:ReceivedSubmissionsStatistics><efbc:StatisticsCode>tenders</efbc:StatisticsCode>"
        f"<efbc:StatisticsNumeric>{n_tenders}</efbc:StatisticsNumeric>"
        "</efac:ReceivedSubmissionsStatistics>"
        if n_tenders is not None
        else ""
    )
    return (
        f"<efac:LotResult><cbc:ID>{res_id}</cbc:ID><cbc:TenderResultCode>{code}"
        f"</cbc:TenderResultCode>{refs}{stats}<efac:TenderLot><cbc:ID>{lot}</cbc:ID>"
        "</efac:TenderLot></efac:LotResult>"
    )


def ef_tender(ten_id: str, party: str, value: str | None, currency: str = "EUR") -> str:
    amount = (
        "<cac:LegalMonetaryTotal>"
        f"<cbc:PayableAmount currencyID='{currency}'>{value}</cbc:PayableAmount>"
        "</cac:LegalMonetaryTotal>"
        if value is not None
        else ""
    )
    return (
        f"<efac:LotTender><cbc:ID>{ten_id}</cbc:ID>{amount}"
        f"<efac:TenderingParty><cbc:ID>{party}</cbc:ID></efac:TenderingParty></efac:LotTender>"
    )


def ef_party(party: str, orgs: list[str]) -> str:
    return (
        f"<efac:TenderingParty><cbc:ID>{party}</cbc:ID>"
        + "".join(f"<efac:Tenderer><cbc:ID>{o}</cbc:ID></efac:Tenderer>" for o in orgs)
        + "</efac:TenderingParty>"
    )


def ef_contract(
    con_id: str, tender: str, issue: str | None = "2024-01-05+01:00", funding: str = ""
) -> str:
    return (
        f"<efac:SettledContract><cbc:ID>{con_id}</cbc:ID>"
        + (f"<cbc:IssueDate>{issue}</cbc:IssueDate>" if issue else "")
        + f"<efac:ContractReference><cbc:ID>REF-{con_id}</cbc:ID></efac:ContractReference>"
        f"<efac:LotTender><cbc:ID>{tender}</cbc:ID></efac:LotTender>{funding}"
        "</efac:SettledContract>"
    )


def ef_lot(lot: str, eu_funded: str | None = "no-eu-funds", funding: str = "") -> str:
    ext = (
        "<ext:UBLExtensions><ext:UBLExtension><ext:ExtensionContent><efext:EformsExtension>"
        f"{funding}</efext:EformsExtension></ext:ExtensionContent></ext:UBLExtension>"
        "</ext:UBLExtensions>"
        if funding
        else ""
    )
    flag = (
        f"<cbc:FundingProgramCode listName='eu-funded'>{eu_funded}</cbc:FundingProgramCode>"
        if eu_funded
        else ""
    )
    return (
        f"<cac:ProcurementProjectLot><cbc:ID schemeName='Lot'>{lot}</cbc:ID>"
        f"<cac:TenderingTerms>{ext}{flag}</cac:TenderingTerms>"
        f"<cac:ProcurementProject><cbc:Name>Lot {lot}</cbc:Name></cac:ProcurementProject>"
        "</cac:ProcurementProjectLot>"
    )


def eforms(
    *,
    results: str = "",
    tenders: str = "",
    contracts: str = "",
    parties: str = "",
    orgs: str = "",
    lots: str = "",
    root: str = "ContractAwardNotice",
    subtype: str | None = "29",
    sdk: str | None = "eforms-sdk-1.7",
    notice_id: str | None = "aaaa-0001",
    version: str = "01",
    issue: str = "2024-01-10+01:00",
    buyer: str = "ORG-0001",
    total: str = "",
) -> str:
    sub = (
        f"<efac:NoticeSubType><cbc:SubTypeCode>{subtype}</cbc:SubTypeCode></efac:NoticeSubType>"
        if subtype
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<{root} xmlns="urn:oasis:names:specification:ubl:schema:xsd:{root}-2" {EF_NS}>'
        "<ext:UBLExtensions><ext:UBLExtension><ext:ExtensionContent><efext:EformsExtension>"
        f"<efac:NoticeResult>{total}{results}{tenders}{contracts}{parties}</efac:NoticeResult>"
        f"{sub}<efac:Organizations>{orgs}</efac:Organizations>"
        "</efext:EformsExtension></ext:ExtensionContent></ext:UBLExtension></ext:UBLExtensions>"
        + (f"<cbc:CustomizationID>{sdk}</cbc:CustomizationID>" if sdk else "")
        + (f"<cbc:ID schemeName='notice-id'>{notice_id}</cbc:ID>" if notice_id else "")
        + f"<cbc:IssueDate>{issue}</cbc:IssueDate><cbc:VersionID>{version}</cbc:VersionID>"
        "<cbc:NoticeTypeCode>can-standard</cbc:NoticeTypeCode>"
        "<cbc:NoticeLanguageCode>ENG</cbc:NoticeLanguageCode>"
        "<cac:ContractingParty><cac:Party><cac:PartyIdentification>"
        f"<cbc:ID>{buyer}</cbc:ID></cac:PartyIdentification></cac:Party></cac:ContractingParty>"
        "<cac:TenderingProcess><cbc:ProcedureCode>open</cbc:ProcedureCode></cac:TenderingProcess>"
        "<cac:ProcurementProject><cbc:Name>Test</cbc:Name><cac:MainCommodityClassification>"
        "<cbc:ItemClassificationCode>72000000</cbc:ItemClassificationCode>"
        "</cac:MainCommodityClassification></cac:ProcurementProject>"
        f"{lots}</{root}>"
    )


def simple_eforms(**kw: Any) -> str:
    """One lot won by one tenderer for EUR 5000 (overridable pieces)."""
    defaults: dict[str, Any] = {
        "results": ef_result("RES-0001", "LOT-0001", "selec-w", ["TEN-0001"], "4"),
        "tenders": ef_tender("TEN-0001", "TPA-0001", "5000"),
        "contracts": ef_contract("CON-0001", "TEN-0001"),
        "parties": ef_party("TPA-0001", ["ORG-0002"]),
        "orgs": ef_org("ORG-0001", "Buyer Body", None)
        + ef_org("ORG-0002", "Winner GmbH", "DE1", "DEU"),
        "lots": ef_lot("LOT-0001"),
    }
    defaults.update(kw)
    return eforms(**defaults)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    d = tmp_path / "raw"
    (d / "ted").mkdir(parents=True)
    return d


@pytest.fixture
def con(tmp_path: Path):
    c = duckdb.connect(str(tmp_path / "build.duckdb"))
    ensure_schemas(c)
    create_table(c, ECB_RATES, replace=True)
    load_ecb_rates(c, ECB_RATES.qualified)
    yield c
    c.close()


def write(raw_dir: Path, name: str, text: str) -> Path:
    path = raw_dir / "ted" / name
    path.write_text(text, encoding="utf-8")
    return path


def ingest(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> IngestReport:
    return ingest_ted(con, raw_dir, log=lambda _m: None)


def build(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> dict[str, tuple[int, int]]:
    ingest(con, raw_dir)
    return build_stg_ted(con)


def rows(con: duckdb.DuckDBPyConnection, sql: str, *params: object) -> list[dict[str, Any]]:
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def manifest(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, Any]:
    found = rows(
        con, f"SELECT * FROM {FILE_MANIFEST.qualified} WHERE source_file = ?", f"ted/{name}"
    )
    assert found, f"no manifest row for {name}"
    return found[0]


def awards(con: duckdb.DuckDBPyConnection, where: str = "true") -> list[dict[str, Any]]:
    return rows(
        con, f"SELECT * FROM {STG_TED_AWARDS.qualified} WHERE {where} ORDER BY award_row_id"
    )


def stg_reasons(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [
        r["reason"]
        for r in rows(
            con,
            f"SELECT reason FROM {STG_QUARANTINE.qualified} WHERE staging_table = ? "
            "ORDER BY source_file, source_row",
            table,
        )
    ]


def contracts(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return rows(con, f"SELECT * FROM ({CONTRACTS_SQL}) ORDER BY contract_award_id")


# --------------------------------------------------------------------------- R2.0.9


def test_only_the_original_form_is_read_translations_are_skipped(con, raw_dir: Path) -> None:
    # translations first and with different values: reading them would change the totals
    original = r209_form(
        [
            r209_award(
                1,
                [r209_contractor("Lumenwave Systems Ltd", "09990003")],
                value="2875000.00",
                currency="GBP",
            )
        ],
        descrs="<OBJECT_DESCR ITEM='1'><EU_PROGR_RELATED><P>ERDF operation HBT-ERDF-0001</P>"
        "</EU_PROGR_RELATED></OBJECT_DESCR>",
    )
    translation_fr = r209_form(
        [r209_award(1, [r209_contractor("Lumenwave Systems Ltd")], value="1.00", currency="EUR")],
        category="TRANSLATION",
        lg="FR",
        descrs="<OBJECT_DESCR ITEM='1'><EU_PROGR_RELATED><P>Opération FEDER</P>"
        "</EU_PROGR_RELATED></OBJECT_DESCR>",
    )
    translation_de = translation_fr.replace("LG='FR'", "LG='DE'")
    # FORM_SECTION may also hold a NOTICE_UUID element: not a form, not a translation
    uuid = "<NOTICE_UUID>0c7cbbc2-0000-4000-8000-000000000001</NOTICE_UUID>"
    write(raw_dir, "n.xml", r209([uuid, translation_fr, original, translation_de]))
    assert build(con, raw_dir) == {"stg_ted_notices": (1, 0), "stg_ted_awards": (1, 0)}
    m = manifest(con, "n.xml")
    assert (m["status"], m["rows_in"], m["rows_loaded"]) == ("loaded", 1, 1)
    assert "2 translated form(s) skipped" in m["message"]
    (row,) = awards(con)
    assert (row["value_original"], row["currency_original"]) == (Decimal("2875000"), "GBP")
    assert row["eu_programme"] == "ERDF operation HBT-ERDF-0001"
    assert row["source_locator"].startswith(
        "/TED_EXPORT/FORM_SECTION/F03_2014[@CATEGORY='ORIGINAL']"
    )
    notice = rows(con, f"SELECT * FROM {RAW_NOTICES.qualified}")[0]
    assert (notice["translations_skipped"], notice["original_language"]) == ("2", "EN")


def test_file_without_original_form_fails_alone(con, raw_dir: Path) -> None:
    only_translation = r209_form(
        [r209_award(1, [r209_contractor("A Ltd")])], category="TRANSLATION"
    )
    write(raw_dir, "a.xml", r209([only_translation]))
    write(
        raw_dir,
        "b.xml",
        r209([r209_form([r209_award(1, [r209_contractor("B Ltd")])])], doc_id="000002-2024"),
    )
    build(con, raw_dir)
    m = manifest(con, "a.xml")
    assert m["status"] == "failed"
    assert "no form with CATEGORY='ORIGINAL'" in m["message"]
    assert manifest(con, "b.xml")["status"] == "loaded"


def test_unknown_schema_versions_fail_alone_naming_namespace_and_version(
    con, raw_dir: Path
) -> None:
    good = r209([r209_form([r209_award(1, [r209_contractor("Good Ltd")])])])
    write(raw_dir, "good.xml", good)
    old_ns = "http://publications.europa.eu/TED_schema/Export"
    write(raw_dir, "r208.xml", r209([r209_form([])], ns=old_ns, version="R2.0.8.S02.E01"))
    write(
        raw_dir, "r210.xml", r209([r209_form([])], version="R2.1.0.S01.E01", doc_id="000003-2024")
    )
    write(raw_dir, "sdk2.xml", simple_eforms(sdk="eforms-sdk-2.0", notice_id="x-2"))
    write(raw_dir, "nosdk.xml", simple_eforms(sdk=None, notice_id="x-3"))
    write(raw_dir, "other.xml", '<?xml version="1.0"?><rss version="2.0"><channel/></rss>')
    build(con, raw_dir)
    assert manifest(con, "good.xml")["status"] == "loaded"
    assert awards(con)[0]["supplier_name"] == "Good Ltd"
    r208 = manifest(con, "r208.xml")
    assert r208["status"] == "failed"
    assert old_ns in r208["message"] and "R2.0.8.S02.E01" in r208["message"]
    r210 = manifest(con, "r210.xml")
    assert r210["status"] == "failed" and "R2.1.0.S01.E01" in r210["message"]
    sdk2 = manifest(con, "sdk2.xml")
    assert sdk2["status"] == "failed" and "eforms-sdk-2.0" in sdk2["message"]
    assert "CustomizationID is missing" in manifest(con, "nosdk.xml")["message"]
    other = manifest(con, "other.xml")
    assert other["status"] == "failed" and "not a TED notice: root element rss" in other["message"]
    assert con.execute(f"SELECT count(*) FROM {RAW_NOTICES.qualified}").fetchone() == (1,)
    q = rows(con, f"SELECT source_file, reason FROM {QUARANTINE.qualified} ORDER BY 1")
    assert [r["source_file"] for r in q] == [
        "ted/nosdk.xml",
        "ted/other.xml",
        "ted/r208.xml",
        "ted/r210.xml",
        "ted/sdk2.xml",
    ]


def test_invalid_xml_fails_alone_with_its_line(con, raw_dir: Path) -> None:
    text = r209([r209_form([r209_award(1, [r209_contractor("A Ltd")])])])
    write(raw_dir, "truncated.xml", text[: len(text) // 2])
    write(raw_dir, "mismatched.xml", '<?xml version="1.0"?>\n<TED_EXPORT>\n<A></B></TED_EXPORT>')
    write(raw_dir, "ok.xml", simple_eforms())
    build(con, raw_dir)
    for name in ("truncated.xml", "mismatched.xml"):
        m = manifest(con, name)
        assert m["status"] == "failed", name
        assert m["message"].startswith("invalid XML at line"), m["message"]
    assert "line 3" in manifest(con, "mismatched.xml")["message"]
    assert manifest(con, "ok.xml")["status"] == "loaded"
    assert [a["supplier_name"] for a in awards(con)] == ["Winner GmbH"]


def test_non_award_notices_are_skipped_as_empty_not_failed(con, raw_dir: Path) -> None:
    write(raw_dir, "cn.xml", eforms(root="ContractNotice", subtype="16", lots=ef_lot("LOT-0001")))
    write(raw_dir, "pin.xml", eforms(root="PriorInformationNotice", subtype="4"))
    write(raw_dir, "modif.xml", simple_eforms(subtype="38", notice_id="m-1"))
    write(raw_dir, "nosub.xml", simple_eforms(subtype=None, notice_id="m-2"))
    write(
        raw_dir,
        "f02.xml",
        r209(
            [r209_form([], form="F02_2014")],
            doc_type=("3", "Contract notice"),
            doc_id="000009-2024",
        ),
    )
    write(
        raw_dir,
        "f21pin.xml",
        r209([r209_form([], form="F21_2014", notice_type="PRI_ONLY")], doc_id="000010-2024"),
    )
    build(con, raw_dir)
    for name, what in (
        ("cn.xml", "eForms ContractNotice (subtype 16"),
        ("pin.xml", "eForms PriorInformationNotice (subtype 4"),
        ("modif.xml", "ContractAwardNotice (subtype 38"),
        ("nosub.xml", "subtype missing"),
        ("f02.xml", "TED R2.0.9 F02_2014 (Contract notice)"),
        ("f21pin.xml", "F21_2014"),
    ):
        m = manifest(con, name)
        assert (m["status"], m["rows_in"], m["rows_quarantined"]) == ("empty", 0, 0), name
        assert m["message"].startswith("not an award notice") and what in m["message"], m["message"]
    assert con.execute(f"SELECT count(*) FROM {RAW_NOTICES.qualified}").fetchone() == (0,)


def test_legacy_award_forms_f06_f15_f21_f25_are_read(con, raw_dir: Path) -> None:
    a = [r209_award(1, [r209_contractor("Contractor Ltd")])]
    write(raw_dir, "f06.xml", r209([r209_form(a, form="F06_2014")], doc_id="000011-2024"))
    veat = "<DIRECTIVE_2014_24_EU><PT_AWARD_CONTRACT_WITHOUT_CALL/></DIRECTIVE_2014_24_EU>"
    write(
        raw_dir,
        "f15.xml",
        r209([r209_form(a, form="F15_2014", procedure=veat)], doc_id="000012-2024"),
    )
    write(
        raw_dir,
        "f21.xml",
        r209(
            [
                r209_form(
                    a,
                    form="F21_2014",
                    notice_type="AWARD_CONTRACT",
                    procedure="<PT_INVOLVING_NEGOTIATION/>",
                )
            ],
            doc_id="000013-2024",
        ),
    )
    write(
        raw_dir,
        "f23.xml",
        r209(
            [r209_form(a, form="F23_2014", notice_type="CONCESSION_AWARD_CONTRACT")],
            doc_id="000014-2024",
        ),
    )
    write(
        raw_dir,
        "f25.xml",
        r209(
            [
                r209_form(
                    a, form="F25_2014", procedure="<PT_AWARD_CONTRACT_WITH_PRIOR_PUBLICATION/>"
                )
            ],
            doc_id="000015-2024",
        ),
    )
    assert build(con, raw_dir) == {"stg_ted_notices": (5, 0), "stg_ted_awards": (5, 0)}
    procedures = dict(
        con.execute(
            f"SELECT form, procedure_type FROM {STG_TED_NOTICES.qualified} ORDER BY form"
        ).fetchall()
    )
    # R2.0.9 procedure elements mapped to eForms BT-105 codes as the OP-TED converter does
    assert procedures == {
        "F06_2014": "open",
        "F15_2014": "neg-wo-call",
        "F21_2014": "involving negotiation",
        "F23_2014": "open",
        "F25_2014": "neg-w-call",
    }


def test_awards_contractors_groups_and_unawarded_lots(con, raw_dir: Path) -> None:
    group = [r209_contractor("Alpha SA", country="FR"), r209_contractor("Beta SA", country="FR")]
    write(
        raw_dir,
        "n.xml",
        r209(
            [
                r209_form(
                    [
                        r209_award(1, group, value="4625137.40", contract_no="C-1", lot_no="1"),
                        r209_award(2, [], contract_no="C-2", lot_no="2"),
                        # two awards sharing a contract number keep distinct award ids
                        r209_award(3, [r209_contractor("Gamma")], value="10", contract_no="C-3"),
                        r209_award(4, [r209_contractor("Delta")], value="20", contract_no="C-3"),
                    ],
                    descrs="<OBJECT_DESCR ITEM='1'><LOT_NO>1</LOT_NO><EU_PROGR_RELATED><P>LIFE</P>"
                    "</EU_PROGR_RELATED></OBJECT_DESCR><OBJECT_DESCR ITEM='2'><LOT_NO>2</LOT_NO>"
                    "<NO_EU_PROGR_RELATED/></OBJECT_DESCR>",
                )
            ]
        ),
    )
    assert build(con, raw_dir)["stg_ted_awards"] == (5, 0)
    got = {(r["award_id"], r["winner_index"]): r for r in awards(con)}
    assert set(got) == {("C-1", 1), ("C-1", 2), ("C-2", None), ("C-3 [3]", 1), ("C-3 [4]", 1)}
    alpha, beta = got[("C-1", 1)], got[("C-1", 2)]
    # a group's members each carry the award value (not split); totals count it once
    assert alpha["value_original"] == beta["value_original"] == Decimal("4625137.40")
    assert (alpha["awarded_to_group"], alpha["winners_in_award"]) == (True, 2)
    assert alpha["eu_funded"] is True and alpha["eu_programme"] == "LIFE"
    lot2 = got[("C-2", None)]
    assert (lot2["has_winner"], lot2["award_status"], lot2["non_award_reason"]) == (
        False,
        "not awarded",
        "PROCUREMENT_UNSUCCESSFUL",
    )
    assert lot2["supplier_org_ref"] is None and lot2["eu_funded"] is False
    # lot 3/4 match no OBJECT_DESCR and the two lots differ: EU funding unknown, not guessed
    assert got[("C-3 [3]", 1)]["eu_funded"] is None
    # only awards with a winner become contracts: one per group member
    c = contracts(con)
    assert sorted(r["supplier_name"] for r in c) == ["Alpha SA", "Beta SA", "Delta", "Gamma"]
    assert len({r["contract_award_id"] for r in c}) == 4


def test_values_currencies_and_their_quarantine(con, raw_dir: Path) -> None:
    cons = [r209_contractor("Supplier Ltd")]
    write(
        raw_dir,
        "n.xml",
        r209(
            [
                r209_form(
                    [
                        r209_award(1, cons, value="1000.50", currency="gbp"),  # lower-case
                        r209_award(2, cons, value="2000", currency=None),  # no currency
                        r209_award(3, cons, value="lots", currency="EUR"),  # unparseable
                        r209_award(4, cons, value="-5", currency="EUR"),  # negative
                        r209_award(5, cons, value="10", currency="POUNDS"),  # invalid
                        r209_award(6, cons, value="10", currency="XYZ"),  # no ECB rate
                        # only a range: no value, the range is kept
                        r209_award(
                            7,
                            cons,
                            value=None,
                            extra_values=(
                                "<VAL_RANGE_TOTAL CURRENCY='EUR'><LOW>100</LOW><HIGH>200</HIGH>"
                                "</VAL_RANGE_TOTAL>"
                            ),
                        ),
                        r209_award(8, cons, value="10", tenders="many"),
                        r209_award(9, cons, value="10", concluded="31/02/2024"),
                        # no conclusion date: EUR at the dispatch date
                        r209_award(10, cons, value="300", currency="USD", concluded=None),
                    ],
                    dispatch="2024-03-01",
                )
            ]
        ),
    )
    counts = build(con, raw_dir)
    assert counts["stg_ted_awards"] == (3, 7)
    assert stg_reasons(con, "stg_ted_awards") == [
        "award value without currency: 2000",
        "unparseable or out-of-range award value: lots",
        "negative award value: -5",
        "invalid currency: POUNDS",
        "cannot convert to EUR: no ECB rate for XYZ (XYZ on 2024-02-01)",
        "unparseable number of tenders received: many",
        "unparseable contract conclusion date: 31/02/2024",
    ]
    got = {r["award_item"]: r for r in awards(con)}
    assert (got["1"]["value_original"], got["1"]["currency_original"]) == (
        Decimal("1000.50"),
        "GBP",
    )
    assert got["1"]["fx_date"] == dt.date(2024, 2, 1)
    assert got["1"]["fx_date_basis"] == "contract conclusion date"
    assert got["7"]["value_original"] is None and got["7"]["value_eur"] is None
    assert (got["7"]["value_range_low"], got["7"]["value_range_high"]) == (
        Decimal(100),
        Decimal(200),
    )
    assert got["10"]["fx_date"] == dt.date(2024, 3, 1)
    assert got["10"]["fx_date_basis"] == "notice dispatch date"
    # EUR conversion independently with currencyconverter (last known rate, as the pipeline)
    cc = CurrencyConverter(
        fallback_on_missing_rate=True, fallback_on_missing_rate_method="last_known"
    )
    for item, cur, day in (("1", "GBP", dt.date(2024, 2, 1)), ("10", "USD", dt.date(2024, 3, 1))):
        expected = Decimal(
            str(cc.convert(float(got[item]["value_original"]), cur, "EUR", date=day))
        )
        assert abs(got[item]["value_eur"] - expected) < Decimal("0.01")


def test_html_entities_and_organisation_references(con, raw_dir: Path) -> None:
    write(
        raw_dir,
        "n.xml",
        r209(
            [
                r209_form(
                    [
                        r209_award(1, [r209_contractor("Smith &amp;amp; Sons Ltd", "641132")]),
                        r209_award(
                            2, [r209_contractor("Manndalen Maskin AS", "897 935 082", "NO")]
                        ),
                        r209_award(3, [r209_contractor("Lumenwave", "gb-coh-9990003", "UK")]),
                        r209_award(4, [r209_contractor("Roma Srl", "03629550124", "IT")]),
                        r209_award(
                            5, [r209_contractor("Lorenza Cinquepalmi", "CNQLNZ75C66L682L", "IT")]
                        ),
                        r209_award(6, [r209_contractor("Eiffage", "39876221100298", "FR")]),
                        r209_award(7, [r209_contractor("PwC UK LLP", "ABCDEFGH", "UK")]),
                    ],
                    buyer="Caf&amp;eacute; Council",
                    buyer_id="940 363 586",
                    buyer_country="NO",
                )
            ]
        ),
    )
    build(con, raw_dir)
    (notice,) = rows(con, f"SELECT * FROM {STG_TED_NOTICES.qualified}")
    assert notice["buyer_name"] == "Café Council"
    assert (notice["buyer_org_ref"], notice["buyer_ref_basis"]) == (
        "NO-BRC-940363586",
        "Norwegian organisation number",
    )
    got = {r["award_item"]: r for r in awards(con)}
    assert got["1"]["supplier_name"] == "Smith & Sons Ltd"
    assert (got["1"]["supplier_org_ref"], got["1"]["supplier_ref_basis"]) == (
        "GB-COH-00641132",
        "UK company number",
    )
    assert got["2"]["supplier_org_ref"] == "NO-BRC-897935082"
    assert (got["3"]["supplier_org_ref"], got["3"]["supplier_ref_basis"]) == (
        "GB-COH-09990003",
        "org-id as published",
    )
    # an Italian VAT number, a SIRET and a non-number: kept as published, name-based reference
    for item in ("4", "6", "7"):
        assert got[item]["supplier_ref_basis"] == "name"
        assert got[item]["supplier_org_ref"].startswith("FTNAME-")
        assert got[item]["supplier_published_id"] is not None
    # a natural person's tax code (it encodes a birth date) is not copied to staging
    assert got["5"]["supplier_published_id"] is None
    assert "personal tax code" in got["5"]["supplier_note"]
    assert got["5"]["supplier_name"] == "Lorenza Cinquepalmi"


def test_duplicate_notice_in_two_files_keeps_the_first(con, raw_dir: Path) -> None:
    text = r209([r209_form([r209_award(1, [r209_contractor("A Ltd")])])], doc_id="000077-2024")
    write(raw_dir, "a.xml", text)
    write(raw_dir, "b-copy.xml", text)
    counts = build(con, raw_dir)
    assert counts == {"stg_ted_notices": (1, 1), "stg_ted_awards": (1, 1)}
    reasons = stg_reasons(con, "stg_ted_notices") + stg_reasons(con, "stg_ted_awards")
    assert reasons == [
        "duplicate notice: 000077-2024 is also in ted/a.xml (that copy is kept)",
        "notice not staged: duplicate notice: 000077-2024 is also in ted/a.xml (that copy is kept)",
    ]


def test_changed_and_removed_files_leave_no_stale_rows(con, raw_dir: Path) -> None:
    path = write(raw_dir, "n.xml", r209([r209_form([r209_award(1, [r209_contractor("Old Ltd")])])]))
    build(con, raw_dir)
    path.write_text(
        r209(
            [r209_form([r209_award(1, [r209_contractor("New Ltd"), r209_contractor("Two Ltd")])])]
        ),
        encoding="utf-8",
    )
    build(con, raw_dir)
    assert [a["supplier_name"] for a in awards(con)] == ["New Ltd", "Two Ltd"]
    assert con.execute(f"SELECT count(*) FROM {RAW_NOTICES.qualified}").fetchone() == (1,)
    # a changed file that now fails keeps nothing of its previous version, in either table
    path.write_text("<broken", encoding="utf-8")
    build(con, raw_dir)
    for spec in (RAW_NOTICES, RAW_AWARDS):
        assert con.execute(f"SELECT count(*) FROM {spec.qualified}").fetchone() == (0,)
    path.unlink()
    write(raw_dir, "other.xml", simple_eforms())
    build(con, raw_dir)
    assert con.execute(f"SELECT count(*) FROM {FILE_MANIFEST.qualified}").fetchone() == (1,)


# --------------------------------------------------------------------------- eForms


def test_eforms_winners_values_and_tenders(con, raw_dir: Path) -> None:
    write(
        raw_dir,
        "can.xml",
        eforms(
            results=ef_result("RES-0001", "LOT-0001", "selec-w", ["TEN-0001", "TEN-0002"], "9"),
            tenders=ef_tender("TEN-0001", "TPA-0001", "2000000", "gbp")
            + ef_tender("TEN-0002", "TPA-0002", "1000000", "GBP"),
            contracts=ef_contract("CON-0001", "TEN-0001", "2020-02-19+01:00")
            + ef_contract("CON-0002", "TEN-0002", None),
            parties=ef_party("TPA-0001", ["ORG-0003", "ORG-0004"])
            + ef_party("TPA-0002", ["ORG-0005"]),
            orgs=ef_org("ORG-0001", "Wakefield Council", "123 456 789")
            + ef_org("ORG-0003", "Jacobs", "09990009")
            + ef_org("ORG-0004", "Partner &amp;amp; Co", None, "LUX")
            + ef_org("ORG-0005", "Phoenix", None),
            lots=ef_lot("LOT-0001"),
            issue="2020-03-10+01:00",
            notice_id="f4308a76",
            version="02",
        ),
    )
    assert build(con, raw_dir) == {"stg_ted_notices": (1, 0), "stg_ted_awards": (3, 0)}
    (notice,) = rows(con, f"SELECT * FROM {STG_TED_NOTICES.qualified}")
    assert notice["process_id"] == "f4308a76-02"
    assert notice["dispatch_date"] == dt.date(2020, 3, 10)
    # 9 digits in the UK: not a company number, so the buyer is keyed by name
    assert notice["buyer_ref_basis"] == "name" and notice["buyer_published_id"] == "123 456 789"
    got = {(r["award_id"], r["winner_index"]): r for r in awards(con)}
    assert set(got) == {
        ("LOT-0001/TEN-0001", 1),
        ("LOT-0001/TEN-0001", 2),
        ("LOT-0001/TEN-0002", 1),
    }
    jacobs = got[("LOT-0001/TEN-0001", 1)]
    assert (jacobs["supplier_org_ref"], jacobs["supplier_country"]) == ("GB-COH-09990009", "GB")
    assert (jacobs["value_original"], jacobs["currency_original"]) == (Decimal(2000000), "GBP")
    assert jacobs["award_date"] == dt.date(2020, 2, 19) and jacobs["number_of_tenders"] == 9
    assert jacobs["contract_no"] == "REF-CON-0001" and jacobs["awarded_to_group"] is True
    assert got[("LOT-0001/TEN-0001", 2)]["supplier_name"] == "Partner & Co"
    assert got[("LOT-0001/TEN-0001", 2)]["supplier_country"] == "LU"
    phoenix = got[("LOT-0001/TEN-0002", 1)]
    # no contract conclusion date: EUR at the notice dispatch date
    assert phoenix["award_date"] is None and phoenix["fx_date_basis"] == "notice dispatch date"
    assert phoenix["fx_date"] == dt.date(2020, 3, 10)
    assert sorted(r["award_date"] for r in contracts(con) if r["supplier_name"] == "Phoenix") == [
        dt.date(2020, 3, 10)
    ]


def test_eforms_results_without_winner_are_kept_but_make_no_contract(con, raw_dir: Path) -> None:
    write(
        raw_dir,
        "no_tenders.xml",
        eforms(
            results=ef_result("RES-0001", "LOT-0001", "clos-nw", [], "0")
            + ef_result("RES-0002", "LOT-0002", "open-nw", []),
            orgs=ef_org("ORG-0001", "Buyer"),
            lots=ef_lot("LOT-0001", "eu-funds") + ef_lot("LOT-0002", None),
        ),
    )
    assert build(con, raw_dir) == {"stg_ted_notices": (1, 0), "stg_ted_awards": (2, 0)}
    got = {r["award_id"]: r for r in awards(con)}
    assert got["LOT-0001"]["award_status"] == "not awarded"
    assert got["LOT-0001"]["number_of_tenders"] == 0 and got["LOT-0001"]["eu_funded"] is True
    assert got["LOT-0002"]["award_status"] == "open" and got["LOT-0002"]["eu_funded"] is None
    assert not any(r["has_winner"] for r in got.values())
    assert contracts(con) == []


def test_eforms_eu_funds_fields(con, raw_dir: Path) -> None:
    contract_funding = (
        "<efac:Funding><efbc:FinancingIdentifier>HBT-ERDF-0002</efbc:FinancingIdentifier>"
        "<cbc:FundingProgramCode listName='eu-programme'>ERDF_2021</cbc:FundingProgramCode>"
        "<cbc:Description>Estuary ERDF</cbc:Description></efac:Funding>"
    )
    lot_funding = (
        "<efac:Funding><efbc:FinancingIdentifier>LOT-FIN-9</efbc:FinancingIdentifier>"
        "<cbc:FundingProgramCode>LIFE_2021</cbc:FundingProgramCode>"
        "<cbc:Description>Lot details</cbc:Description></efac:Funding>"
    )
    write(
        raw_dir,
        "eu.xml",
        eforms(
            results=ef_result("RES-1", "LOT-1", "selec-w", ["TEN-1"])
            + ef_result("RES-2", "LOT-2", "selec-w", ["TEN-2"])
            + ef_result("RES-3", "LOT-3", "selec-w", ["TEN-3"]),
            tenders=ef_tender("TEN-1", "TPA-1", "10")
            + ef_tender("TEN-2", "TPA-1", "20")
            + ef_tender("TEN-3", "TPA-1", "30"),
            # contract 1 has its own EU funds (BT-5011/722/6110); contract 2 falls back to the lot
            contracts=ef_contract("CON-1", "TEN-1", funding=contract_funding)
            + ef_contract("CON-2", "TEN-2")
            + ef_contract("CON-3", "TEN-3"),
            parties=ef_party("TPA-1", ["ORG-2"]),
            orgs=ef_org("ORG-0001", "Buyer") + ef_org("ORG-2", "Winner"),
            lots=ef_lot("LOT-1", "eu-funds", lot_funding)
            + ef_lot("LOT-2", "eu-funds", lot_funding)
            + ef_lot("LOT-3", "no-eu-funds"),
        ),
    )
    build(con, raw_dir)
    got = {r["lot_no"]: r for r in awards(con)}
    one, two, three = got["LOT-1"], got["LOT-2"], got["LOT-3"]
    assert (one["eu_funds_programme"], one["eu_funds_financing_id"], one["eu_funds_details"]) == (
        "ERDF_2021",
        "HBT-ERDF-0002",
        "Estuary ERDF",
    )
    assert one["eu_programme"] == "ERDF_2021; HBT-ERDF-0002; Estuary ERDF" and one["eu_funded"]
    assert (two["eu_funds_programme"], two["eu_funds_financing_id"]) == ("LIFE_2021", "LOT-FIN-9")
    assert three["eu_funded"] is False and three["eu_programme"] is None
    c = {r["award_id"]: r for r in contracts(con)}
    assert c["LOT-1/TEN-1"]["eu_programme"] == "ERDF_2021; HBT-ERDF-0002; Estuary ERDF"


def test_eforms_broken_references_are_quarantined(con, raw_dir: Path) -> None:
    write(
        raw_dir,
        "broken.xml",
        eforms(
            results=ef_result("RES-1", "LOT-1", "selec-w", ["TEN-1"])
            + ef_result("RES-2", "LOT-2", "selec-w", ["TEN-404"])
            + ef_result("RES-3", "LOT-3", "selec-w", []),
            tenders=ef_tender("TEN-1", "TPA-1", "10"),
            parties=ef_party("TPA-1", ["ORG-404"]),
            orgs=ef_org("ORG-0001", "Buyer"),
            lots=ef_lot("LOT-1"),
        ),
    )
    write(raw_dir, "nobuyer.xml", simple_eforms(notice_id="nb-1", buyer="ORG-999"))
    counts = build(con, raw_dir)
    assert counts == {"stg_ted_notices": (1, 1), "stg_ted_awards": (0, 4)}
    assert stg_reasons(con, "stg_ted_awards") == [
        "winner not resolvable: organisation ORG-404 not in efac:Organizations",
        "winner not resolvable: LotTender TEN-404 is not in efac:NoticeResult",
        "winner not resolvable: winner chosen (selec-w) but no efac:LotTender referenced",
        "notice not staged: no buyer name or identifier: ORG-999",
    ]


# --------------------------------------------------------------------------- contracts, demo, GX


def test_contracts_sql_has_exactly_the_intermediate_columns(
    con, raw_dir: Path, monkeypatch
) -> None:
    shutil.copytree(DEMO, raw_dir / "ted", dirs_exist_ok=True)
    build(con, raw_dir)
    cur = con.execute(f"SELECT * FROM ({CONTRACTS_SQL}) LIMIT 0")
    assert [d[0] for d in cur.description or []] == ipa.CONTRACT_COLUMNS
    monkeypatch.setattr(ipa, "PROCUREMENT_SOURCES", (stg_ted_awards,))
    assert ipa.build_int_procurement_awards(con).rows == 2
    got = rows(con, f"SELECT * FROM {ipa.INT_PROCUREMENT_AWARDS.qualified} ORDER BY 1")
    assert sorted(r["contract_award_id"] for r in got) == [
        "ted:999101-2024:HCC-PROC-2024-017-C1:GB-COH-09990003",
        "ted:99990000-0000-4000-8000-000000000002-01:LOT-0001/TEN-0001:GB-COH-09990002",
    ]
    assert all(r["source_system"] == "ted" for r in got)


def test_demo_files_load_with_their_documented_contents(con, raw_dir: Path) -> None:
    shutil.copytree(DEMO, raw_dir / "ted", dirs_exist_ok=True)
    assert build(con, raw_dir) == {"stg_ted_notices": (2, 0), "stg_ted_awards": (3, 0)}
    notices = {
        r["schema_family"]: r for r in rows(con, f"SELECT * FROM {STG_TED_NOTICES.qualified}")
    }
    light, data = notices["TED R2.0.9"], notices["eForms"]
    assert (light["process_id"], light["buyer_name"], light["buyer_country"]) == (
        "999101-2024",
        "Harbourton City Council",
        "GB",
    )
    assert light["buyer_ref_basis"] == "name"  # the council published no national id
    assert (data["buyer_org_ref"], data["buyer_name"]) == (
        "GB-COH-09990001",
        "Harbourton Smart City Ltd",
    )
    got = {r["supplier_name"]: r for r in awards(con, "has_winner")}
    lumen, tide = got["Lumenwave Systems Ltd"], got["Tidewater Digital Ltd"]
    assert (lumen["supplier_org_ref"], lumen["number_of_tenders"]) == ("GB-COH-09990003", 1)
    assert (lumen["value_original"], lumen["currency_original"]) == (Decimal("2875000"), "GBP")
    assert lumen["award_date"] == dt.date(2024, 6, 14) and lumen["procedure_type"] == "open"
    assert lumen["eu_funded"] and lumen["eu_programme"] == "ERDF operation HBT-ERDF-0001"
    assert lumen["title"] == "Supply & installation of smart LED street lighting"
    assert (tide["supplier_org_ref"], tide["number_of_tenders"]) == ("GB-COH-09990002", 3)
    assert (tide["value_original"], tide["currency_original"]) == (Decimal("612500"), "GBP")
    assert tide["eu_funds_financing_id"] == "HBT-ERDF-0002" and tide["eu_funded"]
    assert tide["award_date"] == dt.date(2023, 1, 6)
    # data/raw/ted/README.md: EUR at the ECB rates of the conclusion dates (0.84205, 0.88475)
    assert (lumen["fx_rate"], round(lumen["value_eur"], 2)) == (
        Decimal("0.84205"),
        Decimal("3414286.56"),
    )
    assert (tide["fx_rate"], round(tide["value_eur"], 2)) == (
        Decimal("0.88475"),
        Decimal("692285.96"),
    )
    (lot2,) = awards(con, "NOT has_winner")
    assert (lot2["lot_no"], lot2["award_status"], lot2["number_of_tenders"]) == (
        "LOT-0002",
        "not awarded",
        0,
    )


def test_gx_suites_pass_on_demo_and_catch_broken_rows(con, raw_dir: Path) -> None:
    shutil.copytree(DEMO, raw_dir / "ted", dirs_exist_ok=True)
    build(con, raw_dir)
    for name, path in SUITES.items():
        outcome = run_suite(con, "staging", name, load_suite(path))
        assert not outcome.errors, outcome.error_summary()
        assert outcome.passed, [e.label for e in outcome.expectations if e.failed]
        assert not [e.label for e in outcome.expectations if e.failed]
    con.execute(
        f"UPDATE {STG_TED_AWARDS.qualified} SET value_original = -1, currency_original = 'gbp' "
        "WHERE supplier_name = 'Tidewater Digital Ltd'"
    )
    con.execute(
        f"UPDATE {STG_TED_AWARDS.qualified} SET supplier_org_ref = NULL WHERE has_winner AND number_of_tenders = 1"
    )
    outcome = run_suite(con, "staging", "stg_ted_awards", load_suite(SUITES["stg_ted_awards"]))
    assert not outcome.errors
    failed = {e.label: e.unexpected_count for e in outcome.critical_failures}
    assert len(failed) == 3, failed
    assert (
        failed["expect_column_values_to_match_regex(column=currency_original, regex='^[A-Z]{3}$')"]
        == 1
    )
    (negative,) = [n for label, n in failed.items() if "value_original < 0" in label]
    (winner,) = [
        n
        for label, n in failed.items()
        if "SELECT award_row_id, has_winner, supplier_org_ref" in label
    ]
    assert negative == winner == 1


def test_dagster_assets_materialize_with_their_checks(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(DEMO, raw / "ted")
    suites = tmp_path / "expectations"
    suites.mkdir()
    for path in SUITES.values():
        shutil.copy(path, suites)
    db = tmp_path / "build.duckdb"
    result = dg.materialize(
        [ref_ecb_rates, ted.raw_ted, stg_ted_awards.stg_ted, *build_gx_asset_checks(suites)],
        resources={
            "duckdb": DuckDBResource(database=str(db)),
            "fundtrace": FundtraceSettings(raw_dir=str(raw), marts_db=str(tmp_path / "m.duckdb")),
        },
    )
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 2 and all(e.passed for e in evaluations)
    c = duckdb.connect(str(db), read_only=True)
    try:
        assert c.execute(f"SELECT count(*) FROM {STG_TED_AWARDS.qualified}").fetchone() == (3,)
        assert c.execute(f"SELECT count(*) FROM {STG_TED_NOTICES.qualified}").fetchone() == (2,)
    finally:
        c.close()


# --------------------------------------------------------------------------- helpers


def test_read_notice_streams_translations_out(tmp_path: Path) -> None:
    forms = [
        r209_form([r209_award(1, [r209_contractor("X")])], category="TRANSLATION", lg=lg)
        for lg in ("BG", "CS", "DA", "DE")
    ]
    forms.insert(2, r209_form([r209_award(1, [r209_contractor("Original Ltd")])]))
    path = tmp_path / "n.xml"
    path.write_text(r209(forms), encoding="utf-8")
    parsed = read_notice(path)
    assert parsed.notice is not None and parsed.notice["translations_skipped"] == "4"
    assert [row["winner_name"] for row, _ in parsed.awards] == ["Original Ltd"]


@pytest.mark.parametrize(
    "text",
    [
        "Smith &amp; Sons",
        "D&amp;amp;B",
        "caf&eacute; &#233; &#xE9; &#XE9;",
        "&amp;lt; stays one level",
        "a &unknown; b",
        "&#38;&#38;",
        "Ferr&oacute;vial &quot;Ltd&quot; &apos;x&apos;&nbsp;",
        "plain",
        "",
    ],
)
def test_html_unescape_matches_python(text: str) -> None:
    assert html_unescape(text) == html.unescape(text)


def test_html_unescape_leaves_what_it_cannot_decode() -> None:
    assert html_unescape(None) is None
    assert html_unescape("x&#0;y") == "x&#0;y"  # not a character
    assert html_unescape("tail &amp") == "tail &amp"  # no closing ';'


def test_country_alpha3_to_alpha2() -> None:
    assert [
        country_iso2(x) for x in ("GBR", "fra", "XKX", "UK", "EL", "DE", "Germany", "ZZZ", None)
    ] == ["GB", "FR", "XK", "GB", "GR", "DE", "DE", None, None]
    # a bijection: no two alpha-3 codes share an alpha-2 code
    assert len(set(ALPHA3_TO_ALPHA2.values())) == len(ALPHA3_TO_ALPHA2)
