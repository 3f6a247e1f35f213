"""`staging.stg_eu_fts_commitments`: EU FTS beneficiary lines typed, with who controls them.

Decisions (documented here once):
- Grain: one beneficiary line of a legal commitment. `line_id` = year:LC reference:n, n the
  line's position within that commitment (files in name order, then rows).
- Amount = the beneficiary's contracted amount (EUR); the commitment's total (A+B) is kept
  alongside. FTS amounts are in euro.
- award_date: FTS publishes the year only. No verified yearly layout has a commitment date, so
  the award date is 1 January of `Year` (`award_date_basis` says so); if a file ever carries
  a `Date of the commitment` column, that date is used instead.
- Funder: the European Commission (`XM-DAC-918`, level from the funders reference: eu).
  Controller: the responsible department (DG or executive agency) as a name-based FTNAME- id,
  control_basis `responsible_department`.
- Recipients: FTS has no organisation identifier, so the recipient is the shared name-based
  FTNAME- id (trailing `*` removed). Names the publisher anonymised (only `*`, dots or dashes,
  or "natural person") are `redacted` recipients: `FT-REDACTED-XM-DAC-918`, the project's
  convention of one redacted payee per publisher, so their money is counted, never dropped.
- VAT: the `VAT number of beneficiary` column, normalised with the country prefix. The
  registration-number columns (2020-2023, 2025) hold national register numbers; they are kept
  as published and used as the VAT only when they carry the beneficiary country's VAT prefix.
- The same line published twice in different files (e.g. a year as CSV and as XLSX) is
  loaded once; identical lines within one file are all kept (they are separate lines).
"""

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common import eu_vat
from assets.common.fingerprint import skip_unchanged
from assets.common.levels import funder_levels_sql
from assets.common.money import AMOUNT_TYPE, RATE_TYPE, to_eur_sql
from assets.common.sql import install_macros
from assets.common.tables import Column, TableSpec, create_table, materialize_result, rebuild_table
from assets.raw.eu_fts import RAW_COMMITMENTS, SOURCE_SYSTEM
from assets.raw.ingest import PROVENANCE_COLUMNS
from assets.raw.reference import ECB_RATES, FUNDERS, ORGID_PREFIXES
from assets.staging.quarantine import STG_QUARANTINE, replace_quarantine
from assets.staging.registry import StagingPair

EC_ORG_REF = "XM-DAC-918"
EC_NAME = "European Commission"
REDACTED_PREFIX = "FT-REDACTED-"  # one redacted payee per publisher (project convention)
AMOUNT_TITLE = "Beneficiary\u2019s contracted amount (EUR)"
TOTAL_TITLE = "Commitment total amount (EUR) (A+B)"
_PLACEHOLDERS = "('-', '.', '--', 'n/a', 'na', 'nan', 'null', 'none')"
_REDACTED_NAMES = "('natural person', 'natural persons', 'private individual', 'individual', 'anonymous', 'confidential', 'redacted', 'withheld')"  # fmt: skip

STG_COMMITMENTS = TableSpec(
    schema="staging",
    name="stg_eu_fts_commitments",
    grain="one beneficiary line of an EU legal commitment (unique line_id across all FTS files)",
    description="EU Financial Transparency System lines typed: the beneficiary's contracted "
    "amount and the commitment total in EUR, coordinator flag, responsible department (the "
    "controller of the stream), programme, funding type, the European Commission as funder. "
    "Lines failing a rule, and copies of a line already loaded from another file, are in "
    "staging.stg_quarantine.",
    columns=(
        Column("line_id", "VARCHAR", "year:LC reference:n (n-th beneficiary line of the commitment).", False),
        Column("year", "INTEGER", "Year of the commitment.", False),
        Column("lc_reference", "VARCHAR", "Reference of the Legal Commitment (LC); the commitment position key where an export has no LC column.", False),
        Column("position_key", "VARCHAR", "Commitment position key (2016-2019 exports)."),
        Column("recipient_org_ref", "VARCHAR", "Name-based FTNAME- id of the beneficiary; FT-REDACTED-XM-DAC-918 for beneficiaries the Commission anonymised.", False),
        Column("recipient_kind", "VARCHAR", "organisation | redacted.", False),
        Column("recipient_name", "VARCHAR", "Name of beneficiary (trailing * removed); NULL when anonymised."),
        Column("beneficiary_name_published", "VARCHAR", "Name of beneficiary exactly as published."),
        Column("vat_number", "VARCHAR", "VAT number normalised with its country prefix (see module doc)."),
        Column("vat_number_published", "VARCHAR", "VAT number of beneficiary as published."),
        Column("registration_number", "VARCHAR", "Main registration number as published (2020-2023, 2025)."),
        Column("is_coordinator", "BOOLEAN", "Coordinator flag (yes/no as published)."),
        Column("is_nfpo", "BOOLEAN", "Not-for-profit organisation flag."),
        Column("is_ngo", "BOOLEAN", "Non-governmental organisation flag."),
        Column("city", "VARCHAR", "City."),
        Column("postal_code", "VARCHAR", "Postal code."),
        Column("beneficiary_country", "VARCHAR", "Beneficiary country as published."),
        Column("beneficiary_country_code", "VARCHAR", "ISO 3166-1 alpha-2 of beneficiary_country."),
        Column("nuts2", "VARCHAR", "NUTS2 region."),
        Column("amount_original", AMOUNT_TYPE, f"{AMOUNT_TITLE}.", False),
        Column("currency_original", "VARCHAR", "EUR.", False),
        Column("amount_eur", AMOUNT_TYPE, "= amount_original (FTS publishes EUR)."),
        Column("fx_rate", RATE_TYPE, "1 (EUR)."),
        Column("fx_date", "DATE", "award_date."),
        Column("fx_note", "VARCHAR", "Why amount_eur is NULL, if it is."),
        Column("commitment_total_amount", AMOUNT_TYPE, f"{TOTAL_TITLE}: the whole commitment, all beneficiaries."),
        Column("award_date", "DATE", "Date of the commitment if published, else 1 January of year.", False),
        Column("award_date_basis", "VARCHAR", "commitment date | year (1 January).", False),
        Column("subject", "VARCHAR", "Subject of grant or contract."),
        Column("responsible_department", "VARCHAR", "Commission department (DG or executive agency) responsible.", False),
        Column("department_org_ref", "VARCHAR", "Name-based FTNAME- id of the responsible department: the controller.", False),
        Column("programme_name", "VARCHAR", "Programme name (2016-2019: Action Type)."),
        Column("funding_type", "VARCHAR", "Funding type."),
        Column("budget", "VARCHAR", "Budget (EU budget, EDF...)."),
        Column("budget_line_number", "VARCHAR", "Budget line number."),
        Column("budget_line_name", "VARCHAR", "Budget line name."),
        Column("expense_type", "VARCHAR", "Expense type."),
        Column("management_type", "VARCHAR", "Management type."),
        Column("contract_type", "VARCHAR", "Type of contract."),
        Column("project_reference", "VARCHAR", "Project / Contract Reference (for research grants, the CORDIS project id)."),
        Column("project_acronym", "VARCHAR", "Project / Contract Acronym."),
        Column("call_reference", "VARCHAR", "Call for proposals reference."),
        Column("project_start_date", "DATE", "Project start date (NULL when not a date)."),
        Column("project_end_date", "DATE", "Project end date (NULL when not a date)."),
        Column("funder_org_ref", "VARCHAR", f"{EC_NAME} ({EC_ORG_REF}).", False),
        Column("funder_name", "VARCHAR", "Funder name.", False),
        Column("funding_level", "VARCHAR", "Funding level from the funder (eu).", False),
        Column("funding_level_basis", "VARCHAR", "Which rule set funding_level.", False),
        *PROVENANCE_COLUMNS,
    ),
    order_by=("line_id",),
)  # fmt: skip


def _amount(column: str) -> str:
    return (
        f"CASE WHEN lower(trim({column})) IN {_PLACEHOLDERS} THEN NULL "
        f"ELSE ft_parse_amount({column}) END"
    )


def _present(column: str) -> str:
    return f"({column} IS NOT NULL AND lower(trim({column})) NOT IN {_PLACEHOLDERS})"


def _bool(column: str) -> str:
    return (
        f"CASE WHEN lower(trim({column})) IN ('yes', 'y', 'true', 't', '1', 'x') THEN true "
        f"WHEN lower(trim({column})) IN ('no', 'n', 'false', 'f', '0') THEN false END"
    )


_YEAR = r"TRY_CAST(nullif(regexp_extract(trim(r.year), '^([0-9]{4})(\.0*)?$', 1), '') AS INTEGER)"
_NAME = r"ft_clean_name(regexp_replace(r.beneficiary_name, '\*+\s*$', ''))"

# Each parsed value is computed once in the inner selects and the checks read those columns:
# DuckDB inlines macros and does not share repeated calls.
_PARSED = f"""
SELECT r.*,
  coalesce(nullif(trim(r.lc_reference), ''), nullif(trim(r.position_key), '')) AS _lc,
  {_YEAR} AS _year,
  {_amount("r.beneficiary_amount")} AS _amount,
  {_amount("r.commitment_total_amount")} AS _total,
  ft_parse_date(r.commitment_date) AS _commitment_date,
  {_NAME} AS _name,
  r.beneficiary_name IS NOT NULL AND (
    regexp_full_match(trim(r.beneficiary_name), '[*.\\s-]+')
    OR lower(trim(r.beneficiary_name)) IN {_REDACTED_NAMES}) AS _redacted,
  ft_clean_name(r.responsible_department) AS _dept
FROM {RAW_COMMITMENTS.qualified} r
"""

_CHECKED = f"""
SELECT p.*,
  CASE
    WHEN p._lc IS NULL THEN 'missing Reference of the Legal Commitment (LC)'
    WHEN p.year IS NULL THEN 'missing Year'
    WHEN p._year IS NULL OR p._year NOT BETWEEN 1990 AND 2100
      THEN 'unparseable Year: ' || p.year
    WHEN NOT {_present("p.beneficiary_amount")} THEN 'missing {AMOUNT_TITLE}'
    WHEN p._amount IS NULL
      THEN 'unparseable {AMOUNT_TITLE}: ' || p.beneficiary_amount
    WHEN {_present("p.commitment_total_amount")} AND p._total IS NULL
      THEN 'unparseable {TOTAL_TITLE}: ' || p.commitment_total_amount
    WHEN p.beneficiary_name IS NULL THEN 'missing Name of beneficiary'
    WHEN NOT p._redacted AND p._name_ref IS NULL
      THEN 'unusable Name of beneficiary: ' || p.beneficiary_name
    WHEN p._dept_ref IS NULL THEN 'missing Responsible department'
    WHEN {_present("p.commitment_date")} AND p._commitment_date IS NULL
      THEN 'unparseable Date of the commitment: ' || p.commitment_date
  END AS _reason
FROM (
  SELECT q.*,
    CASE WHEN NOT q._redacted THEN ft_name_org_id(q._name) END AS _name_ref,
    -- ft_name_org_id cleans the name itself: the same id as for the raw department
    ft_name_org_id(q._dept) AS _dept_ref
  FROM ({_PARSED}) q
) p
"""

# A line is the same line as one in another file when everything that identifies it matches;
# _occ numbers identical lines within a file, so they are never collapsed with each other.
_DEDUPED = """
WITH keyed AS (
  SELECT c.*, md5(concat_ws('|', c._year, c._lc, coalesce(c.position_key, ''),
    coalesce(lower(c._name), ''), coalesce(c.vat_number, ''), c._amount,
    coalesce(c.coordinator, ''), coalesce(c.subject, ''))) AS _dupkey
  FROM _fts_checked c WHERE c._reason IS NULL
),
occ AS (
  SELECT k.*, row_number() OVER (PARTITION BY k.source_file, k._dupkey ORDER BY k.source_row) AS _occ
  FROM keyed k
)
SELECT o.*,
  first_value(o.source_file) OVER w AS _kept_file,
  first_value(o.source_file || ' ' || o.source_locator) OVER w AS _first_seen
FROM occ o
WINDOW w AS (PARTITION BY o._dupkey, o._occ ORDER BY o.source_file, o.source_row)
"""

_EC_LEVEL = funder_levels_sql(f"SELECT '{EC_ORG_REF}' AS org_ref")


def build_stg_eu_fts_commitments(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Rebuild the staging table and this source's quarantine rows. Returns (staged, quarantined)."""
    install_macros(con)
    eu_vat.install_macros(con)
    create_table(con, RAW_COMMITMENTS, replace=False)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _fts_checked AS {_CHECKED}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _fts_deduped AS {_DEDUPED}")
    quarantined = replace_quarantine(
        con,
        SOURCE_SYSTEM,
        STG_COMMITMENTS.name,
        """SELECT source_file, file_sha256, source_row, source_locator, _lc AS record_id, _reason AS reason
           FROM _fts_checked WHERE _reason IS NOT NULL
           UNION ALL
           SELECT source_file, file_sha256, source_row, source_locator, _lc,
             'duplicate of a line already loaded from ' || _first_seen
           FROM _fts_deduped WHERE source_file <> _kept_file""",
    )
    good = """
      SELECT *, _amount AS amount_original, 'EUR' AS currency_original,
        coalesce(_commitment_date, make_date(_year, 1, 1)) AS fx_on,
        CAST(_year AS VARCHAR) || ':' || _lc || ':' || row_number() OVER (
          PARTITION BY _year, _lc ORDER BY source_file, source_row) AS _line_id
      FROM _fts_deduped WHERE source_file = _kept_file"""
    reg = "upper(regexp_replace(coalesce(m.registration_number, ''), '[^A-Za-z0-9]', '', 'g'))"
    select = f"""
    WITH money AS ({to_eur_sql(good, ECB_RATES.qualified)}),
         levels AS ({_EC_LEVEL})
    SELECT m._line_id AS line_id, m._year AS year, m._lc AS lc_reference,
      nullif(trim(m.position_key), '') AS position_key,
      CASE WHEN m._redacted THEN '{REDACTED_PREFIX}{EC_ORG_REF}'
           ELSE m._name_ref END AS recipient_org_ref,
      CASE WHEN m._redacted THEN 'redacted' ELSE 'organisation' END AS recipient_kind,
      CASE WHEN m._redacted THEN NULL ELSE m._name END AS recipient_name,
      m.beneficiary_name AS beneficiary_name_published,
      CASE
        WHEN ft_vat_number(m.vat_number, m.beneficiary_country) IS NOT NULL
          THEN ft_vat_number(m.vat_number, m.beneficiary_country)
        WHEN regexp_full_match({reg}, '[A-Z]{{2,3}}[0-9][0-9A-Z]{{1,14}}')
             AND left({reg}, length(ft_vat_prefix(m.beneficiary_country)))
                 = ft_vat_prefix(m.beneficiary_country)
          THEN ft_vat_number(m.registration_number, m.beneficiary_country)
      END AS vat_number,
      m.vat_number AS vat_number_published, m.registration_number,
      {_bool("m.coordinator")} AS is_coordinator, {_bool("m.nfpo")} AS is_nfpo,
      {_bool("m.ngo")} AS is_ngo,
      m.city, m.postal_code, m.beneficiary_country,
      ft_country_code(m.beneficiary_country) AS beneficiary_country_code, m.nuts2,
      m.amount_original, m.currency_original, m.amount_eur, m.fx_rate, m.fx_date, m.fx_note,
      m._total AS commitment_total_amount,
      m.fx_on AS award_date,
      CASE WHEN m._commitment_date IS NOT NULL THEN 'commitment date'
           ELSE 'year (1 January)' END AS award_date_basis,
      ft_clean_name(m.subject) AS subject, m._dept AS responsible_department,
      m._dept_ref AS department_org_ref,
      ft_clean_name(m.programme_name) AS programme_name, m.funding_type, m.budget,
      m.budget_line_number, m.budget_line_name, m.expense_type, m.management_type,
      m.contract_type, m.project_reference, m.project_acronym, m.call_reference,
      ft_parse_date(m.project_start_date) AS project_start_date,
      ft_parse_date(m.project_end_date) AS project_end_date,
      '{EC_ORG_REF}' AS funder_org_ref, '{EC_NAME}' AS funder_name,
      l.funding_level, l.funding_level_basis,
      m.source_system, m.source_file, m.source_row, m.source_locator, m.file_sha256, m.loaded_at
    FROM money m CROSS JOIN levels l
    """
    staged = rebuild_table(con, STG_COMMITMENTS, select)
    con.execute("DROP TABLE _fts_checked; DROP TABLE _fts_deduped")
    return staged, quarantined


@dg.asset(
    key=STG_COMMITMENTS.asset_key,
    group_name="staging",
    kinds={"duckdb", "sql"},
    description=STG_COMMITMENTS.doc,
    deps=[
        RAW_COMMITMENTS.asset_key,
        ECB_RATES.asset_key,
        FUNDERS.asset_key,
        ORGID_PREFIXES.asset_key,
    ],
    tags={"source_system": SOURCE_SYSTEM},
)
@skip_unchanged
def stg_eu_fts_commitments(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        staged, quarantined = build_stg_eu_fts_commitments(con)
        context.log.info(
            f"{STG_COMMITMENTS.qualified}: {staged} lines staged, {quarantined} quarantined "
            f"(see {STG_QUARANTINE.qualified})"
        )
        return materialize_result(con, STG_COMMITMENTS, {"rows_quarantined": quarantined})


STAGING_PAIRS = (StagingPair(SOURCE_SYSTEM, RAW_COMMITMENTS, STG_COMMITMENTS),)
AWARDS_DEPS = (STG_COMMITMENTS,)
AWARDS_SQL = f"""
SELECT source_system || ':' || line_id AS award_id, 'commitment' AS award_type,
  funder_org_ref, funder_name, recipient_org_ref, recipient_name, recipient_kind,
  coalesce(programme_name, funding_type, budget_line_name) AS programme,
  project_reference AS project_ref, subject AS title, award_date,
  amount_original, currency_original, amount_eur, fx_rate, fx_date, funding_level,
  department_org_ref AS controller_org_ref, responsible_department AS controller_name,
  'responsible_department' AS control_basis,
  source_system, source_file, source_row, line_id AS source_record_id
FROM {STG_COMMITMENTS.qualified}
"""
