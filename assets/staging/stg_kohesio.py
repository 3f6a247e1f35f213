"""`staging.stg_kohesio`: Kohesio operations and beneficiary aggregates, typed and split.

One staged row per raw row (so data_quality reconciles raw = staged + quarantined per file);
the split into two awards happens in `AWARDS_SQL`: the EU share and the national/regional
co-financing.

Money (everything is EUR; Kohesio publishes euros):
- EU share = `Project_EU_Budget` / `EU Contribution`; when it is empty, total x rate (rounded
  to the cent). No EU amount and no total with a rate: quarantined.
- co-financing = total eligible expenditure - EU share. With only the rate known this is
  total x (1 - rate), computed as total - round(total x rate, 2) so the two shares always add up
  to the total; with no total but EU budget and rate, total = EU budget / rate. Without a total
  the co-financing is unknown (NULL, said in `note`) and only the EU share is awarded.
- Cofinancing_Rate is the EU co-financing rate: `0.85`, `85`, `85%` and `85,5 %` are read as
  fractions (a value above 1 or written with % is a percentage).
- `consistency_note` flags rows where the three published numbers disagree: EU budget more than
  1% of the total away from total x rate, or EU budget above the total (no co-financing share).
  The published EU budget wins; nothing is quarantined for it.
- Zero or negative shares produce no award.

Who (funding level from who the funder is):
- EU share: funder the EU, `XM-DAC-918` "European Union (cohesion policy funds)", level `eu`.
- co-financing, operations layout: funder = the managing authority (`ManagingAuthority_Id` when
  given, else a name reference). Level: the funders reference or org-id prefix of that
  reference when they know it; else from the name with the keyword lists below - a regional or
  local body (combined authority, county/city council, voivodeship marshal office, Land, région,
  municipality...) is `local`, a ministry or national body `national`, weaker regional words
  (region, city, council, district...) `local`, and anything else `national` (most managing
  authorities are national bodies). Both shares are controlled by the managing authority
  (`control_basis` 'managing_authority').
- co-financing, beneficiaries layout (no managing authority): funder "national co-financing,
  <Country>" (a name reference), level `national`; each share is controlled by its funder.

Dates: operations use Operation_Start_Date; without one, the start of the programming period
named by Programme_Code (CCI `2014UK16RFOP001` -> 2014-01-01); without either the row is
quarantined. Beneficiary aggregates carry no date: they get 2014-01-01, the start of the
2014-2020 programming period the Kohesio beneficiaries export covers, stated in `note`.

Identity: operations are keyed by Operation_Unique_Identifier (a repeat, in any file, is
quarantined as a duplicate). Aggregates have no id: `BEN-` + a hash of the row's published
values + its occurrence number among identical lines of the same file. Identical lines inside
one file are kept (Kohesio lists distinct beneficiaries that share a name and amounts) and
flagged in `note`; the same line in a second file is quarantined as a duplicate.
"""

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.fingerprint import skip_unchanged
from assets.common.levels import funder_levels_sql
from assets.common.macros import install_macro_script
from assets.common.money import AMOUNT_TYPE, RATE_TYPE, to_eur_sql
from assets.common.tables import Column, TableSpec, materialize_result, rebuild_table
from assets.common.unicode_names import install_macros as install_name_macros
from assets.raw.eu_kohesio import BENEFICIARIES, OPERATIONS, RAW_KOHESIO, SOURCE_SYSTEM
from assets.raw.ingest import PROVENANCE_COLUMNS
from assets.raw.reference import ECB_RATES, FUNDERS, ORGID_PREFIXES
from assets.staging.quarantine import STG_QUARANTINE, replace_quarantine
from assets.staging.registry import StagingPair

EU_FUNDER_ID = "XM-DAC-918"
EU_FUNDER_NAME = "European Union (cohesion policy funds)"
AGGREGATE_DATE = "2014-01-01"
PERIOD_STARTS = (2000, 2007, 2014, 2021, 2028)
SHARE_RATE_TYPE = "DECIMAL(9,8)"
INCONSISTENCY_TOLERANCE = 0.01  # share of the total

# Managing-authority names -> level, first list that matches wins (see module doc).
STRONG_LOCAL_KEYWORDS = (
    "combined authority", "county council", "city council", "borough council",
    "district council", "regional council", "regional government", "regional authority",
    "regional office", "marshal", "voivodeship", "województw", "urząd marszałkowski", "landes",
    "generalitat", "junta de", "comunidad autónoma", "gobierno de", "conseil régional",
    "région", "regione", "provincia", "province of", "municipal", "obshtina", "община", "gmina",
    "comune", "ayuntamiento", "kraj", "megye", "županij", "county",
)  # fmt: skip
NATIONAL_KEYWORDS = (
    "ministry", "minister", "ministère", "ministerio", "ministero", "ministerium", "ministério",
    "ministerie", "ministerstv", "government of", "national", "federal", "state secretariat",
)  # fmt: skip
WEAK_LOCAL_KEYWORDS = (
    "region", "city", "council", "district", "local", "metropolitan", "oblast", "prefecture",
)  # fmt: skip


def _keyword_regex(words: tuple[str, ...]) -> str:
    # a keyword starts a word; RE2's \b is ASCII-only, so spell the boundary for any script
    alternatives = "|".join(w.replace("'", "''") for w in words)
    return f"(^|[^\\p{{L}}\\p{{N}}])({alternatives})"


_STRONG_LOCAL_RE = _keyword_regex(STRONG_LOCAL_KEYWORDS)
_NATIONAL_RE = _keyword_regex(NATIONAL_KEYWORDS)
_WEAK_LOCAL_RE = _keyword_regex(WEAK_LOCAL_KEYWORDS)

MACROS = f"""
-- no subqueries (see assets/common/money.py): the value is bound once through a one-element list
CREATE OR REPLACE TEMP MACRO ft_kohesio_rate(x) AS
  list_transform([coalesce(
      TRY_CAST(ft_clean_amount_text(replace(x, '%', '')) AS DECIMAL(18,8)),
      TRY_CAST(TRY_CAST(ft_clean_amount_text(replace(x, '%', '')) AS DOUBLE) AS DECIMAL(18,8))
    )], lambda ft_r: CASE
    WHEN ft_r IS NULL OR ft_r < 0 THEN NULL
    WHEN contains(coalesce(x, ''), '%') OR ft_r > 1
      THEN CASE WHEN ft_r <= 100 THEN CAST(ft_r / 100 AS {SHARE_RATE_TYPE}) END
    ELSE CAST(ft_r AS {SHARE_RATE_TYPE})
  END)[1];
-- wide enough for any DECIMAL(18,4) amount times a rate with 8 decimals
CREATE OR REPLACE TEMP MACRO ft_kohesio_times_rate(amount, rate) AS
  CAST(amount AS DECIMAL(38,4)) * CAST(rate AS DECIMAL(38,8));
CREATE OR REPLACE TEMP MACRO ft_kohesio_period_start(code) AS
  list_transform(
    [TRY_CAST(regexp_extract(upper(trim(code)), '^(20[0-9]{{2}})[A-Z]{{2}}', 1) AS INTEGER)],
    lambda ft_y: CASE WHEN ft_y IN ({", ".join(str(y) for y in PERIOD_STARTS)})
                      THEN make_date(ft_y, 1, 1) END)[1];
CREATE OR REPLACE TEMP MACRO ft_ma_keyword_level(name) AS
  CASE WHEN regexp_matches(lower(name), '{_STRONG_LOCAL_RE}') THEN 'local'
       WHEN regexp_matches(lower(name), '{_NATIONAL_RE}') THEN 'national'
       WHEN regexp_matches(lower(name), '{_WEAK_LOCAL_RE}') THEN 'local'
       ELSE 'national' END;
CREATE OR REPLACE TEMP MACRO ft_ma_keyword_basis(name) AS
  CASE WHEN regexp_matches(lower(name), '{_STRONG_LOCAL_RE}')
         THEN 'managing authority name: regional/local body ("'
              || regexp_extract(lower(name), '{_STRONG_LOCAL_RE}', 2) || '")'
       WHEN regexp_matches(lower(name), '{_NATIONAL_RE}')
         THEN 'managing authority name: national body ("'
              || regexp_extract(lower(name), '{_NATIONAL_RE}', 2) || '")'
       WHEN regexp_matches(lower(name), '{_WEAK_LOCAL_RE}')
         THEN 'managing authority name: regional/local word ("'
              || regexp_extract(lower(name), '{_WEAK_LOCAL_RE}', 2) || '")'
       ELSE 'managing authority: national by default (no regional/local keyword in the name)' END;
"""


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    install_name_macros(con)
    install_macro_script(con, __name__, MACROS)


STG_KOHESIO = TableSpec(
    schema="staging",
    name="stg_kohesio",
    grain="one Kohesio operation (operations layout) or one beneficiary x region aggregate "
    "(beneficiaries layout); unique record_id",
    description="Kohesio cohesion-policy records typed and split into their EU share and their "
    "national/regional co-financing (both EUR), with the managing authority that controls the "
    "stream, the co-financing funder's level and a note where the published total, EU budget "
    "and co-financing rate disagree. Each row becomes up to two awards in "
    "intermediate.int_funding_awards. Rows that fail a rule are in staging.stg_quarantine.",
    columns=(
        Column("record_id", "VARCHAR", "Operation_Unique_Identifier, or BEN-<hash>-<n> for a beneficiary aggregate.", False),
        Column("layout", "VARCHAR", "operations | beneficiaries.", False),
        Column("project_ref", "VARCHAR", "Operation_Unique_Identifier (links governance projects.kohesio_id); NULL for aggregates."),
        Column("operation_name", "VARCHAR", "Operation name (English when published)."),
        Column("beneficiary_name", "VARCHAR", "Beneficiary as published (any script).", False),
        Column("beneficiary_name_latin", "VARCHAR", "Transliterated / English beneficiary name, when published."),
        Column("recipient_org_ref", "VARCHAR", "Beneficiary_Id as org-id, else a name-based FTNAME- id.", False),
        Column("recipient_ref_basis", "VARCHAR", "org-id | name | transliterated name.", False),
        Column("fund_code", "VARCHAR", "ERDF | ESF | CF | ... as published."),
        Column("programme_code", "VARCHAR", "Programme CCI as published."),
        Column("programme_name", "VARCHAR", "Programme name as published."),
        Column("programme", "VARCHAR", "Stream label: fund + programme (operations) or 'Cohesion policy 2014-2020, <Country>' (aggregates).", False),
        Column("title", "VARCHAR", "Operation name, or a description of the aggregate."),
        Column("country", "VARCHAR", "Country as published."),
        Column("region", "VARCHAR", "Region as published."),
        Column("project_count", "INTEGER", "Number of Projects behind an aggregate."),
        Column("start_date", "DATE", "Operation_Start_Date."),
        Column("end_date", "DATE", "Operation_End_Date."),
        Column("award_date", "DATE", "Date of both awards: start date, else programme period start, else (aggregates) 2014-01-01.", False),
        Column("award_date_basis", "VARCHAR", "Which rule gave award_date.", False),
        Column("currency_original", "VARCHAR", "Always EUR (Kohesio publishes euros).", False),
        Column("total_amount_original", AMOUNT_TYPE, "Total eligible expenditure / Total Budget (derived as EU budget / rate when only those are published)."),
        Column("eu_amount_original", AMOUNT_TYPE, "EU share: Project_EU_Budget / EU Contribution, else total x rate.", False),
        Column("cofinancing_amount_original", AMOUNT_TYPE, "National/regional co-financing: total - EU share; NULL when no total is known."),
        Column("cofinancing_rate", SHARE_RATE_TYPE, "Published EU co-financing rate as a fraction (85% -> 0.85)."),
        Column("eu_amount_basis", "VARCHAR", "published | total x rate.", False),
        Column("cofinancing_basis", "VARCHAR", "total - EU budget | total x (1 - rate) | EU budget / rate - EU budget; NULL when unknown."),
        Column("total_amount_eur", AMOUNT_TYPE, "total_amount_original in EUR."),
        Column("eu_amount_eur", AMOUNT_TYPE, "eu_amount_original in EUR.", False),
        Column("cofinancing_amount_eur", AMOUNT_TYPE, "cofinancing_amount_original in EUR."),
        Column("fx_rate", RATE_TYPE, "Units of currency per EUR (1).", False),
        Column("fx_date", "DATE", "Rate date (the award date).", False),
        Column("managing_authority_ref", "VARCHAR", "ManagingAuthority_Id as org-id, else a name reference; NULL for aggregates."),
        Column("managing_authority_name", "VARCHAR", "ManagingAuthority as published."),
        Column("cofinancing_funder_ref", "VARCHAR", "Funder of the co-financing: the managing authority, or 'national co-financing, <Country>'.", False),
        Column("cofinancing_funder_name", "VARCHAR", "Its name.", False),
        Column("cofinancing_level", "VARCHAR", "national | local (or what the funders reference / org-id prefix says) for the co-financing.", False),
        Column("cofinancing_level_basis", "VARCHAR", "Which rule set cofinancing_level.", False),
        Column("consistency_note", "VARCHAR", "Set when total, EU budget and rate disagree by more than 1% of the total, or EU budget > total."),
        Column("note", "VARCHAR", "Date rule used for aggregates, identical lines, recovered malformed lines, unknown co-financing."),
        *PROVENANCE_COLUMNS,
    ),
    order_by=("record_id",),
)  # fmt: skip


def _title(field: str) -> str:
    """The field's title in the row's own layout, for reasons an analyst can match to the file."""
    ops, ben = {
        "total": ("Total_Eligible_Expenditure_amount", "Total Budget"),
        "eu": ("Project_EU_Budget", "EU Contribution"),
    }[field]
    return f"CASE WHEN r.layout = '{OPERATIONS}' THEN '{ops}' ELSE '{ben}' END"


_AGG_KEY = """'BEN-' || upper(left(md5(concat_ws('|', coalesce(r.country, ''), coalesce(r.region, ''),
  coalesce(r.beneficiary, ''), coalesce(r.beneficiary_latin, ''), coalesce(r.total_eligible, ''),
  coalesce(r.eu_budget, ''), coalesce(r.project_count, ''))), 12))"""

# Every parsed or normalised value is computed once, in the inner selects, and the checks and
# the later stages read those columns: DuckDB inlines macros and does not share repeated calls,
# so each repetition of e.g. ft_parse_amount costs a full evaluation.
_PARSED_SQL = f"""
SELECT r.*,
  CASE WHEN r.layout = '{OPERATIONS}'
       THEN coalesce(r._start, ft_kohesio_period_start(r.programme_code))
       ELSE DATE '{AGGREGATE_DATE}' END AS _award_date,
  TRY_CAST(r.project_count AS INTEGER) AS _projects,
  CASE WHEN r.layout = '{OPERATIONS}' THEN nullif(trim(r.operation_id), '') ELSE {_AGG_KEY} END AS _key
FROM (
  SELECT r.*,
    ft_parse_amount(r.total_eligible) AS _total,
    ft_parse_amount(r.eu_budget) AS _eu_pub,
    ft_kohesio_rate(r.cofinancing_rate) AS _rate,
    ft_parse_date(r.start_date) AS _start,
    ft_parse_date(r.end_date) AS _end,
    ft_org_id(r.beneficiary_id) AS _ben_org_id,
    CASE WHEN r.layout = '{OPERATIONS}'
         THEN coalesce(ft_org_id(r.managing_authority_id), ma._ref)
    END AS _ma_ref
  FROM {RAW_KOHESIO.qualified} r
  -- a handful of managing authorities: their name reference is computed once per name
  LEFT JOIN (
    SELECT managing_authority, ft_name_org_id_any(managing_authority) AS _ref
    FROM (SELECT DISTINCT managing_authority FROM {RAW_KOHESIO.qualified})
  ) ma ON ma.managing_authority = r.managing_authority
) r
"""

# the name reference is only needed (and only computed) without a usable Beneficiary_Id
_REFS_SQL = f"""
SELECT p.*,
  CASE WHEN p._ben_org_id IS NULL THEN ft_name_org_id_any(p.beneficiary) END AS _ben_name_ref
FROM ({_PARSED_SQL}) p
"""

_CHECKED_SQL = f"""
SELECT r.*,
  CASE
    WHEN r.layout = '{OPERATIONS}' AND r._key IS NULL
      THEN 'missing Operation_Unique_Identifier'
    WHEN r._recipient_ref IS NULL THEN 'no usable Beneficiary name or identifier'
    WHEN r.total_eligible IS NOT NULL AND r._total IS NULL
      THEN 'unparseable ' || {_title("total")} || ': ' || r.total_eligible
    WHEN r.eu_budget IS NOT NULL AND r._eu_pub IS NULL
      THEN 'unparseable ' || {_title("eu")} || ': ' || r.eu_budget
    WHEN r.cofinancing_rate IS NOT NULL AND r._rate IS NULL
      THEN 'unparseable or out-of-range Cofinancing_Rate (expected 0-1 or 0-100%): '
           || r.cofinancing_rate
    WHEN r._total < 0 OR r._eu_pub < 0
      THEN 'negative ' || {_title("total")} || ' or ' || {_title("eu")}
    WHEN r.layout = '{BENEFICIARIES}' AND r._eu_pub IS NULL
      THEN 'EU Contribution empty: the aggregate cannot be split into EU share and national '
           || 'co-financing (this layout has no co-financing rate)'
    WHEN r._eu_pub IS NULL AND (r._total IS NULL OR r._rate IS NULL)
      THEN 'no EU amount: Project_EU_Budget empty and no Total_Eligible_Expenditure_amount with '
           || 'a Cofinancing_Rate to derive it'
    WHEN r.project_count IS NOT NULL AND r._projects IS NULL
      THEN 'unparseable Number of Projects: ' || r.project_count
    WHEN r.start_date IS NOT NULL AND r._start IS NULL
      THEN 'unparseable Operation_Start_Date: ' || r.start_date
    WHEN r.end_date IS NOT NULL AND r._end IS NULL
      THEN 'unparseable Operation_End_Date: ' || r.end_date
    WHEN r.layout = '{OPERATIONS}' AND r._ma_ref IS NULL
      THEN 'missing ManagingAuthority: no body to attribute the co-financing and control to'
    WHEN r.layout = '{BENEFICIARIES}' AND nullif(trim(r.country), '') IS NULL
      THEN 'missing Country: no Member State to attribute the national co-financing to'
    WHEN r.layout = '{OPERATIONS}' AND r._award_date IS NULL
      THEN 'no Operation_Start_Date and no programming period in Programme_Code (a CCI such as '
           || '2014UK16RFOP001) to date the award'
  END AS _reason
FROM (
  SELECT r.*,
    coalesce(r._ben_org_id, r._ben_name_ref, ft_name_org_id_any(r.beneficiary_latin))
      AS _recipient_ref
  FROM ({_REFS_SQL}) r
) r
"""

_RANKED_SQL = """
SELECT c.source_file, c.source_row, c.source_locator, c._reason,
  CASE WHEN c.layout = 'beneficiaries'
       THEN c._key || '-' || row_number() OVER (
              PARTITION BY c.source_file, c._key ORDER BY c.source_row)
       ELSE c._key END AS _record_id,
  first_value(c.source_locator) OVER (
    PARTITION BY c.source_file, c._key ORDER BY c.source_row) AS _first_in_file
FROM _stg_koh_checked c
"""

# The ranking is a subquery of the de-duplication, not a table of its own (one copy less),
# and both windows sort only the columns they read: the wide row joins back once
# (source_file + source_row is unique in raw).
_DEDUP_SQL = f"""
SELECT c.*, k.* EXCLUDE (source_file, source_row, source_locator, _reason)
FROM _stg_koh_checked c
JOIN (
  SELECT r.*,
    CASE WHEN r._reason IS NULL THEN row_number() OVER (
      PARTITION BY r._reason IS NULL, r._record_id ORDER BY r.source_file, r.source_row) END AS _rank,
    first_value(r.source_file || ' ' || r.source_locator) OVER (
      PARTITION BY r._reason IS NULL, r._record_id ORDER BY r.source_file, r.source_row) AS _first_seen
  FROM ({_RANKED_SQL}) r
) k ON k.source_file = c.source_file AND k.source_row = c.source_row
"""

_MONEY_SOURCE = f"""
SELECT d.*,
  CAST(coalesce(d._eu_pub, round(ft_kohesio_times_rate(d._total, d._rate), 2)) AS {AMOUNT_TYPE}) AS amount_original,
  'EUR' AS currency_original, d._award_date AS fx_on
FROM _stg_koh_dedup d WHERE d._reason IS NULL AND d._rank = 1
"""


def _select_staged(levels_sql: str) -> str:
    total = f"""coalesce(m._total, CASE WHEN m._rate > 0 AND m._eu_pub IS NOT NULL
                         THEN CAST(round(m._eu_pub / m._rate, 2) AS {AMOUNT_TYPE}) END)"""
    cofin = f"CAST({total} - m.amount_original AS {AMOUNT_TYPE})"
    implied = "round(ft_kohesio_times_rate(m._total, m._rate), 2)"
    return f"""
    SELECT
      m._record_id AS record_id, m.layout,
      CASE WHEN m.layout = '{OPERATIONS}' THEN m._key END AS project_ref,
      m._c_operation AS operation_name,
      coalesce(m._c_beneficiary, m._c_beneficiary_latin,
               m.beneficiary_id) AS beneficiary_name,
      m._c_beneficiary_latin AS beneficiary_name_latin,
      m._recipient_ref AS recipient_org_ref,
      CASE WHEN m._ben_org_id IS NOT NULL THEN 'org-id'
           WHEN m._ben_name_ref IS NOT NULL THEN 'name'
           ELSE 'transliterated name' END AS recipient_ref_basis,
      upper(trim(m.fund_code)) AS fund_code, trim(m.programme_code) AS programme_code,
      m._c_programme AS programme_name,
      CASE WHEN m.layout = '{OPERATIONS}'
           THEN coalesce(
             CASE WHEN contains(upper(coalesce(m._c_programme, '')),
                                upper(trim(m.fund_code)))
                  THEN m._c_programme END,  -- the name already says the fund
             nullif(concat_ws(' ', upper(trim(m.fund_code)),
                              coalesce(m._c_programme, trim(m.programme_code))), ''),
             'Cohesion policy (Kohesio)')
           ELSE 'Cohesion policy 2014-2020, ' || m._c_country END AS programme,
      CASE WHEN m.layout = '{OPERATIONS}' THEN m._c_operation
           ELSE 'Kohesio 2014-2020 beneficiary total: ' || coalesce(m._projects, 0)
                || ' project(s) in ' || concat_ws(', ', m._c_region, m._c_country)
      END AS title,
      m._c_country AS country, m._c_region AS region,
      m._projects AS project_count, m._start AS start_date, m._end AS end_date,
      m._award_date AS award_date,
      CASE WHEN m.layout = '{BENEFICIARIES}'
             THEN 'fixed {AGGREGATE_DATE}: start of the 2014-2020 programming period (aggregates carry no date)'
           WHEN m._start IS NOT NULL THEN 'Operation_Start_Date'
           ELSE 'start of the programming period of Programme_Code ' || trim(m.programme_code)
      END AS award_date_basis,
      m.currency_original,
      {total} AS total_amount_original,
      m.amount_original AS eu_amount_original,
      {cofin} AS cofinancing_amount_original,
      m._rate AS cofinancing_rate,
      CASE WHEN m._eu_pub IS NOT NULL THEN 'published' ELSE 'total x rate' END AS eu_amount_basis,
      CASE WHEN m._total IS NOT NULL AND m._eu_pub IS NOT NULL THEN 'total - EU budget'
           WHEN m._total IS NOT NULL THEN 'total x (1 - rate)'
           WHEN {total} IS NOT NULL THEN 'EU budget / rate - EU budget' END AS cofinancing_basis,
      CAST({total} / m.fx_rate AS {AMOUNT_TYPE}) AS total_amount_eur,
      m.amount_eur AS eu_amount_eur,
      CAST({cofin} / m.fx_rate AS {AMOUNT_TYPE}) AS cofinancing_amount_eur,
      m.fx_rate, m.fx_date,
      m._ma_ref AS managing_authority_ref,
      m._c_ma AS managing_authority_name,
      CASE WHEN m.layout = '{OPERATIONS}' THEN m._ma_ref
           ELSE ft_name_org_id_any('national co-financing, ' || m._c_country) END
        AS cofinancing_funder_ref,
      CASE WHEN m.layout = '{OPERATIONS}'
           THEN coalesce(m._c_ma, m._ma_ref)
           ELSE 'national co-financing, ' || m._c_country END AS cofinancing_funder_name,
      CASE WHEN m.layout = '{BENEFICIARIES}' THEN 'national'
           WHEN l.funding_level IS NOT NULL AND l.funding_level <> 'unknown' THEN l.funding_level
           ELSE ft_ma_keyword_level(coalesce(m.managing_authority, '')) END AS cofinancing_level,
      CASE WHEN m.layout = '{BENEFICIARIES}'
             THEN 'national co-financing of the Member State (this layout names no managing authority)'
           WHEN l.funding_level IS NOT NULL AND l.funding_level <> 'unknown' THEN l.funding_level_basis
           ELSE ft_ma_keyword_basis(coalesce(m.managing_authority, '')) END AS cofinancing_level_basis,
      CASE
        WHEN m._total IS NOT NULL AND m._eu_pub IS NOT NULL AND m._eu_pub > m._total
          THEN 'EU budget ' || CAST(m._eu_pub AS DECIMAL(18,2)) || ' exceeds the total '
               || CAST(m._total AS DECIMAL(18,2)) || ': no co-financing share'
        WHEN m._total > 0 AND m._eu_pub IS NOT NULL AND m._rate IS NOT NULL
             AND abs(m._eu_pub - {implied}) > {INCONSISTENCY_TOLERANCE} * m._total
          THEN 'EU budget ' || CAST(m._eu_pub AS DECIMAL(18,2)) || ' differs from total x Cofinancing_Rate = '
               || {implied} || ' by ' || round(100 * abs(m._eu_pub - {implied}) / m._total, 2)
               || '% of the total (more than 1%); shares use total - EU budget'
      END AS consistency_note,
      nullif(concat_ws('; ',
        CASE WHEN m.layout = '{BENEFICIARIES}'
             THEN 'award date {AGGREGATE_DATE} is a fixed date: the start of the 2014-2020 programming '
                  || 'period (Kohesio beneficiary aggregates carry no date)'
             WHEN m._start IS NULL
             THEN 'no Operation_Start_Date: award date is the start of the programming period of '
                  || trim(m.programme_code) END,
        CASE WHEN m.layout = '{BENEFICIARIES}' AND m._record_id <> m._key || '-1'
             THEN 'identical to ' || m._first_in_file || ' of this file: kept as published (Kohesio '
                  || 'lists distinct beneficiaries that share a name and amounts); check before adding up' END,
        CASE WHEN {total} IS NULL
             THEN 'co-financing unknown: no total eligible expenditure and no rate to derive it' END,
        m.parse_note), '') AS note,
      m.source_system, m.source_file, m.source_row, m.source_locator, m.file_sha256, m.loaded_at
    FROM (
      -- cleaned once: DuckDB does not share repeated macro calls
      SELECT *,
        ft_clean_name(operation_name) AS _c_operation, ft_clean_name(beneficiary) AS _c_beneficiary,
        ft_clean_name(beneficiary_latin) AS _c_beneficiary_latin,
        ft_clean_name(programme_name) AS _c_programme, ft_clean_name(country) AS _c_country,
        ft_clean_name(region) AS _c_region, ft_clean_name(managing_authority) AS _c_ma
      FROM _stg_koh_money
    ) m LEFT JOIN ({levels_sql}) l ON l.org_ref = m._ma_ref
    WHERE m.fx_note IS NULL
    """


def build_stg_kohesio(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Rebuild the staging table and this source's quarantine rows. Returns (staged, quarantined)."""
    install_macros(con)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _stg_koh_checked AS {_CHECKED_SQL}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _stg_koh_dedup AS {_DEDUP_SQL}")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _stg_koh_money AS "
        + to_eur_sql(_MONEY_SOURCE, ECB_RATES.qualified)
    )
    quarantined = replace_quarantine(
        con,
        SOURCE_SYSTEM,
        STG_KOHESIO.name,
        f"""SELECT source_file, file_sha256, source_row, source_locator, _record_id AS record_id,
             coalesce(_reason, 'duplicate ' || CASE WHEN layout = '{OPERATIONS}'
                        THEN 'Operation_Unique_Identifier ' || _key
                        ELSE 'beneficiary line (same values in another file)' END
                      || ': kept the first copy, ' || _first_seen) AS reason
           FROM _stg_koh_dedup WHERE _reason IS NOT NULL OR _rank > 1
           UNION ALL
           SELECT source_file, file_sha256, source_row, source_locator, _record_id,
                  'no ECB rate: ' || fx_note
           FROM _stg_koh_money WHERE fx_note IS NOT NULL""",
    )
    levels = funder_levels_sql("SELECT _ma_ref AS org_ref FROM _stg_koh_money")
    staged = rebuild_table(con, STG_KOHESIO, _select_staged(levels))
    con.execute("DROP TABLE _stg_koh_checked; DROP TABLE _stg_koh_dedup; DROP TABLE _stg_koh_money")
    return staged, quarantined


@dg.asset(
    key=STG_KOHESIO.asset_key,
    group_name="staging",
    kinds={"duckdb", "sql"},
    description=STG_KOHESIO.doc,
    deps=[RAW_KOHESIO.asset_key, ECB_RATES.asset_key, FUNDERS.asset_key, ORGID_PREFIXES.asset_key],
    tags={"source_system": SOURCE_SYSTEM},
)
@skip_unchanged
def stg_kohesio(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        staged, quarantined = build_stg_kohesio(con)
        context.log.info(
            f"{STG_KOHESIO.qualified}: {staged} records staged, {quarantined} quarantined "
            f"(see {STG_QUARANTINE.qualified})"
        )
        return materialize_result(con, STG_KOHESIO, {"rows_quarantined": quarantined})


STAGING_PAIRS = (StagingPair(SOURCE_SYSTEM, RAW_KOHESIO, STG_KOHESIO),)
AWARDS_DEPS = (STG_KOHESIO,)
_SHARE_COMMON = """recipient_org_ref, beneficiary_name AS recipient_name,
  'organisation' AS recipient_kind, programme, project_ref, title, award_date"""
AWARDS_SQL = f"""
SELECT source_system || ':' || record_id || ':eu_share' AS award_id, 'eu_share' AS award_type,
  '{EU_FUNDER_ID}' AS funder_org_ref, '{EU_FUNDER_NAME}' AS funder_name, {_SHARE_COMMON},
  eu_amount_original AS amount_original, currency_original, eu_amount_eur AS amount_eur,
  fx_rate, fx_date, 'eu' AS funding_level,
  CASE WHEN layout = '{OPERATIONS}' THEN managing_authority_ref ELSE '{EU_FUNDER_ID}' END
    AS controller_org_ref,
  CASE WHEN layout = '{OPERATIONS}' THEN managing_authority_name ELSE '{EU_FUNDER_NAME}' END
    AS controller_name,
  CASE WHEN layout = '{OPERATIONS}' THEN 'managing_authority' ELSE 'funder' END AS control_basis,
  source_system, source_file, source_row, record_id AS source_record_id
FROM {STG_KOHESIO.qualified} WHERE eu_amount_original > 0
UNION ALL
SELECT source_system || ':' || record_id || ':co_financing', 'co_financing',
  cofinancing_funder_ref, cofinancing_funder_name, {_SHARE_COMMON},
  cofinancing_amount_original, currency_original, cofinancing_amount_eur,
  fx_rate, fx_date, cofinancing_level,
  CASE WHEN layout = '{OPERATIONS}' THEN managing_authority_ref ELSE cofinancing_funder_ref END,
  CASE WHEN layout = '{OPERATIONS}' THEN managing_authority_name ELSE cofinancing_funder_name END,
  CASE WHEN layout = '{OPERATIONS}' THEN 'managing_authority' ELSE 'funder' END,
  source_system, source_file, source_row, record_id
FROM {STG_KOHESIO.qualified} WHERE cofinancing_amount_original > 0
"""
