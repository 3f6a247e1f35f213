"""`staging.stg_360giving_grants`: typed 360Giving grants, money in EUR, canonical org refs."""

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.fingerprint import skip_unchanged
from assets.common.levels import funder_levels_sql
from assets.common.money import AMOUNT_TYPE, RATE_TYPE, to_eur_sql
from assets.common.sql import install_macros
from assets.common.tables import Column, TableSpec, materialize_result, refresh_table
from assets.raw.ingest import PROVENANCE_COLUMNS
from assets.raw.reference import ECB_RATES, FUNDERS, ORGID_PREFIXES
from assets.raw.threesixty_giving import RAW_GRANTS, SOURCE_SYSTEM
from assets.staging.per_file import FileCacheRefresh, refresh_file_cache
from assets.staging.quarantine import STG_QUARANTINE, replace_quarantine
from assets.staging.registry import StagingPair

STG_GRANTS = TableSpec(
    schema="staging",
    name="stg_360giving_grants",
    grain="one 360Giving grant (unique grant_id across all files)",
    description="360Giving grants typed and checked: amount as DECIMAL with its currency and the "
    "EUR value at the ECB rate of the award date, funder and recipient as canonical "
    "organisation references, funding level from the funder. Rows that fail a rule are in "
    "staging.stg_quarantine instead.",
    columns=(
        Column("grant_id", "VARCHAR", "360Giving Identifier of the grant.", False),
        Column("title", "VARCHAR", "Grant title."),
        Column("description", "VARCHAR", "Grant description."),
        Column("amount_original", AMOUNT_TYPE, "Amount Awarded in the published currency.", False),
        Column("currency_original", "VARCHAR", "ISO 4217 currency as published (upper-cased).", False),
        Column("amount_eur", AMOUNT_TYPE, "Amount in EUR at the ECB reference rate of fx_date (grants with no ECB rate for their currency and date are quarantined, not guessed).", False),
        Column("fx_rate", RATE_TYPE, "Units of currency_original per EUR used for amount_eur."),
        Column("fx_date", "DATE", "ECB fixing day of fx_rate: the award date or the last business day before it."),
        Column("award_date", "DATE", "Award Date.", False),
        Column("funder_org_ref", "VARCHAR", "Normalised org-id of the funding organisation (or a name-based FTNAME- id).", False),
        Column("funder_name", "VARCHAR", "Funding Org:Name as published."),
        Column("recipient_org_ref", "VARCHAR", "Canonical reference of the recipient: registered org-id first (company, charity), then the published id, then a name-based FTNAME- id.", False),
        Column("recipient_name", "VARCHAR", "Recipient Org:Name as published; NULL for individuals (names of individuals are not kept)."),
        Column("recipient_kind", "VARCHAR", "organisation | individual.", False),
        Column("recipient_ref_basis", "VARCHAR", "How recipient_org_ref was chosen: org-id | company number | charity number | self-assigned id | name.", False),
        Column("recipient_published_id", "VARCHAR", "Recipient identifier exactly as published."),
        Column("programme_code", "VARCHAR", "Grant Programme:Code."),
        Column("programme_title", "VARCHAR", "Grant Programme:Title."),
        Column("beneficiary_location", "VARCHAR", "Beneficiary Location:Name(s), '; '-separated."),
        Column("beneficiary_country", "VARCHAR", "Beneficiary Location:Country Code."),
        Column("funding_level", "VARCHAR", "local | national | eu | private | international | unknown, from the funder.", False),
        Column("funding_level_basis", "VARCHAR", "Which rule set funding_level (funder reference, org-id prefix, none).", False),
        *PROVENANCE_COLUMNS,
    ),
    order_by=("grant_id",),
)  # fmt: skip


# Everything a row needs, with the first failed rule as `_reason`. Each parsed value and org
# reference is computed once in the inner selects and read from there by the checks and the
# final select: DuckDB inlines macros and does not share repeated calls, so every repetition
# cost a full evaluation.


def _checked_sql(source: str) -> str:
    return f"""
SELECT p.*,
  CASE
    WHEN p._grant_id IS NULL THEN 'missing Identifier'
    WHEN p.amount_awarded IS NULL THEN 'missing Amount Awarded'
    WHEN p._amount IS NULL
      THEN 'unparseable or out-of-range Amount Awarded: ' || p.amount_awarded
    WHEN p._currency IS NULL
      THEN 'invalid Currency: ' || coalesce(p.currency, '(empty)')
    WHEN p._award_date IS NULL
      THEN 'missing or unparseable Award Date: ' || coalesce(p.award_date, '(empty)')
    WHEN p._funder_ref IS NULL
      THEN 'no usable Funding Org:Identifier or Name'
    WHEN coalesce(p._rcp_org_id, p._rcp_name_id, p._rcp_ind_id) IS NULL
      THEN 'no usable recipient identifier or name'
  END AS _reason
FROM (
  SELECT o.*,
    coalesce(o._funder_org_id, ft_name_org_id(o.funding_org_name)) AS _funder_ref,
    -- the fallbacks are only read when the published identifier is no registered org-id
    CASE WHEN o._rcp_org_id IS NULL OR starts_with(o._rcp_org_id, '360G-')
         THEN ft_org_id_from_company_number(o.recipient_org_company_number) END AS _rcp_company_id,
    CASE WHEN o._rcp_org_id IS NULL OR starts_with(o._rcp_org_id, '360G-')
         THEN ft_org_id_from_charity_number(o.recipient_org_charity_number) END AS _rcp_charity_id,
    CASE WHEN o._rcp_org_id IS NULL THEN ft_name_org_id(o.recipient_org_name) END AS _rcp_name_id,
    CASE WHEN o._rcp_org_id IS NULL THEN ft_org_id(o.recipient_ind_identifier) END AS _rcp_ind_id
  FROM (
    SELECT r.*,
      nullif(trim(r.identifier), '') AS _grant_id,
      ft_parse_amount(r.amount_awarded) AS _amount,
      ft_parse_currency(r.currency) AS _currency,
      ft_parse_date(r.award_date) AS _award_date,
      ft_org_id(r.funding_org_identifier) AS _funder_org_id,
      ft_org_id(r.recipient_org_identifier) AS _rcp_org_id
    FROM {source} r
  ) o
) p
"""


_RECIPIENT_SQL = """
CASE
  WHEN _rcp_org_id IS NOT NULL AND NOT starts_with(_rcp_org_id, '360G-') THEN _rcp_org_id
  WHEN _rcp_company_id IS NOT NULL THEN _rcp_company_id
  WHEN _rcp_charity_id IS NOT NULL THEN _rcp_charity_id
  WHEN _rcp_org_id IS NOT NULL THEN _rcp_org_id
  WHEN _rcp_name_id IS NOT NULL THEN _rcp_name_id
  ELSE _rcp_ind_id
END
"""

_RECIPIENT_BASIS_SQL = """
CASE
  WHEN _rcp_org_id IS NOT NULL AND NOT starts_with(_rcp_org_id, '360G-') THEN 'org-id'
  WHEN _rcp_company_id IS NOT NULL THEN 'company number'
  WHEN _rcp_charity_id IS NOT NULL THEN 'charity number'
  WHEN _rcp_org_id IS NOT NULL THEN 'self-assigned id'
  WHEN _rcp_name_id IS NOT NULL THEN 'name'
  ELSE 'self-assigned id'
END
"""


# Per raw row, before de-duplication (kept per file: see assets/staging/per_file.py).
GRANT_ROWS = "staging.stg_360giving_grant_rows"
GRANT_ROWS_GRAIN = (
    "Grain: one raw 360Giving row, checked and typed, before de-duplication across files. "
    "Internal file cache of staging.stg_360giving_grants (only rows with _reason NULL can "
    "be staged; the first copy of a grant_id wins)."
)


def grant_rows_sql(source: str) -> str:
    """Checked, typed and converted rows of `source` (raw rows): the per-row work."""
    # the checks run once: the CTE is read three times (money, levels, rejected rows)
    good = """
      SELECT *, _amount AS amount_original, _currency AS currency_original,
             _award_date AS fx_on
      FROM checked WHERE _reason IS NULL"""
    levels = funder_levels_sql("SELECT _funder_ref AS org_ref FROM checked")
    return f"""
    WITH checked AS MATERIALIZED ({_checked_sql(source)}),
         money AS ({to_eur_sql(good, ECB_RATES.qualified)}),
         levels AS ({levels})
    SELECT
      m._grant_id AS grant_id, ft_clean_name(m.title) AS title, m.description,
      m.amount_original, m.currency_original, m.amount_eur, m.fx_rate, m.fx_date,
      m._award_date AS award_date,
      m._funder_ref AS funder_org_ref, ft_clean_name(m.funding_org_name) AS funder_name,
      {_RECIPIENT_SQL} AS recipient_org_ref,
      ft_clean_name(m.recipient_org_name) AS recipient_name,
      CASE WHEN m.recipient_org_identifier IS NULL AND m.recipient_org_name IS NULL
            AND m.recipient_ind_identifier IS NOT NULL THEN 'individual'
           ELSE 'organisation' END AS recipient_kind,
      {_RECIPIENT_BASIS_SQL} AS recipient_ref_basis,
      coalesce(m.recipient_org_identifier, m.recipient_ind_identifier) AS recipient_published_id,
      m.grant_programme_code AS programme_code,
      ft_clean_name(m.grant_programme_title) AS programme_title,
      m.beneficiary_location_name AS beneficiary_location,
      upper(m.beneficiary_location_country_code) AS beneficiary_country,
      l.funding_level, l.funding_level_basis,
      m.source_system, m.source_file, m.source_row, m.source_locator, m.file_sha256, m.loaded_at,
      CAST(NULL AS VARCHAR) AS _reason, m.fx_note, m.fx_on
    FROM money m LEFT JOIN levels l ON l.org_ref = m._funder_ref
    UNION ALL BY NAME
    SELECT _grant_id AS grant_id, source_system, source_file, source_row, source_locator,
      file_sha256, loaded_at, _reason
    FROM checked WHERE _reason IS NOT NULL
    """


def build_stg_360giving_grants(
    con: duckdb.DuckDBPyConnection,
) -> tuple[int, int, FileCacheRefresh]:
    """Rebuild the staging table and this source's quarantine rows from the per-file cache.

    Returns (staged, quarantined, what the cache refresh did).
    """
    install_macros(con)
    refresh = refresh_file_cache(
        con,
        cache=GRANT_ROWS,
        raw=RAW_GRANTS.qualified,
        rows_sql=grant_rows_sql,
        context_inputs=(ECB_RATES.qualified, FUNDERS.qualified, ORGID_PREFIXES.qualified),
        grain=GRANT_ROWS_GRAIN,
    )
    # the first copy of an Identifier across files wins; only the narrow ranking is copied
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _stg_360_ranked AS
        SELECT rowid AS _rid,
          CASE WHEN _reason IS NULL THEN row_number() OVER (
            PARTITION BY _reason IS NULL, grant_id ORDER BY source_file, source_row) END AS _rank,
          first_value(source_file || ' ' || source_locator) OVER (
            PARTITION BY _reason IS NULL, grant_id ORDER BY source_file, source_row) AS _first_seen
        FROM {GRANT_ROWS}
        """
    )
    ranked = f"SELECT g.*, r._rank, r._first_seen FROM {GRANT_ROWS} g JOIN _stg_360_ranked r ON r._rid = g.rowid"
    quarantined = replace_quarantine(
        con,
        SOURCE_SYSTEM,
        STG_GRANTS.name,
        f"""SELECT source_file, file_sha256, source_row, source_locator, grant_id AS record_id,
             coalesce(_reason, 'duplicate Identifier ' || grant_id || ': kept the first copy, '
                      || _first_seen) AS reason
           FROM ({ranked}) WHERE _reason IS NOT NULL OR _rank > 1
           UNION ALL
           SELECT source_file, file_sha256, source_row, source_locator, grant_id,
             'cannot convert to EUR: ' || fx_note || ' (' || currency_original || ' on '
             || CAST(fx_on AS VARCHAR) || ')'
           FROM ({ranked}) WHERE _rank = 1 AND fx_note IS NOT NULL""",
    )
    # a new file writes the grants it adds or changes, not all of them
    staged = refresh_table(
        con, STG_GRANTS, f"SELECT * FROM ({ranked}) WHERE _rank = 1 AND fx_note IS NULL", "grant_id"
    ).rows
    con.execute("DROP TABLE _stg_360_ranked")
    return staged, quarantined, refresh


@dg.asset(
    key=STG_GRANTS.asset_key,
    group_name="staging",
    kinds={"duckdb", "sql"},
    description=STG_GRANTS.doc,
    deps=[RAW_GRANTS.asset_key, ECB_RATES.asset_key, FUNDERS.asset_key, ORGID_PREFIXES.asset_key],
    tags={"source_system": SOURCE_SYSTEM},
)
@skip_unchanged
def stg_360giving_grants(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        staged, quarantined, refresh = build_stg_360giving_grants(con)
        context.log.info(
            f"{STG_GRANTS.qualified}: {staged} grants staged, {quarantined} quarantined "
            f"(see {STG_QUARANTINE.qualified}); raw files: {refresh.summary()}"
        )
        return materialize_result(
            con,
            STG_GRANTS,
            {"rows_quarantined": quarantined, "raw_files_derived": refresh.summary()},
        )


STAGING_PAIRS = (StagingPair(SOURCE_SYSTEM, RAW_GRANTS, STG_GRANTS),)
AWARDS_DEPS = (STG_GRANTS,)
AWARDS_SQL = f"""
SELECT source_system || ':' || grant_id AS award_id, 'grant' AS award_type,
  funder_org_ref, funder_name, recipient_org_ref,
  CASE WHEN recipient_kind = 'individual' THEN NULL ELSE recipient_name END AS recipient_name,
  recipient_kind, coalesce(programme_title, programme_code) AS programme,
  CAST(NULL AS VARCHAR) AS project_ref, title, award_date,
  amount_original, currency_original, amount_eur, fx_rate, fx_date, funding_level,
  funder_org_ref AS controller_org_ref, funder_name AS controller_name, 'funder' AS control_basis,
  source_system, source_file, source_row, grant_id AS source_record_id
FROM {STG_GRANTS.qualified}
"""
