"""`staging.stg_ted_notices` and `staging.stg_ted_awards`: TED award notices, typed.

One staged row per raw row, so `marts.data_quality` reconciles raw = staged + quarantined per
file and table. Both tables are built together: an award inherits its notice's buyer,
procedure, CPV and dates, and is quarantined with its notice.

Identity
- process_id: the notice publication number (R2.0.9 `DOC_ID`, e.g. `015463-2021`) or the eForms
  notice id + '-' + version. The same notice in two files: the first file (by name) is kept,
  the other copy quarantined with its awards.
- award_id: the raw `award_ref` (CONTRACT_NO, else lot, else item; eForms lot/tender).
- Organisations: a national id that is a registry number we can put a scheme on becomes an
  org-id (`GB-COH-` + UK company number for a GB/UK address, `NO-BRC-` + 9-digit Norwegian
  organisation number, an id already written as an org-id such as `GB-COH-09990003`); any other
  id (VAT numbers, French SIRET, Polish NIP...) is kept as published and the organisation gets a
  name-based `FTNAME-` id from its official name (any script). Italian personal tax codes (they
  encode a birth date) are not copied to staging.

Money
- value: R2.0.9 VAL_TOTAL / eForms BT-720 as DECIMAL, currency upper-cased. A range
  (VAL_RANGE_TOTAL, BT-710/711) is not a value: it is kept in value_range_* and value stays NULL.
- EUR at the ECB rate (assets/common/money.py) of the contract conclusion date, else the winner
  decision date (eForms BT-1451), else the notice dispatch date, else the publication date;
  fx_date_basis says which.

Quarantined (staging.stg_quarantine, first failed rule): notice without id or with an
unparseable dispatch date, notice without buyer name or identifier, duplicate notice; award
of a quarantined notice, value without currency, unparseable or negative value, invalid
currency, unparseable conclusion/decision date, unparseable number of tenders, a winner that
cannot be resolved (broken eForms reference) or has neither name nor id, no ECB rate.
"""

from collections.abc import Iterator

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common import country_alpha3, html_text
from assets.common.fingerprint import skip_unchanged
from assets.common.macros import install_macro_script
from assets.common.money import AMOUNT_TYPE, RATE_TYPE, to_eur_sql
from assets.common.tables import Column, TableSpec, materialize_result, rebuild_table
from assets.common.unicode_names import install_macros as install_name_macros
from assets.raw.ingest import PROVENANCE_COLUMNS
from assets.raw.reference import ECB_RATES
from assets.raw.ted import RAW_AWARDS, RAW_NOTICES, SOURCE_SYSTEM
from assets.staging.quarantine import STG_QUARANTINE, replace_quarantine
from assets.staging.registry import StagingPair

# R2.0.9 PT_* -> eForms BT-105 code, as OP-TED/ted-xml-data-converter maps them
# (xslt/other-mappings.xml, procedure-types); unmapped ones keep their words.
PROCEDURE_TYPES: dict[str, str] = {
    "PT_OPEN": "open",
    "PT_RESTRICTED": "restricted",
    "PT_COMPETITIVE_NEGOTIATION": "neg-w-call",
    "PT_COMPETITIVE_DIALOGUE": "comp-dial",
    "PT_INNOVATION_PARTNERSHIP": "innovation",
    "PT_NEGOTIATED_WITH_PRIOR_CALL": "neg-w-call",
    "PT_AWARD_CONTRACT_WITHOUT_CALL": "neg-wo-call",
    "PT_AWARD_CONTRACT_WITH_PRIOR_PUBLICATION": "neg-w-call",
    "PT_AWARD_CONTRACT_WITHOUT_PUBLICATION": "neg-wo-call",
    "PT_NEGOTIATED_WITHOUT_PUBLICATION": "neg-wo-call",
}
AWARD_STATUSES = {
    "AWARDED_CONTRACT": "awarded",
    "NO_AWARDED_CONTRACT": "not awarded",
    "selec-w": "awarded",
    "clos-nw": "not awarded",
    "open-nw": "open",
}
EU_FUNDED_YES = ("EU_PROGR_RELATED", "eu-funds")
EU_FUNDED_NO = ("NO_EU_PROGR_RELATED", "no-eu-funds")
REF_BASES = ("org-id as published", "UK company number", "Norwegian organisation number", "name")

_PT_MAP = "MAP {" + ", ".join(f"'{k}': '{v}'" for k, v in PROCEDURE_TYPES.items()) + "}"
_STATUS_MAP = "MAP {" + ", ".join(f"'{k}': '{v}'" for k, v in AWARD_STATUSES.items()) + "}"

MACROS = rf"""
-- ISO dates with a zone (eForms '2019-09-03+02:00', '2023-05-26Z'): the calendar date written
CREATE OR REPLACE TEMP MACRO ft_ted_date(x) AS
  CASE WHEN regexp_matches(trim(CAST(x AS VARCHAR)), '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}')
       THEN TRY_CAST(left(trim(CAST(x AS VARCHAR)), 10) AS DATE)
       ELSE ft_parse_date(x) END;
CREATE OR REPLACE TEMP MACRO ft_ted_id_text(x) AS
  upper(regexp_replace(coalesce(CAST(x AS VARCHAR), ''), '[^A-Za-z0-9-]', '', 'g'));
-- The org macros take precomputed columns (ft_ted_id_text, ft_country_iso2, ft_html_unescape):
-- nested macros repeat their arguments, and each repetition is evaluated again.
-- An org-id for registry numbers we can scheme; NULL for VAT, SIRET, NIP... (see module doc).
CREATE OR REPLACE TEMP MACRO ft_ted_registry_id(idt, cc) AS
  CASE
    WHEN regexp_full_match(idt, '[A-Z]{{2}}-[A-Z]{{2,6}}-[A-Z0-9][-A-Z0-9]*') THEN ft_org_id(idt)
    WHEN cc = 'GB' AND regexp_full_match(idt, '[0-9]{{1,8}}|[A-Z]{{2}}[0-9]{{6}}')
      THEN ft_org_id_from_company_number(idt)
    WHEN cc = 'NO' AND regexp_full_match(idt, '[0-9]{{9}}') THEN 'NO-BRC-' || idt
  END;
CREATE OR REPLACE TEMP MACRO ft_ted_org_basis(registry_id, idt, cc, name_ref) AS
  CASE
    WHEN registry_id IS NOT NULL THEN
      CASE WHEN regexp_full_match(idt, '[A-Z]{{2}}-[A-Z]{{2,6}}-[A-Z0-9][-A-Z0-9]*')
             THEN '{REF_BASES[0]}'
           WHEN cc = 'GB' THEN '{REF_BASES[1]}'
           ELSE '{REF_BASES[2]}' END
    WHEN name_ref IS NOT NULL THEN '{REF_BASES[3]}'
  END;
-- Italian codice fiscale of a natural person: encodes birth date and sex
CREATE OR REPLACE TEMP MACRO ft_ted_personal_id(id) AS
  regexp_full_match(ft_ted_id_text(id),
    '[A-Z]{{6}}[0-9LMNPQRSTUV]{{2}}[A-EHLMPR-T][0-9LMNPQRSTUV]{{2}}[A-Z][0-9LMNPQRSTUV]{{3}}[A-Z]');
CREATE OR REPLACE TEMP MACRO ft_ted_procedure(x) AS
  CASE WHEN x IS NULL THEN NULL
       WHEN starts_with(x, 'PT_')
         THEN coalesce({_PT_MAP}[x], lower(replace(substr(x, 4), '_', ' ')))
       ELSE lower(trim(x)) END;
"""


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    install_name_macros(con)  # shared macros + ft_name_org_id_any
    country_alpha3.install_macros(con)
    html_text.install_macros(con)
    install_macro_script(con, __name__, MACROS)


STG_TED_NOTICES = TableSpec(
    schema="staging",
    name="stg_ted_notices",
    grain="one TED contract award notice (unique process_id)",
    description="TED R2.0.9 and eForms award notices typed: publication number, dates, buyer "
    "as a canonical organisation reference, procedure type (eForms BT-105 codes), main CPV and "
    "the notice value. Notices that fail a rule are in staging.stg_quarantine.",
    columns=(
        Column("process_id", "VARCHAR", "Notice publication number (R2.0.9 DOC_ID) or eForms notice id-version.", False),
        Column("schema_family", "VARCHAR", "'TED R2.0.9' or 'eForms'.", False),
        Column("schema_version", "VARCHAR", "TED_EXPORT/@VERSION or eForms CustomizationID."),
        Column("form", "VARCHAR", "R2.0.9 form (F03_2014...) or eForms root element."),
        Column("notice_subtype", "VARCHAR", "eForms notice subtype (29-37) or R2.0.9 document type code."),
        Column("notice_id", "VARCHAR", "R2.0.9 DOC_ID or eForms notice id (BT-701).", False),
        Column("notice_version", "VARCHAR", "eForms notice version (BT-757)."),
        Column("ojs_number", "VARCHAR", "OJ S number (2021/S 009-015463) where published."),
        Column("contract_folder_id", "VARCHAR", "eForms procedure id (ContractFolderID)."),
        Column("original_language", "VARCHAR", "Language of the form read (the ORIGINAL one for R2.0.9)."),
        Column("dispatch_date", "DATE", "Date the notice was sent to TED (BT-05)."),
        Column("publication_date", "DATE", "OJ S publication date where published."),
        Column("buyer_org_ref", "VARCHAR", "Canonical reference of the buyer: org-id from a schemable national id, else FTNAME- from its official name.", False),
        Column("buyer_name", "VARCHAR", "Buyer official name, HTML entities decoded."),
        Column("buyer_ref_basis", "VARCHAR", "How buyer_org_ref was made: org-id as published | UK company number | Norwegian organisation number | name.", False),
        Column("buyer_published_id", "VARCHAR", "Buyer national id as published."),
        Column("buyer_country", "VARCHAR", "Buyer country, ISO 3166 alpha-2."),
        Column("buyers_count", "BIGINT", "Buyers named in the notice (joint procurement > 1; the first is buyer_org_ref)."),
        Column("title", "VARCHAR", "Procurement title."),
        Column("procedure_type", "VARCHAR", "Procedure as an eForms BT-105 code (R2.0.9 mapped as the OP-TED converter does), else the published words."),
        Column("procedure_type_published", "VARCHAR", "Procedure as published (PT_OPEN, open...)."),
        Column("main_cpv", "VARCHAR", "Main CPV code (BT-262)."),
        Column("contract_nature", "VARCHAR", "Works, supplies, services..."),
        Column("notice_value", AMOUNT_TYPE, "Total value of the procurement / notice value (BT-161), if parseable."),
        Column("notice_value_currency", "VARCHAR", "Currency of notice_value, upper-cased."),
        Column("award_rows", "BIGINT", "Award rows of this notice in raw.raw_ted_awards."),
        *PROVENANCE_COLUMNS,
    ),
    order_by=("process_id",),
)  # fmt: skip

STG_TED_AWARDS = TableSpec(
    schema="staging",
    name="stg_ted_awards",
    grain="one award x winner of a staged TED notice (unique award_row_id); an award without "
    "winner is one row with has_winner false",
    description="TED awards typed: value as DECIMAL in its currency and in EUR, buyer and winner "
    "as canonical organisation references, number of tenders, procedure, CPV and EU funds "
    "(eu_funded, eu_programme). Rows that fail a rule are in staging.stg_quarantine.",
    columns=(
        Column("award_row_id", "VARCHAR", "process_id:award_id:winner_index (0 without winner).", False),
        Column("process_id", "VARCHAR", "Notice publication number or eForms notice id-version.", False),
        Column("award_id", "VARCHAR", "Award reference unique within the notice (contract, lot or item; eForms lot/tender).", False),
        Column("schema_family", "VARCHAR", "'TED R2.0.9' or 'eForms'.", False),
        Column("notice_id", "VARCHAR", "R2.0.9 DOC_ID or eForms notice id.", False),
        Column("notice_version", "VARCHAR", "eForms notice version."),
        Column("award_item", "VARCHAR", "R2.0.9 AWARD_CONTRACT/@ITEM or eForms LotResult id."),
        Column("contract_no", "VARCHAR", "Contract number (R2.0.9 CONTRACT_NO, eForms BT-150)."),
        Column("lot_no", "VARCHAR", "Lot number / id."),
        Column("award_status", "VARCHAR", "awarded | not awarded | open | unknown.", False),
        Column("award_status_published", "VARCHAR", "AWARDED_CONTRACT, NO_AWARDED_CONTRACT, selec-w, clos-nw, open-nw."),
        Column("non_award_reason", "VARCHAR", "Why no contract was awarded, as published."),
        Column("has_winner", "BOOLEAN", "True when the row names a winner.", False),
        Column("winner_index", "BIGINT", "Position of the winner within the award (NULL without winner)."),
        Column("winners_in_award", "BIGINT", "Winners named for the award (a group shares the value).", False),
        Column("awarded_to_group", "BOOLEAN", "Awarded to a group of economic operators."),
        Column("buyer_org_ref", "VARCHAR", "Canonical reference of the buyer (from the notice).", False),
        Column("buyer_name", "VARCHAR", "Buyer official name."),
        Column("supplier_org_ref", "VARCHAR", "Canonical reference of the winner (NULL without winner)."),
        Column("supplier_name", "VARCHAR", "Winner official name, HTML entities decoded."),
        Column("supplier_ref_basis", "VARCHAR", "org-id as published | UK company number | Norwegian organisation number | name."),
        Column("supplier_published_id", "VARCHAR", "Winner national id as published (personal tax codes withheld)."),
        Column("supplier_country", "VARCHAR", "Winner country, ISO 3166 alpha-2."),
        Column("supplier_note", "VARCHAR", "Why a published identifier was not copied, if so."),
        Column("title", "VARCHAR", "Award (contract or lot) title, else the notice title."),
        Column("award_date", "DATE", "Contract conclusion date, else the winner decision date (eForms)."),
        Column("dispatch_date", "DATE", "Notice dispatch date."),
        Column("value_original", AMOUNT_TYPE, "Award value as published (R2.0.9 VAL_TOTAL, eForms BT-720); NULL when only a range or nothing was published."),
        Column("currency_original", "VARCHAR", "ISO 4217 currency of value_original, upper-cased."),
        Column("value_eur", AMOUNT_TYPE, "value_original in EUR at the ECB rate of fx_date."),
        Column("fx_rate", RATE_TYPE, "Units of currency per EUR."),
        Column("fx_date", "DATE", "ECB fixing day used."),
        Column("fx_date_basis", "VARCHAR", "Date the rate was taken for: contract conclusion date | winner decision date | notice dispatch date | publication date."),
        Column("value_range_low", AMOUNT_TYPE, "Lowest offer (R2.0.9 VAL_RANGE_TOTAL/LOW, eForms BT-710)."),
        Column("value_range_high", AMOUNT_TYPE, "Highest offer (VAL_RANGE_TOTAL/HIGH, BT-711)."),
        Column("value_range_currency", "VARCHAR", "Currency of the range."),
        Column("number_of_tenders", "BIGINT", "Tenders received (NB_TENDERS_RECEIVED, BT-759 'tenders')."),
        Column("procedure_type", "VARCHAR", "Procedure (eForms BT-105 code), from the notice."),
        Column("cpv", "VARCHAR", "Main CPV code, from the notice."),
        Column("eu_funded", "BOOLEAN", "EU_PROGR_RELATED / BT-60 eu-funds (or an EU-funds reference) true; NO_EU_PROGR_RELATED / no-eu-funds false; NULL unknown."),
        Column("eu_programme", "VARCHAR", "EU programme/project reference: R2.0.9 EU_PROGR_RELATED text, or eForms programme; financing id; details."),
        Column("eu_funds_programme", "VARCHAR", "eForms EU funds programme code (BT-722 / BT-7220)."),
        Column("eu_funds_financing_id", "VARCHAR", "eForms EU funds financing identifier (BT-5011 / BT-5010)."),
        Column("eu_funds_details", "VARCHAR", "eForms EU funds details (BT-6110 / BT-6140)."),
        Column("withheld_fields", "VARCHAR", "eForms fields whose publication is deferred (FieldsPrivacy codes)."),
        *PROVENANCE_COLUMNS,
    ),
    order_by=("award_row_id",),
)  # fmt: skip

# Built in steps (temp tables): each macro gets plain columns, never another macro's expansion.
_NOTICES_PREP = f"""
SELECT n.*,
  nullif(trim(n.notice_id), '') AS _notice_id,
  CASE WHEN n.schema_family = 'eForms' AND nullif(trim(n.notice_version), '') IS NOT NULL
       THEN trim(n.notice_id) || '-' || trim(n.notice_version)
       ELSE nullif(trim(n.notice_id), '') END AS _process_id,
  ft_ted_date(n.dispatch_date) AS _dispatch,
  ft_ted_date(n.publication_date) AS _published,
  ft_html_unescape(n.buyer_name) AS _buyer_name_u,
  ft_country_iso2(n.buyer_country) AS _buyer_cc,
  ft_ted_id_text(n.buyer_national_id) AS _buyer_idt,
  ft_clean_name(ft_html_unescape(n.title)) AS _title
FROM {RAW_NOTICES.qualified} n
"""

_NOTICES_CHECKED = """
SELECT *,
  CASE
    WHEN _notice_id IS NULL THEN 'missing notice id: no DOC_ID / cbc:ID'
    WHEN dispatch_date IS NOT NULL AND _dispatch IS NULL
      THEN 'unparseable dispatch date: ' || dispatch_date
    WHEN _buyer_ref IS NULL
      THEN 'no buyer name or identifier: ' || coalesce(buyer_org_tech_id, '(none)')
  END AS _reason
FROM (
  SELECT *, coalesce(_buyer_registry, _buyer_name_ref) AS _buyer_ref,
    ft_ted_org_basis(_buyer_registry, _buyer_idt, _buyer_cc, _buyer_name_ref) AS _buyer_basis
  FROM (
    SELECT *, ft_ted_registry_id(_buyer_idt, _buyer_cc) AS _buyer_registry,
      ft_name_org_id_any(_buyer_name_u) AS _buyer_name_ref
    FROM _ted_notices_prep
  )
)
"""

# a notice's final outcome: its own rule, else a duplicate of an earlier file's copy
_NOTICES_FINAL = """
SELECT *,
  coalesce(_reason, CASE WHEN _rank > 1 THEN 'duplicate notice: ' || _process_id
    || ' is also in ' || _first_file || ' (that copy is kept)' END) AS _final_reason
FROM (
  SELECT c.*,
    CASE WHEN c._reason IS NULL THEN row_number() OVER (
      PARTITION BY c._reason IS NULL, c._process_id ORDER BY c.source_file) END AS _rank,
    first_value(c.source_file) OVER (
      PARTITION BY c._reason IS NULL, c._process_id ORDER BY c.source_file) AS _first_file
  FROM _ted_notices_checked c
)
"""

_AWARDS_PREP = f"""
SELECT a.*,
  coalesce(n._final_reason, CASE WHEN n._process_id IS NULL
    THEN 'no notice row for this award' END) AS _notice_reason,
  n._process_id, n._dispatch, n._published, n._buyer_ref,
  ft_clean_name(n._buyer_name_u) AS _buyer_name,
  ft_ted_procedure(n.procedure_type) AS _procedure, n.main_cpv AS _cpv,
  n._title AS _notice_title,
  ft_parse_amount(a.value) AS _value,
  ft_parse_currency(a.value_currency) AS _currency,
  ft_ted_date(a.conclusion_date) AS _concluded,
  ft_ted_date(a.decision_date) AS _decided,
  TRY_CAST(trim(a.tenders_received) AS BIGINT) AS _tenders,
  coalesce(a.has_winner = 'true', false) AS _has_winner,
  ft_html_unescape(a.winner_name) AS _winner_name_u,
  ft_country_iso2(a.winner_country) AS _winner_cc,
  ft_ted_id_text(a.winner_national_id) AS _winner_idt,
  ft_ted_personal_id(a.winner_national_id) AS _winner_personal_id,
  ft_clean_name(ft_html_unescape(a.award_title)) AS _award_title,
  ft_clean_name(ft_html_unescape(a.eu_programme_text)) AS _eu_text,
  ft_clean_name(ft_html_unescape(a.eu_funds_details)) AS _eu_details
FROM {RAW_AWARDS.qualified} a
LEFT JOIN _ted_notices_final n
  ON n.source_file = a.source_file AND n.file_sha256 = a.file_sha256
"""

_AWARDS_CHECKED = """
SELECT *,
  CASE
    WHEN _notice_reason IS NOT NULL THEN 'notice not staged: ' || _notice_reason
    WHEN value IS NOT NULL AND value_currency IS NULL
      THEN 'award value without currency: ' || value
    WHEN value IS NOT NULL AND _value IS NULL
      THEN 'unparseable or out-of-range award value: ' || value
    WHEN _value < 0 THEN 'negative award value: ' || value
    WHEN value IS NOT NULL AND _currency IS NULL THEN 'invalid currency: ' || value_currency
    WHEN conclusion_date IS NOT NULL AND _concluded IS NULL
      THEN 'unparseable contract conclusion date: ' || conclusion_date
    WHEN decision_date IS NOT NULL AND _decided IS NULL
      THEN 'unparseable winner decision date: ' || decision_date
    WHEN tenders_received IS NOT NULL AND (_tenders IS NULL OR _tenders < 0)
      THEN 'unparseable number of tenders received: ' || tenders_received
    WHEN _has_winner AND winner_problem IS NOT NULL THEN 'winner not resolvable: ' || winner_problem
    WHEN _has_winner AND _supplier_ref IS NULL
      THEN 'winner without name or identifier: ' || coalesce(winner_org_tech_id, source_locator)
  END AS _reason
FROM (
  SELECT *,
    CASE WHEN _has_winner THEN coalesce(_winner_registry, _winner_name_ref) END AS _supplier_ref,
    CASE WHEN _has_winner THEN ft_ted_org_basis(
      _winner_registry, _winner_idt, _winner_cc, _winner_name_ref) END AS _supplier_basis
  FROM (
    SELECT *, ft_ted_registry_id(_winner_idt, _winner_cc) AS _winner_registry,
      ft_name_org_id_any(_winner_name_u) AS _winner_name_ref
    FROM _ted_awards_prep
  )
)
"""

_AWARDS_MONEY_SOURCE = """
SELECT *, _value AS amount_original, _currency AS currency_original,
  coalesce(_concluded, _decided, _dispatch, _published) AS fx_on,
  CASE WHEN _concluded IS NOT NULL THEN 'contract conclusion date'
       WHEN _decided IS NOT NULL THEN 'winner decision date'
       WHEN _dispatch IS NOT NULL THEN 'notice dispatch date'
       WHEN _published IS NOT NULL THEN 'publication date' END AS _fx_basis
FROM _ted_awards_checked WHERE _reason IS NULL
"""

_QUARANTINE_COLUMNS = "source_file, file_sha256, source_row, source_locator"


def build_stg_ted(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, int]]:
    """Rebuild both staging tables and this source's quarantine rows.
    Returns {table name: (staged, quarantined)}."""
    install_macros(con)
    for name, sql in (
        ("_ted_notices_prep", _NOTICES_PREP),
        ("_ted_notices_checked", _NOTICES_CHECKED),
        ("_ted_notices_final", _NOTICES_FINAL),
        ("_ted_awards_prep", _AWARDS_PREP),
        ("_ted_awards_checked", _AWARDS_CHECKED),
    ):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _ted_awards_money AS "
        + to_eur_sql(_AWARDS_MONEY_SOURCE, ECB_RATES.qualified)
    )
    q_notices = replace_quarantine(
        con,
        SOURCE_SYSTEM,
        STG_TED_NOTICES.name,
        f"""SELECT {_QUARANTINE_COLUMNS}, _process_id AS record_id, _final_reason AS reason
            FROM _ted_notices_final WHERE _final_reason IS NOT NULL""",
    )
    q_awards = replace_quarantine(
        con,
        SOURCE_SYSTEM,
        STG_TED_AWARDS.name,
        f"""SELECT {_QUARANTINE_COLUMNS}, _process_id || ':' || award_ref AS record_id, _reason
              AS reason
            FROM _ted_awards_checked WHERE _reason IS NOT NULL
            UNION ALL
            SELECT {_QUARANTINE_COLUMNS}, _process_id || ':' || award_ref,
              'cannot convert to EUR: ' || fx_note || ' (' || currency_original || ' on '
              || coalesce(CAST(fx_on AS VARCHAR), 'no date') || ')'
            FROM _ted_awards_money WHERE fx_note IS NOT NULL""",
    )
    notices = """
    SELECT _process_id AS process_id, schema_family, schema_version, form, notice_subtype,
      _notice_id AS notice_id, notice_version, ojs_number, contract_folder_id, original_language,
      _dispatch AS dispatch_date, _published AS publication_date,
      _buyer_ref AS buyer_org_ref, ft_clean_name(_buyer_name_u) AS buyer_name,
      _buyer_basis AS buyer_ref_basis,
      buyer_national_id AS buyer_published_id, _buyer_cc AS buyer_country,
      TRY_CAST(buyers_count AS BIGINT) AS buyers_count, _title AS title,
      ft_ted_procedure(procedure_type) AS procedure_type,
      procedure_type AS procedure_type_published, main_cpv, contract_nature,
      ft_parse_amount(notice_value) AS notice_value,
      ft_parse_currency(notice_value_currency) AS notice_value_currency,
      TRY_CAST(award_rows AS BIGINT) AS award_rows,
      source_system, source_file, source_row, source_locator, file_sha256, loaded_at
    FROM _ted_notices_final WHERE _final_reason IS NULL
    """
    n_notices = rebuild_table(con, STG_TED_NOTICES, notices)
    awards = f"""
    SELECT
      _process_id || ':' || award_ref || ':' || coalesce(winner_index, '0') AS award_row_id,
      _process_id AS process_id, award_ref AS award_id, schema_family,
      trim(notice_id) AS notice_id, notice_version, award_item, contract_no, lot_no,
      coalesce({_STATUS_MAP}[award_status], 'unknown') AS award_status,
      award_status AS award_status_published, non_award_reason,
      _has_winner AS has_winner,
      CASE WHEN _has_winner THEN TRY_CAST(winner_index AS BIGINT) END AS winner_index,
      coalesce(TRY_CAST(winners_in_award AS BIGINT), 0) AS winners_in_award,
      CASE awarded_to_group WHEN 'true' THEN true WHEN 'false' THEN false END AS awarded_to_group,
      _buyer_ref AS buyer_org_ref, _buyer_name AS buyer_name,
      _supplier_ref AS supplier_org_ref,
      CASE WHEN _has_winner THEN ft_clean_name(_winner_name_u) END AS supplier_name,
      _supplier_basis AS supplier_ref_basis,
      CASE WHEN NOT _winner_personal_id
           THEN nullif(trim(winner_national_id), '') END AS supplier_published_id,
      _winner_cc AS supplier_country,
      CASE WHEN _winner_personal_id
           THEN 'published id withheld: a personal tax code (encodes a birth date)' END
        AS supplier_note,
      coalesce(_award_title, _notice_title) AS title,
      coalesce(_concluded, _decided) AS award_date, _dispatch AS dispatch_date,
      amount_original AS value_original, currency_original, amount_eur AS value_eur,
      fx_rate, fx_date, CASE WHEN amount_original IS NOT NULL THEN _fx_basis END AS fx_date_basis,
      ft_parse_amount(value_range_low) AS value_range_low,
      ft_parse_amount(value_range_high) AS value_range_high,
      ft_parse_currency(value_range_currency) AS value_range_currency,
      _tenders AS number_of_tenders, _procedure AS procedure_type, _cpv AS cpv,
      CASE WHEN eu_funds_flag IN {EU_FUNDED_YES} THEN true
           WHEN eu_funds_flag IN {EU_FUNDED_NO} THEN false
           WHEN coalesce(eu_funds_programme, eu_funds_financing_id, eu_funds_details,
                         eu_programme_text) IS NOT NULL THEN true END AS eu_funded,
      nullif(concat_ws('; ', _eu_text, eu_funds_programme, eu_funds_financing_id, _eu_details),
             '') AS eu_programme,
      eu_funds_programme, eu_funds_financing_id, _eu_details AS eu_funds_details,
      withheld_fields,
      source_system, source_file, source_row, source_locator, file_sha256, loaded_at
    FROM _ted_awards_money WHERE fx_note IS NULL
    """
    n_awards = rebuild_table(con, STG_TED_AWARDS, awards)
    con.execute(
        "DROP TABLE _ted_notices_prep; DROP TABLE _ted_notices_checked; "
        "DROP TABLE _ted_notices_final; DROP TABLE _ted_awards_prep; "
        "DROP TABLE _ted_awards_checked; DROP TABLE _ted_awards_money"
    )
    return {
        STG_TED_NOTICES.name: (n_notices, q_notices),
        STG_TED_AWARDS.name: (n_awards, q_awards),
    }


@dg.multi_asset(
    name="stg_ted",
    group_name="staging",
    specs=[
        dg.AssetSpec(
            spec.asset_key,
            description=spec.doc,
            kinds={"duckdb", "sql"},
            deps=[RAW_NOTICES.asset_key, RAW_AWARDS.asset_key, ECB_RATES.asset_key],
            tags={"source_system": SOURCE_SYSTEM},
        )
        for spec in (STG_TED_NOTICES, STG_TED_AWARDS)
    ],
)
@skip_unchanged
def stg_ted(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> Iterator[dg.MaterializeResult]:
    with duckdb.get_connection() as con:
        counts = build_stg_ted(con)
        for spec in (STG_TED_NOTICES, STG_TED_AWARDS):
            staged, quarantined = counts[spec.name]
            context.log.info(
                f"{spec.qualified}: {staged} rows staged, {quarantined} quarantined "
                f"(see {STG_QUARANTINE.qualified})"
            )
            result = materialize_result(con, spec, {"rows_quarantined": quarantined})
            yield dg.MaterializeResult(asset_key=spec.asset_key, metadata=result.metadata)


STAGING_PAIRS = (
    StagingPair(SOURCE_SYSTEM, RAW_NOTICES, STG_TED_NOTICES),
    StagingPair(SOURCE_SYSTEM, RAW_AWARDS, STG_TED_AWARDS),
)
CONTRACTS_DEPS = (STG_TED_AWARDS,)


def contracts_sql(processes: str | None = None) -> str:
    """CONTRACTS_SQL, or its rows of the notices in `processes` (a relation with column k)."""
    if processes is None:
        return CONTRACTS_SQL
    return f"SELECT * FROM ({CONTRACTS_SQL}) WHERE process_id IN (SELECT k FROM {processes})"


# Awards with a winner; a group's value is the award value for each member (not split).
CONTRACTS_SQL = f"""
SELECT
  'ted:' || process_id || ':' || award_id || ':' || supplier_org_ref
    || CASE WHEN count(*) OVER (PARTITION BY process_id, award_id, supplier_org_ref) > 1
            THEN '#' || winner_index ELSE '' END AS contract_award_id,
  process_id, award_id, buyer_org_ref, buyer_name, supplier_org_ref, supplier_name,
  supplier_published_id AS supplier_identifier, supplier_country, title,
  coalesce(award_date, dispatch_date) AS award_date,
  value_original, currency_original, value_eur, fx_rate, fx_date,
  procedure_type, number_of_tenders, cpv, eu_funded, eu_programme,
  CAST(NULL AS VARCHAR) AS budget_project_ref, CAST(NULL AS VARCHAR) AS budget_source_party,
  source_system, source_file, source_row, process_id AS source_record_id
FROM {STG_TED_AWARDS.qualified}
WHERE has_winner
"""
