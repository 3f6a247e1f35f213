"""EU TED contract award notices: TED XML R2.0.9 (`TED_EXPORT`) and eForms UBL 2.3.

One file is one notice. The root element says which schema it is:

- `TED_EXPORT` in the R2.0.9 namespace: the form in `FORM_SECTION` with `CATEGORY="ORIGINAL"`
  is read; the machine translations next to it (up to 24) are skipped, and freed while the
  file is streamed, so memory follows the original form, not the file. Other children of
  FORM_SECTION (NOTICE_UUID) are ignored. Award forms: F03 (award), F06 (utilities award), F15
  (voluntary ex-ante transparency), F25 (concession award) and F21/F22/F23 when their
  `NOTICE/@TYPE` is `AWARD_CONTRACT` (`CONCESSION_AWARD_CONTRACT` for F23). Every award form
  shares `CONTRACTING_BODY`, `OBJECT_CONTRACT`, `PROCEDURE` and `AWARD_CONTRACT/AWARDED_CONTRACT`.
- eForms `ContractAwardNotice` (namespace `urn:oasis:names:specification:ubl:schema:xsd:
  ContractAwardNotice-2`, `cbc:CustomizationID` `eforms-sdk-1.x`), notice subtypes 29-37. Paths
  follow the eForms SDK `fields.json` (BT-500/501/514 organisations, OPT-300 buyer and tenderer
  references, OPT-320/310 result -> tender -> tendering party, BT-720 tender value, BT-161
  notice value, BT-759/760 received submissions, BT-60 EU funds, BT-5010/5011 financing ids,
  BT-7220/722 programme, BT-6140/6110 details, BT-105 procedure, BT-262 CPV, BT-05 dispatch,
  BT-145/1451 contract conclusion/decision dates, BT-150 contract id).

What happens to a file:

- an award notice loads one `raw_ted_notices` row and its award rows;
- another notice of a known schema (contract notice, PIN, eForms subtype 16...) is recorded as
  `empty` with a message saying what it is ("not an award notice"); nothing is loaded;
- invalid XML, an unknown schema or schema version (a namespace or `eforms-sdk-` version this
  parser does not know), an award notice without its notice id or without an ORIGINAL form
  fail that file alone with a message naming the problem.

Award rows (`raw_ted_awards`): one per award x winner. An award is an R2.0.9 `AWARD_CONTRACT`
(its contractors share its value) or, in eForms, a `LotResult` x winning `LotTender` (its
tenderers share that tender's BT-720 value). An award without a winner (R2.0.9
`NO_AWARDED_CONTRACT`, eForms `clos-nw`/`open-nw`) is one row with `has_winner` = 'false'.
Everything is copied as text; typing is `assets/staging/stg_ted_awards.py`'s job. Addresses,
e-mails and phone numbers are not copied (contractors can be natural persons).
"""

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from lxml import etree  # pyright: ignore[reportAttributeAccessIssue]  (no stubs)

from assets.common.tables import Column, TableSpec, create_table
from assets.raw.ingest import (
    PROVENANCE_COLUMNS,
    FileContext,
    FileRejected,
    IngestReport,
    ParseResult,
    RowWriter,
    ingest_folder,
    partition_files,
    raw_result,
)
from pipelines.resources import FundtraceSettings

SOURCE_SYSTEM = "ted"
FOLDER = "ted"
SUFFIXES = (".xml",)
PARSER_VERSION = "ted-1"

R209_NS = "http://publications.europa.eu/resource/schema/ted/R2.0.9/publication"
R209 = "TED R2.0.9"
EFORMS = "eForms"
UBL_NS_PREFIX = "urn:oasis:names:specification:ubl:schema:xsd:"
EFORMS_NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
    "ext": "urn:oasis:names:specification:ubl:schema:xsd:CommonExtensionComponents-2",
    "efac": "http://data.europa.eu/p27/eforms-ubl-extension-aggregate-components/1",
    "efbc": "http://data.europa.eu/p27/eforms-ubl-extension-basic-components/1",
    "efext": "http://data.europa.eu/p27/eforms-ubl-extensions/1",
}
EFORMS_ROOTS = ("ContractAwardNotice", "ContractNotice", "PriorInformationNotice")
EFORMS_VERSION_RE = re.compile(r"eforms-sdk-1\.\d+(\.\d+)?")
AWARD_SUBTYPES = tuple(str(n) for n in range(29, 38))
R209_AWARD_FORMS = ("F03", "F06", "F15", "F25")
R209_SOCIAL_FORMS = ("F21", "F22", "F23")  # PIN, CN or award: NOTICE/@TYPE says which
R209_SOCIAL_AWARD_TYPES = ("AWARD_CONTRACT", "CONCESSION_AWARD_CONTRACT")
_EXT = "ext:UBLExtensions/ext:UBLExtension/ext:ExtensionContent/efext:EformsExtension"

NOTICE_FIELDS: dict[str, str] = {
    "schema_family": "'TED R2.0.9' or 'eForms'.",
    "schema_version": "R2.0.9 TED_EXPORT/@VERSION, or eForms cbc:CustomizationID (eforms-sdk-1.x).",
    "form": "R2.0.9 form element of the ORIGINAL form (F03_2014...), or the eForms root element.",
    "notice_subtype": "eForms notice subtype (OPP-070, 29-37 for award notices); R2.0.9 TD_DOCUMENT_TYPE/@CODE.",
    "notice_type": "eForms cbc:NoticeTypeCode (BT-02); R2.0.9 TD_DOCUMENT_TYPE text.",
    "notice_id": "R2.0.9 TED_EXPORT/@DOC_ID (publication number, e.g. 015463-2021); eForms cbc:ID notice-id (BT-701).",
    "notice_version": "eForms cbc:VersionID (BT-757); empty for R2.0.9.",
    "ojs_number": "R2.0.9 NOTICE_DATA/NO_DOC_OJS (2021/S 009-015463); eForms efac:Publication/efbc:NoticePublicationID when present.",
    "contract_folder_id": "eForms cbc:ContractFolderID (procedure id).",
    "original_language": "Language of the ORIGINAL form (R2.0.9 @LG) or eForms cbc:NoticeLanguageCode.",
    "translations_skipped": "R2.0.9: number of translated forms next to the ORIGINAL one (not read).",
    "dispatch_date": "R2.0.9 COMPLEMENTARY_INFO/DATE_DISPATCH_NOTICE (else CODIF_DATA/DS_DATE_DISPATCH); eForms cbc:IssueDate (BT-05).",
    "publication_date": "R2.0.9 REF_OJS/DATE_PUB; eForms efac:Publication/efbc:PublicationDate.",
    "buyer_name": "R2.0.9 CONTRACTING_BODY/ADDRESS_CONTRACTING_BODY/OFFICIALNAME; eForms BT-500 of the buyer organisation (OPT-300-Procedure-Buyer).",
    "buyer_national_id": "R2.0.9 ADDRESS_CONTRACTING_BODY/NATIONALID; eForms BT-501 cac:PartyLegalEntity/cbc:CompanyID.",
    "buyer_country": "R2.0.9 ADDRESS_CONTRACTING_BODY/COUNTRY/@VALUE (alpha-2, UK for GB); eForms BT-514 (alpha-3).",
    "buyer_org_tech_id": "eForms technical id of the buyer organisation (ORG-0001).",
    "buyers_count": "Buyers named: 1 + R2.0.9 ADDRESS_CONTRACTING_BODY_ADDITIONAL, or eForms cac:ContractingParty count.",
    "title": "R2.0.9 OBJECT_CONTRACT/TITLE; eForms cac:ProcurementProject/cbc:Name (BT-21-Procedure).",
    "procedure_type": "R2.0.9 PROCEDURE PT_* element name (PT_OPEN...); eForms cbc:ProcedureCode (BT-105).",
    "main_cpv": "R2.0.9 OBJECT_CONTRACT/CPV_MAIN/CPV_CODE/@CODE; eForms BT-262-Procedure.",
    "contract_nature": "R2.0.9 TYPE_CONTRACT/@CTYPE; eForms cbc:ProcurementTypeCode.",
    "notice_value": "R2.0.9 OBJECT_CONTRACT/VAL_TOTAL; eForms efac:NoticeResult/cbc:TotalAmount (BT-161).",
    "notice_value_currency": "@CURRENCY / @currencyID of notice_value.",
    "award_rows": "Rows this notice wrote to raw.raw_ted_awards.",
}

AWARD_FIELDS: dict[str, str] = {
    "schema_family": "'TED R2.0.9' or 'eForms'.",
    "notice_id": "Notice id, as in raw.raw_ted_notices.",
    "notice_version": "eForms notice version, as in raw.raw_ted_notices.",
    "award_ref": "Award reference unique within the notice: CONTRACT_NO, else 'lot ' LOT_NO, else 'item ' ITEM (R2.0.9); lot id '/' tender id (eForms); ' [n]' added when two awards share one.",
    "award_item": "R2.0.9 AWARD_CONTRACT/@ITEM; eForms LotResult cbc:ID (RES-0001).",
    "contract_no": "R2.0.9 AWARD_CONTRACT/CONTRACT_NO; eForms efac:ContractReference/cbc:ID (BT-150).",
    "lot_no": "R2.0.9 AWARD_CONTRACT/LOT_NO; eForms LotResult efac:TenderLot/cbc:ID (BT-13713).",
    "award_title": "R2.0.9 AWARD_CONTRACT/TITLE; eForms contract cbc:Title (BT-721), else the lot title.",
    "award_status": "R2.0.9 AWARDED_CONTRACT or NO_AWARDED_CONTRACT; eForms cbc:TenderResultCode (BT-142: selec-w, clos-nw, open-nw).",
    "non_award_reason": "R2.0.9 NO_AWARDED_CONTRACT child (PROCUREMENT_UNSUCCESSFUL...); eForms efbc:DecisionReasonCode.",
    "has_winner": "'true' when the row names (or should name) a winner, 'false' for an award without winner.",
    "conclusion_date": "R2.0.9 DATE_CONCLUSION_CONTRACT; eForms contract cbc:IssueDate (BT-145).",
    "decision_date": "eForms contract cbc:AwardDate (BT-1451, winner decision date).",
    "tenders_received": "R2.0.9 TENDERS/NB_TENDERS_RECEIVED; eForms BT-759 where BT-760 is 'tenders'.",
    "value": "Award value: R2.0.9 AWARDED_CONTRACT/VALUES/VAL_TOTAL; eForms LotTender BT-720 cbc:PayableAmount.",
    "value_currency": "@CURRENCY / @currencyID of value.",
    "value_range_low": "R2.0.9 VAL_RANGE_TOTAL/LOW; eForms LotResult cbc:LowerTenderAmount (BT-710).",
    "value_range_high": "R2.0.9 VAL_RANGE_TOTAL/HIGH; eForms LotResult cbc:HigherTenderAmount (BT-711).",
    "value_range_currency": "Currency of the range.",
    "value_estimated": "R2.0.9 VAL_ESTIMATED_TOTAL; eForms framework maximum value (BT-709).",
    "value_estimated_currency": "Currency of value_estimated.",
    "tender_id": "eForms winning LotTender id (TEN-0001).",
    "tendering_party_id": "eForms tendering party id (TPA-0001).",
    "contract_id": "eForms SettledContract id (CON-0001).",
    "winners_in_award": "Contractors (R2.0.9) or tenderers of the winning tender (eForms) named for this award.",
    "winner_index": "1-based position of this winner within the award; empty without winner.",
    "awarded_to_group": "'true' for AWARDED_TO_GROUP / several tenderers, 'false' otherwise.",
    "winner_name": "R2.0.9 ADDRESS_CONTRACTOR/OFFICIALNAME; eForms BT-500 of the tenderer organisation.",
    "winner_national_id": "R2.0.9 ADDRESS_CONTRACTOR/NATIONALID; eForms BT-501 cbc:CompanyID.",
    "winner_country": "R2.0.9 COUNTRY/@VALUE (alpha-2); eForms BT-514 (alpha-3).",
    "winner_org_tech_id": "eForms technical id of the tenderer organisation (ORG-0004).",
    "winner_sme": "R2.0.9 SME / NO_SME ('true'/'false'); eForms BT-165 company size code.",
    "winner_problem": "Why the winner could not be read although the award has one (a broken eForms reference).",
    "eu_funds_flag": "R2.0.9 EU_PROGR_RELATED or NO_EU_PROGR_RELATED of the lot's OBJECT_DESCR; eForms BT-60 (eu-funds, no-eu-funds).",
    "eu_programme_text": "R2.0.9 EU_PROGR_RELATED text (its P elements).",
    "eu_funds_programme": "eForms EU funds programme: contract BT-722, else lot BT-7220.",
    "eu_funds_financing_id": "eForms EU funds financing identifier: contract BT-5011, else lot BT-5010.",
    "eu_funds_details": "eForms EU funds details: contract BT-6110, else lot BT-6140.",
    "eu_funds_basis": "Which lot description the EU-funds fields came from, or why none could be chosen.",
    "withheld_fields": "eForms efac:FieldsPrivacy codes of this result/tender/contract (fields whose publication is deferred).",
}

RAW_NOTICES = TableSpec(
    schema="raw",
    name="raw_ted_notices",
    grain="one TED contract award notice file (its ORIGINAL form, or the eForms notice)",
    description="Notice-level fields of TED R2.0.9 and eForms contract award notices from "
    "$FUNDTRACE_RAW_DIR/ted/, copied as text (buyer, procedure, CPV, dates, notice value). "
    "Notices that are not award notices are recorded in raw.raw_file_manifest, not here.",
    columns=(
        *(Column(name, "VARCHAR", desc) for name, desc in NOTICE_FIELDS.items()),
        *PROVENANCE_COLUMNS,
    ),
)  # fmt: skip

RAW_AWARDS = TableSpec(
    schema="raw",
    name="raw_ted_awards",
    grain="one award x winner of a TED award notice (R2.0.9 AWARD_CONTRACT x CONTRACTOR, eForms "
    "LotResult x winning LotTender x tenderer); an award without winner is one row with "
    "has_winner 'false'",
    description="Awards, values, numbers of tenders, winners and EU-funds fields of TED award "
    "notices, copied as text; source_locator is an XPath-like path to the element read.",
    columns=(
        *(Column(name, "VARCHAR", desc) for name, desc in AWARD_FIELDS.items()),
        *PROVENANCE_COLUMNS,
    ),
)  # fmt: skip

RAW_TABLES = (RAW_NOTICES, RAW_AWARDS)


@dataclass
class ParsedNotice:
    """What one file holds: an award notice (notice + award rows) or a skip message."""

    notice: dict[str, str | None] | None
    awards: list[tuple[dict[str, str | None], str]] = field(default_factory=list)
    locator: str = "/"
    skipped: str | None = None
    encoding: str | None = None
    note: str | None = None


# ---------------------------------------------------------------- small XML helpers


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text or None


def _text(elem: Any) -> str | None:
    """All text below `elem`, whitespace collapsed; paragraphs (R2.0.9 P) joined by a space."""
    if elem is None:
        return None
    return _clean(" ".join(t for t in elem.itertext()))


def _attr(elem: Any, name: str) -> str | None:
    return None if elem is None else _clean(elem.get(name))


def _local(elem: Any) -> str:
    return etree.QName(elem).localname


def _join(values: list[str | None]) -> str | None:
    seen: list[str] = []
    for v in values:
        if v and v not in seen:
            seen.append(v)
    return "; ".join(seen) or None


def _secure_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _root_info(path: Path) -> tuple[str, str, dict[str, str]]:
    """(namespace, local name, attributes) of the root element, reading only the file's start."""
    try:
        for _, elem in etree.iterparse(
            str(path), events=("start",), resolve_entities=False, no_network=True
        ):
            q = etree.QName(elem)
            return q.namespace or "", q.localname, dict(elem.attrib)
    except etree.XMLSyntaxError as exc:
        raise _xml_error(exc) from exc
    raise FileRejected("invalid XML: no root element")


def _check_well_formed(path: Path) -> None:
    """Stream the whole file (elements freed as they close) so that a malformed file is
    reported as invalid XML before its schema is judged."""
    try:
        for _, elem in etree.iterparse(
            str(path), events=("end",), resolve_entities=False, no_network=True
        ):
            elem.clear()
    except etree.XMLSyntaxError as exc:
        raise _xml_error(exc) from exc


def _xml_error(exc: etree.XMLSyntaxError) -> FileRejected:
    line = exc.lineno or 0
    msg = " ".join(str(exc.msg if hasattr(exc, "msg") else exc).split())
    return FileRejected(f"invalid XML at line {line}: {msg}", locator=f"line {line}")


# ---------------------------------------------------------------- R2.0.9


def _q(path: str) -> str:
    """'A/B' -> '{ns}A/{ns}B' for ElementPath in the R2.0.9 namespace."""
    return "/".join(
        s if s in (".", "..", "") or s.startswith("@") else f"{{{R209_NS}}}{s}"
        for s in path.split("/")
    )


def _r_find(elem: Any, path: str) -> Any:
    return None if elem is None else elem.find(_q(path))


def _r_text(elem: Any, path: str) -> str | None:
    return _text(_r_find(elem, path))


def _read_r209(path: Path, version: str | None) -> ParsedNotice:
    form_section = f"{{{R209_NS}}}FORM_SECTION"
    originals: list[Any] = []
    others: list[str] = []
    try:
        context = etree.iterparse(
            str(path), events=("end",), resolve_entities=False, no_network=True, huge_tree=False
        )
        root = None
        for _, elem in context:
            parent = elem.getparent()
            if parent is None:
                root = elem
                continue
            if parent.tag == form_section:
                category = elem.get("CATEGORY")
                if category == "ORIGINAL":
                    originals.append(elem)
                elif category is not None:  # a translation: never read, so free it now
                    others.append(_local(elem))
                    elem.clear()
                    parent.remove(elem)
            elif _local(elem) == "TRANSLATION_SECTION":
                elem.clear()
    except etree.XMLSyntaxError as exc:
        raise _xml_error(exc) from exc
    if root is None:  # pragma: no cover - iterparse always ends on the root
        raise FileRejected("invalid XML: no root element")
    if not originals:
        raise FileRejected(
            "no form with CATEGORY='ORIGINAL' in FORM_SECTION "
            f"({len(others)} other form(s): {', '.join(sorted(set(others))) or 'none'})",
            locator="/TED_EXPORT/FORM_SECTION",
        )
    if len(originals) > 1:
        raise FileRejected(
            f"{len(originals)} forms with CATEGORY='ORIGINAL' in FORM_SECTION; expected one",
            locator="/TED_EXPORT/FORM_SECTION",
        )
    form = originals[0]
    form_name = _local(form)
    form_loc = f"/TED_EXPORT/FORM_SECTION/{form_name}[@CATEGORY='ORIGINAL']"
    codif = _r_find(root, "CODED_DATA_SECTION/CODIF_DATA")
    doc_type = _r_find(codif, "TD_DOCUMENT_TYPE")
    family = form_name.split("_")[0]
    notice_type_attr = _attr(_r_find(form, "NOTICE"), "TYPE")
    is_award = family in R209_AWARD_FORMS or (
        family in R209_SOCIAL_FORMS and notice_type_attr in R209_SOCIAL_AWARD_TYPES
    )
    if not is_award:
        what = _text(doc_type) or notice_type_attr or "unknown document type"
        return ParsedNotice(
            None,
            locator=form_loc,
            skipped=f"not an award notice: TED R2.0.9 {form_name} ({what}); nothing loaded",
        )
    notice_id = _clean(root.get("DOC_ID"))
    if not notice_id:
        raise FileRejected(
            "TED_EXPORT has no DOC_ID (notice publication number)", locator="/TED_EXPORT"
        )

    buyer = _r_find(form, "CONTRACTING_BODY/ADDRESS_CONTRACTING_BODY")
    procedure = _r_find(form, "PROCEDURE")
    pt = next(
        (
            _local(e)
            for e in (procedure.iter() if procedure is not None else [])
            if isinstance(e.tag, str) and _local(e).startswith("PT_")
        ),
        None,
    )
    obj = _r_find(form, "OBJECT_CONTRACT")
    notice_val = _r_find(obj, "VAL_TOTAL")
    notice: dict[str, str | None] = {
        "schema_family": R209,
        "schema_version": version,
        "form": form_name,
        "notice_subtype": _attr(doc_type, "CODE"),
        "notice_type": _text(doc_type),
        "notice_id": notice_id,
        "notice_version": None,
        "ojs_number": _r_text(root, "CODED_DATA_SECTION/NOTICE_DATA/NO_DOC_OJS"),
        "contract_folder_id": None,
        "original_language": _clean(form.get("LG"))
        or _r_text(root, "CODED_DATA_SECTION/NOTICE_DATA/LG_ORIG"),
        "translations_skipped": str(len(others)),
        "dispatch_date": _r_text(form, "COMPLEMENTARY_INFO/DATE_DISPATCH_NOTICE")
        or _r_text(codif, "DS_DATE_DISPATCH"),
        "publication_date": _r_text(root, "CODED_DATA_SECTION/REF_OJS/DATE_PUB"),
        "buyer_name": _r_text(buyer, "OFFICIALNAME"),
        "buyer_national_id": _r_text(buyer, "NATIONALID"),
        "buyer_country": _attr(_r_find(buyer, "COUNTRY"), "VALUE"),
        "buyer_org_tech_id": None,
        "buyers_count": str(
            (1 if buyer is not None else 0)
            + len(form.findall(_q("CONTRACTING_BODY/ADDRESS_CONTRACTING_BODY_ADDITIONAL")))
        ),
        "title": _r_text(obj, "TITLE"),
        "procedure_type": pt,
        "main_cpv": _attr(_r_find(obj, "CPV_MAIN/CPV_CODE"), "CODE"),
        "contract_nature": _attr(_r_find(obj, "TYPE_CONTRACT"), "CTYPE"),
        "notice_value": _text(notice_val),
        "notice_value_currency": _attr(notice_val, "CURRENCY"),
    }
    descrs = obj.findall(_q("OBJECT_DESCR")) if obj is not None else []
    awards: list[tuple[dict[str, str | None], str]] = []
    for i, ac in enumerate(form.findall(_q("AWARD_CONTRACT")), start=1):
        awards.extend(_r209_award_rows(ac, i, form_loc, notice, descrs))
    _make_award_refs_unique(awards)
    note = f"TED R2.0.9 {form_name} notice {notice_id}, original language " + (
        notice["original_language"] or "?"
    )
    if others:
        note += f"; {len(others)} translated form(s) skipped (only CATEGORY='ORIGINAL' is read)"
    return ParsedNotice(notice, awards, form_loc, note=note)


def _lot_key(text: str | None) -> str | None:
    return " ".join(text.lower().split()) if text else None


def _eu_funds_descr(lot_no: str | None, descrs: list[Any]) -> tuple[Any, str]:
    """The OBJECT_DESCR whose EU-funds fields apply to an award, and how it was chosen."""
    if not descrs:
        return None, "no OBJECT_DESCR in the notice"
    if len(descrs) == 1:
        return descrs[0], "the notice's only OBJECT_DESCR"
    key = _lot_key(lot_no)
    for d in descrs:
        if key and _lot_key(_r_text(d, "LOT_NO")) == key:
            return d, f"OBJECT_DESCR with LOT_NO {lot_no}"
    flags = {(_eu_flag(d), _r_text(d, "EU_PROGR_RELATED")) for d in descrs}
    if len(flags) == 1:
        return descrs[0], "all OBJECT_DESCR agree"
    return None, f"no OBJECT_DESCR with LOT_NO {lot_no or '(none)'} and the lots differ"


def _eu_flag(descr: Any) -> str | None:
    if descr is None:
        return None
    if _r_find(descr, "EU_PROGR_RELATED") is not None:
        return "EU_PROGR_RELATED"
    if _r_find(descr, "NO_EU_PROGR_RELATED") is not None:
        return "NO_EU_PROGR_RELATED"
    return None


def _r209_award_rows(
    ac: Any, index: int, form_loc: str, notice: dict[str, str | None], descrs: list[Any]
) -> Iterator[tuple[dict[str, str | None], str]]:
    loc = f"{form_loc}/AWARD_CONTRACT[{index}]"
    awarded = _r_find(ac, "AWARDED_CONTRACT")
    not_awarded = _r_find(ac, "NO_AWARDED_CONTRACT")
    item = _clean(ac.get("ITEM")) or str(index)
    contract_no = _r_text(ac, "CONTRACT_NO")
    lot_no = _r_text(ac, "LOT_NO")
    descr, basis = _eu_funds_descr(lot_no, descrs)
    values = _r_find(awarded, "VALUES")
    total = _r_find(values, "VAL_TOTAL")
    rng = _r_find(values, "VAL_RANGE_TOTAL")
    est = _r_find(values, "VAL_ESTIMATED_TOTAL")
    contractors = awarded.findall(".//" + _q("CONTRACTOR")) if awarded is not None else []
    group = None
    if _r_find(awarded, "CONTRACTORS/AWARDED_TO_GROUP") is not None:
        group = "true"
    elif _r_find(awarded, "CONTRACTORS/NO_AWARDED_TO_GROUP") is not None:
        group = "false"
    base: dict[str, str | None] = {
        "schema_family": R209,
        "notice_id": notice["notice_id"],
        "notice_version": None,
        "award_ref": contract_no
        or (f"lot {lot_no}" if lot_no and lot_no.upper() not in ("N/A", "-") else None)
        or f"item {item}",
        "award_item": item,
        "contract_no": contract_no,
        "lot_no": lot_no,
        "award_title": _r_text(ac, "TITLE"),
        "award_status": "AWARDED_CONTRACT"
        if awarded is not None
        else ("NO_AWARDED_CONTRACT" if not_awarded is not None else None),
        "non_award_reason": next((_local(c) for c in not_awarded if isinstance(c.tag, str)), None)
        if not_awarded is not None
        else None,
        "has_winner": "true" if contractors else "false",
        "conclusion_date": _r_text(awarded, "DATE_CONCLUSION_CONTRACT"),
        "decision_date": None,
        "tenders_received": _r_text(awarded, "TENDERS/NB_TENDERS_RECEIVED"),
        "value": _text(total),
        "value_currency": _attr(total, "CURRENCY"),
        "value_range_low": _r_text(rng, "LOW"),
        "value_range_high": _r_text(rng, "HIGH"),
        "value_range_currency": _attr(rng, "CURRENCY"),
        "value_estimated": _text(est),
        "value_estimated_currency": _attr(est, "CURRENCY"),
        "tender_id": None,
        "tendering_party_id": None,
        "contract_id": None,
        "winners_in_award": str(len(contractors)),
        "winner_index": None,
        "awarded_to_group": group,
        "winner_name": None,
        "winner_national_id": None,
        "winner_country": None,
        "winner_org_tech_id": None,
        "winner_sme": None,
        "winner_problem": None,
        "eu_funds_flag": _eu_flag(descr),
        "eu_programme_text": _r_text(descr, "EU_PROGR_RELATED"),
        "eu_funds_programme": None,
        "eu_funds_financing_id": None,
        "eu_funds_details": None,
        "eu_funds_basis": basis,
        "withheld_fields": None,
    }
    if not contractors:
        yield base, loc
        return
    for j, con in enumerate(contractors, start=1):
        address = _r_find(con, "ADDRESS_CONTRACTOR")
        sme = None
        if _r_find(con, "SME") is not None:
            sme = "true"
        elif _r_find(con, "NO_SME") is not None:
            sme = "false"
        row = dict(base)
        row.update(
            winner_index=str(j),
            winner_name=_r_text(address, "OFFICIALNAME"),
            winner_national_id=_r_text(address, "NATIONALID"),
            winner_country=_attr(_r_find(address, "COUNTRY"), "VALUE"),
            winner_sme=sme,
        )
        yield row, f"{loc}/AWARDED_CONTRACT/CONTRACTORS/CONTRACTOR[{j}]"


def _make_award_refs_unique(awards: list[tuple[dict[str, str | None], str]]) -> None:
    """Suffix ' [item]' to award refs that two different awards share."""
    owners: dict[str | None, set[str | None]] = {}
    for row, _ in awards:
        owners.setdefault(row["award_ref"], set()).add(row["award_item"])
    for row, _ in awards:
        if len(owners[row["award_ref"]]) > 1:
            row["award_ref"] = f"{row['award_ref']} [{row['award_item']}]"


# ---------------------------------------------------------------- eForms


def _x(elem: Any, path: str) -> list[Any]:
    return [] if elem is None else elem.xpath(path, namespaces=EFORMS_NS)


def _x1(elem: Any, path: str) -> Any:
    found = _x(elem, path)
    return found[0] if found else None


def _xt(elem: Any, path: str) -> str | None:
    found = _x1(elem, path)
    if found is None:
        return None
    return _clean(found) if isinstance(found, str) else _text(found)


def _lang_text(elem: Any, path: str, language: str | None) -> str | None:
    """Text of the element in the notice language when it is given in several."""
    found = _x(elem, path)
    for f in found:
        if language and f.get("languageID") == language:
            return _text(f)
    return _text(found[0]) if found else None


@dataclass
class _Org:
    name: str | None
    company_id: str | None
    country: str | None
    size: str | None


def _eforms_orgs(root: Any) -> dict[str, _Org]:
    orgs: dict[str, _Org] = {}
    for company in _x(root, f"{_EXT}/efac:Organizations/efac:Organization/efac:Company"):
        org_id = _xt(company, "cac:PartyIdentification/cbc:ID")
        if org_id and org_id not in orgs:
            orgs[org_id] = _Org(
                _xt(company, "cac:PartyName/cbc:Name"),
                _xt(company, "cac:PartyLegalEntity/cbc:CompanyID"),
                _xt(company, "cac:PostalAddress/cac:Country/cbc:IdentificationCode"),
                _xt(company, "efbc:CompanySizeCode"),
            )
    return orgs


def _funding(elem: Any, path: str) -> tuple[str | None, str | None, str | None]:
    """(programme, financing id, details) of the efac:Funding elements at `path`."""
    fundings = _x(elem, path)
    return (
        _join([_xt(f, "cbc:FundingProgramCode") for f in fundings]),
        _join([_xt(f, "efbc:FinancingIdentifier") for f in fundings]),
        _join([_xt(f, "cbc:Description") for f in fundings]),
    )


def _withheld(*elems: Any) -> str | None:
    return _join(
        [_xt(p, "efbc:FieldIdentifierCode") for e in elems for p in _x(e, "efac:FieldsPrivacy")]
    )


def _read_eforms(path: Path, root_name: str) -> ParsedNotice:
    try:
        tree = etree.parse(str(path), _secure_parser())
    except etree.XMLSyntaxError as exc:
        raise _xml_error(exc) from exc
    root = tree.getroot()
    encoding = tree.docinfo.encoding
    subtype = _xt(root, f"{_EXT}/efac:NoticeSubType/cbc:SubTypeCode")
    notice_type = _xt(root, "cbc:NoticeTypeCode")
    locator = f"/{root_name}"
    if root_name != "ContractAwardNotice" or subtype not in AWARD_SUBTYPES:
        what = f"eForms {root_name} (subtype {subtype or 'missing'}, {notice_type or 'no type'})"
        return ParsedNotice(
            None,
            locator=locator,
            skipped=f"not an award notice: {what}; award notices are subtypes 29-37",
            encoding=encoding,
        )
    version = _xt(root, "cbc:CustomizationID")
    if not version or not EFORMS_VERSION_RE.fullmatch(version):
        shown = f"'{version}'" if version else "missing"
        raise FileRejected(
            f"unsupported eForms schema version: cbc:CustomizationID is {shown} "
            "(read: eforms-sdk-1.x)",
            locator=f"{locator}/cbc:CustomizationID",
        )
    notice_id = _xt(root, "cbc:ID[@schemeName='notice-id']") or _xt(root, "cbc:ID")
    if not notice_id:
        raise FileRejected(
            "eForms award notice without a notice id (cbc:ID, BT-701)", locator=f"{locator}/cbc:ID"
        )
    language = _xt(root, "cbc:NoticeLanguageCode")
    orgs = _eforms_orgs(root)
    buyer_ids = [
        _xt(p, "cac:Party/cac:PartyIdentification/cbc:ID") for p in _x(root, "cac:ContractingParty")
    ]
    buyer_id = next((b for b in buyer_ids if b), None)
    buyer = orgs.get(buyer_id or "")
    result = _x1(root, f"{_EXT}/efac:NoticeResult")
    total = _x1(result, "cbc:TotalAmount")
    notice: dict[str, str | None] = {
        "schema_family": EFORMS,
        "schema_version": version,
        "form": root_name,
        "notice_subtype": subtype,
        "notice_type": notice_type,
        "notice_id": notice_id,
        "notice_version": _xt(root, "cbc:VersionID"),
        "ojs_number": _xt(root, f"{_EXT}/efac:Publication/efbc:NoticePublicationID"),
        "contract_folder_id": _xt(root, "cbc:ContractFolderID"),
        "original_language": language,
        "translations_skipped": None,
        "dispatch_date": _xt(root, "cbc:IssueDate"),
        "publication_date": _xt(root, f"{_EXT}/efac:Publication/efbc:PublicationDate"),
        "buyer_name": buyer.name if buyer else None,
        "buyer_national_id": buyer.company_id if buyer else None,
        "buyer_country": buyer.country if buyer else None,
        "buyer_org_tech_id": buyer_id,
        "buyers_count": str(len(buyer_ids)),
        "title": _lang_text(root, "cac:ProcurementProject/cbc:Name", language),
        "procedure_type": _xt(root, "cac:TenderingProcess/cbc:ProcedureCode"),
        "main_cpv": _xt(
            root,
            "cac:ProcurementProject/cac:MainCommodityClassification/cbc:ItemClassificationCode",
        ),
        "contract_nature": _xt(root, "cac:ProcurementProject/cbc:ProcurementTypeCode"),
        "notice_value": _text(total),
        "notice_value_currency": _attr(total, "currencyID"),
    }
    lots = {_xt(lot, "cbc:ID"): lot for lot in _x(root, "cac:ProcurementProjectLot")}
    tenders = {_xt(t, "cbc:ID"): t for t in _x(result, "efac:LotTender")}
    parties = {_xt(t, "cbc:ID"): t for t in _x(result, "efac:TenderingParty")}
    contracts = _x(result, "efac:SettledContract")
    awards: list[tuple[dict[str, str | None], str]] = []
    result_loc = f"{locator}/{_EXT}/efac:NoticeResult"
    for r_index, lot_result in enumerate(_x(result, "efac:LotResult"), start=1):
        awards.extend(
            _eforms_award_rows(
                lot_result,
                r_index,
                result_loc,
                notice,
                language,
                lots,
                tenders,
                parties,
                contracts,
                orgs,
            )
        )
    _make_award_refs_unique(awards)
    note = f"eForms {root_name} subtype {subtype} notice {notice_id}"
    if notice["notice_version"]:
        note += f" version {notice['notice_version']}"
    if not awards:
        note += "; no efac:LotResult"
    return ParsedNotice(notice, awards, locator, encoding=encoding, note=note)


def _eforms_award_rows(
    lot_result: Any,
    r_index: int,
    result_loc: str,
    notice: dict[str, str | None],
    language: str | None,
    lots: dict[str | None, Any],
    tenders: dict[str | None, Any],
    parties: dict[str | None, Any],
    contracts: list[Any],
    orgs: dict[str, _Org],
) -> Iterator[tuple[dict[str, str | None], str]]:
    result_id = _xt(lot_result, "cbc:ID")
    code = _xt(lot_result, "cbc:TenderResultCode")
    lot_id = _xt(lot_result, "efac:TenderLot/cbc:ID")
    lot = lots.get(lot_id)
    loc = f"{result_loc}/efac:LotResult[{r_index}]"
    stats = {
        _xt(s, "efbc:StatisticsCode"): _xt(s, "efbc:StatisticsNumeric")
        for s in _x(lot_result, "efac:ReceivedSubmissionsStatistics")
    }
    low = _x1(lot_result, "cbc:LowerTenderAmount")
    high = _x1(lot_result, "cbc:HigherTenderAmount")
    fmax = _x1(lot_result, "efac:FrameworkAgreementValues/cbc:MaximumValueAmount")
    lot_terms = _x1(lot, "cac:TenderingTerms")
    lot_funding = _funding(lot_terms, f"{_EXT}/efac:Funding")
    base: dict[str, str | None] = {
        "schema_family": EFORMS,
        "notice_id": notice["notice_id"],
        "notice_version": notice["notice_version"],
        "award_ref": lot_id or result_id or f"result {r_index}",
        "award_item": result_id,
        "contract_no": None,
        "lot_no": lot_id,
        "award_title": _lang_text(lot, "cac:ProcurementProject/cbc:Name", language),
        "award_status": code,
        "non_award_reason": _xt(lot_result, "efac:DecisionReason/efbc:DecisionReasonCode"),
        "has_winner": "false",
        "conclusion_date": None,
        "decision_date": None,
        "tenders_received": stats.get("tenders"),
        "value": None,
        "value_currency": None,
        "value_range_low": _text(low),
        "value_range_high": _text(high),
        "value_range_currency": _attr(low, "currencyID") or _attr(high, "currencyID"),
        "value_estimated": _text(fmax),
        "value_estimated_currency": _attr(fmax, "currencyID"),
        "tender_id": None,
        "tendering_party_id": None,
        "contract_id": None,
        "winners_in_award": "0",
        "winner_index": None,
        "awarded_to_group": None,
        "winner_name": None,
        "winner_national_id": None,
        "winner_country": None,
        "winner_org_tech_id": None,
        "winner_sme": None,
        "winner_problem": None,
        "eu_funds_flag": _xt(lot_terms, "cbc:FundingProgramCode[@listName='eu-funded']")
        or _xt(lot_terms, "cbc:FundingProgramCode"),
        "eu_programme_text": None,
        "eu_funds_programme": lot_funding[0],
        "eu_funds_financing_id": lot_funding[1],
        "eu_funds_details": lot_funding[2],
        "eu_funds_basis": f"lot {lot_id}" if lot is not None else f"lot {lot_id} not described",
        "withheld_fields": _withheld(lot_result),
    }
    tender_refs = [
        t for t in (_clean(x) for x in _x(lot_result, "efac:LotTender/cbc:ID/text()")) if t
    ]
    if code != "selec-w" or not tender_refs:
        if code == "selec-w":
            base["has_winner"] = "true"
            base["winner_problem"] = "winner chosen (selec-w) but no efac:LotTender referenced"
        yield base, loc
        return
    result_contracts = {_clean(x) for x in _x(lot_result, "efac:SettledContract/cbc:ID/text()")}
    for tender_id in tender_refs:
        row = dict(base)
        row.update(has_winner="true", tender_id=tender_id, award_ref=f"{lot_id}/{tender_id}")
        tender = tenders.get(tender_id)
        tloc = f"{loc}/efac:LotTender[cbc:ID='{tender_id}']"
        if tender is None:
            row["winner_problem"] = f"LotTender {tender_id} is not in efac:NoticeResult"
            yield row, tloc
            continue
        payable = _x1(tender, "cac:LegalMonetaryTotal/cbc:PayableAmount")
        row.update(value=_text(payable), value_currency=_attr(payable, "currencyID"))
        contract = _tender_contract(tender_id, contracts, result_contracts)
        if contract is not None:
            c_funding = _funding(contract, "efac:Funding")
            row.update(
                contract_id=_xt(contract, "cbc:ID"),
                contract_no=_xt(contract, "efac:ContractReference/cbc:ID"),
                conclusion_date=_xt(contract, "cbc:IssueDate"),
                decision_date=_xt(contract, "cbc:AwardDate"),
                award_title=_lang_text(contract, "cbc:Title", language) or row["award_title"],
                eu_funds_programme=c_funding[0] or row["eu_funds_programme"],
                eu_funds_financing_id=c_funding[1] or row["eu_funds_financing_id"],
                eu_funds_details=c_funding[2] or row["eu_funds_details"],
            )
        row["withheld_fields"] = _withheld(lot_result, tender, contract)
        party_id = _xt(tender, "efac:TenderingParty/cbc:ID")
        row["tendering_party_id"] = party_id
        party = parties.get(party_id)
        tenderer_ids = [_xt(t, "cbc:ID") for t in _x(party, "efac:Tenderer")]
        if party is None or not tenderer_ids:
            row["winner_problem"] = (
                f"TenderingParty {party_id or '(none)'} of LotTender {tender_id} "
                + ("not found" if party is None else "names no efac:Tenderer")
            )
            yield row, tloc
            continue
        row.update(
            winners_in_award=str(len(tenderer_ids)),
            awarded_to_group="true" if len(tenderer_ids) > 1 else "false",
        )
        for j, org_id in enumerate(tenderer_ids, start=1):
            winner = dict(row)
            org = orgs.get(org_id or "")
            winner.update(winner_index=str(j), winner_org_tech_id=org_id)
            if org is None:
                winner["winner_problem"] = f"organisation {org_id} not in efac:Organizations"
            else:
                winner.update(
                    winner_name=org.name,
                    winner_national_id=org.company_id,
                    winner_country=org.country,
                    winner_sme=org.size,
                )
            yield (
                winner,
                f"{tloc} -> efac:TenderingParty[cbc:ID='{party_id}']/efac:Tenderer[{j}]",
            )


def _tender_contract(tender_id: str, contracts: list[Any], result_contracts: set) -> Any:
    """The settled contract of a winning tender (BT-3202), else the result's only contract."""
    for contract in contracts:
        if tender_id in {_clean(x) for x in _x(contract, "efac:LotTender/cbc:ID/text()")}:
            return contract
    listed = [c for c in contracts if _xt(c, "cbc:ID") in result_contracts]
    return listed[0] if len(listed) == 1 else None


# ---------------------------------------------------------------- dispatch and load


def read_notice(path: Path) -> ParsedNotice:
    """Recognise the schema of one notice file and read it (raises FileRejected)."""
    namespace, name, attrs = _root_info(path)
    readable = (name == "TED_EXPORT" and namespace == R209_NS) or (
        namespace == f"{UBL_NS_PREFIX}{name}-2" and name in EFORMS_ROOTS
    )
    if not readable:  # the readers report malformed XML themselves
        _check_well_formed(path)
    if name == "TED_EXPORT":
        if namespace != R209_NS:
            raise FileRejected(
                f"unsupported TED schema version: TED_EXPORT in namespace '{namespace or '(none)'}'"
                + (f" (VERSION {attrs['VERSION']})" if attrs.get("VERSION") else "")
                + f"; only R2.0.9 ({R209_NS}) is read",
                locator="/TED_EXPORT",
            )
        version = attrs.get("VERSION")
        if version and not version.startswith("R2.0.9"):
            raise FileRejected(
                f"unsupported TED schema version {version} in the R2.0.9 namespace",
                locator="/TED_EXPORT/@VERSION",
            )
        return _read_r209(path, version)
    if namespace.startswith(UBL_NS_PREFIX) and name in EFORMS_ROOTS:
        if namespace != UBL_NS_PREFIX + name + "-2":
            raise FileRejected(
                f"unsupported UBL schema: {name} in namespace '{namespace}'", locator=f"/{name}"
            )
        return _read_eforms(path, name)
    if namespace.startswith(UBL_NS_PREFIX):
        return ParsedNotice(
            None, locator=f"/{name}", skipped=f"not an award notice: UBL {name}; nothing loaded"
        )
    raise FileRejected(
        f"not a TED notice: root element {name} in namespace '{namespace or '(none)'}' "
        f"(read: TED_EXPORT R2.0.9 {R209_NS}, eForms UBL ContractAwardNotice)",
        locator=f"/{name}",
    )


def _insert(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    names: list[str],
    rows: list[tuple[dict[str, str | None], int, str]],
    ctx: FileContext,
) -> None:
    writer = RowWriter(con, ctx, spec.qualified, names)
    for row, source_row, locator in rows:
        writer.add(row, source_row, locator)
    writer.flush()


def forget_file(con: duckdb.DuckDBPyConnection, source_file: str) -> None:
    for spec in RAW_TABLES:
        create_table(con, spec, replace=False)
        con.execute(f"DELETE FROM {spec.qualified} WHERE source_file = ?", [source_file])


def parse_file(con: duckdb.DuckDBPyConnection, path: Path, ctx: FileContext) -> ParseResult:
    """Ingest parser: one notice row and its award rows, or an `empty` skip."""
    forget_file(con, ctx.source_file)
    parsed = read_notice(path)
    if parsed.notice is None:
        return ParseResult(0, "xml", parsed.encoding, [], parsed.skipped)
    notice = dict(parsed.notice)
    notice["award_rows"] = str(len(parsed.awards))
    _insert(con, RAW_NOTICES, list(NOTICE_FIELDS), [(notice, 1, parsed.locator)], ctx)
    _insert(
        con,
        RAW_AWARDS,
        list(AWARD_FIELDS),
        [(row, n, loc) for n, (row, loc) in enumerate(parsed.awards, start=1)],
        ctx,
    )
    message = f"{parsed.note}; {len(parsed.awards)} award row(s)"
    # the award rows are the file's records; a notice without any still loads its notice row
    return ParseResult(max(len(parsed.awards), 1), "xml", parsed.encoding, [], message)


def ingest_ted(
    con: duckdb.DuckDBPyConnection,
    raw_dir: Path,
    log: Any = print,
    force: bool = False,
    files: Collection[str] | None = None,
) -> IngestReport:
    """Ingest every notice under `raw_dir/ted` into the two raw tables."""
    return ingest_folder(
        con,
        source_system=SOURCE_SYSTEM,
        raw_dir=raw_dir,
        folder=FOLDER,
        suffixes=SUFFIXES,
        raw_table=RAW_AWARDS,
        parser=parse_file,
        parser_version=PARSER_VERSION,
        log=log,
        force=force,
        files=files,
        also_tables=[RAW_NOTICES],
    )


@dg.multi_asset(
    name="raw_ted",
    group_name="raw",
    specs=[
        dg.AssetSpec(
            spec.asset_key,
            description=spec.doc,
            kinds={"duckdb", "xml", "python"},
            tags={"source_system": SOURCE_SYSTEM},
        )
        for spec in RAW_TABLES
    ],
)
def raw_ted(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, fundtrace: FundtraceSettings
) -> Iterator[dg.MaterializeResult]:
    with duckdb.get_connection() as con:
        report = ingest_ted(
            con, fundtrace.raw_path, log=context.log.info, files=partition_files(context)
        )
        context.log.info(report.summary())
        for spec in RAW_TABLES:
            result = raw_result(con, spec, report)
            yield dg.MaterializeResult(asset_key=spec.asset_key, metadata=result.metadata)
