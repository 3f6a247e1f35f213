"""`staging.stg_private_funding`: private funding template rows, typed, in EUR.

Rules, first failed one quarantines the row (reason names the column and value):
- a funder and a recipient: the org-id (`ft_org_id`) when given, else a name-based `FTNAME-`
  reference (names in any script);
- instrument one of equity, loan, sponsorship, in_kind, grant (case, spaces and hyphens are
  ignored: `In-kind` = `in_kind`);
- amount parseable and greater than zero; currency a three-letter code; date parseable;
- an ECB rate for the currency on or before the date (`to_eur_sql`); otherwise quarantined with
  that reason, never guessed.

Funding level: from the funder's id through `funder_levels_sql` (funders reference, then org-id
prefix), so a council investing through the template stays `local`. When no rule knows the
funder (a name-only funder, an id scheme without a level) the level is `private`: the one
source-based default the brief allows, because this template exists for private funding
(`funding_level_basis` says so).

Identity: the template has no record id. `PRV-` + a hash of the row's typed values + its
occurrence number among identical rows of the same file. Identical rows inside one file are
kept (two equal tranches are possible) and flagged in `note`; the same row in a second file is
quarantined as a duplicate.
"""

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.fingerprint import skip_unchanged
from assets.common.levels import funder_levels_sql
from assets.common.money import AMOUNT_TYPE, RATE_TYPE, to_eur_sql
from assets.common.tables import Column, TableSpec, materialize_result, rebuild_table
from assets.common.unicode_names import install_macros
from assets.raw.ingest import PROVENANCE_COLUMNS
from assets.raw.private_funding import RAW_PRIVATE, SOURCE_SYSTEM
from assets.raw.reference import ECB_RATES, FUNDERS, ORGID_PREFIXES
from assets.staging.quarantine import STG_QUARANTINE, replace_quarantine
from assets.staging.registry import StagingPair

INSTRUMENTS = ("equity", "loan", "sponsorship", "in_kind", "grant")
DEFAULT_LEVEL = "private"
DEFAULT_LEVEL_BASIS = (
    "private template default: no funders reference entry or org-id prefix gives a level"
)

STG_PRIVATE = TableSpec(
    schema="staging",
    name="stg_private_funding",
    grain="one private funding template row (unique record_id across all files)",
    description="Private investments, loans, sponsorships, in-kind contributions and private "
    "grants typed and checked: amount as DECIMAL with its currency and the EUR value at the ECB "
    "rate of the date, funder and recipient as organisation references, funding level from the "
    "funder (default 'private' for this template). Rows that fail a rule are in "
    "staging.stg_quarantine.",
    columns=(
        Column("record_id", "VARCHAR", "PRV-<hash of the row>-<n>: stable id of the row.", False),
        Column("instrument", "VARCHAR", "equity | loan | sponsorship | in_kind | grant.", False),
        Column("funder_org_ref", "VARCHAR", "funder_id as org-id, else a name-based FTNAME- id.", False),
        Column("funder_name", "VARCHAR", "funder_name as published."),
        Column("funder_published_id", "VARCHAR", "funder_id exactly as published."),
        Column("recipient_org_ref", "VARCHAR", "recipient_id as org-id, else a name-based FTNAME- id.", False),
        Column("recipient_name", "VARCHAR", "recipient_name as published."),
        Column("recipient_published_id", "VARCHAR", "recipient_id exactly as published."),
        Column("project_ref", "VARCHAR", "project_id (governance/projects.csv)."),
        Column("award_date", "DATE", "date.", False),
        Column("amount_original", AMOUNT_TYPE, "amount in the published currency.", False),
        Column("currency_original", "VARCHAR", "ISO 4217 currency (upper-cased).", False),
        Column("amount_eur", AMOUNT_TYPE, "Amount in EUR at the ECB rate of fx_date.", False),
        Column("fx_rate", RATE_TYPE, "Units of currency_original per EUR.", False),
        Column("fx_date", "DATE", "ECB fixing day: the date or the last business day before it.", False),
        Column("source_url", "VARCHAR", "Where the information was published."),
        Column("funding_level", "VARCHAR", "From the funder id; 'private' when no rule knows the funder.", False),
        Column("funding_level_basis", "VARCHAR", "Which rule set funding_level.", False),
        Column("note", "VARCHAR", "Set for a row identical to an earlier row of the same file."),
        *PROVENANCE_COLUMNS,
    ),
    order_by=("record_id",),
)  # fmt: skip

_FUNDER_REF = "coalesce(ft_org_id(r.funder_id), ft_name_org_id_any(r.funder_name))"
_RECIPIENT_REF = "coalesce(ft_org_id(r.recipient_id), ft_name_org_id_any(r.recipient_name))"
_INSTRUMENT = "regexp_replace(lower(trim(r.instrument)), '[\\s-]+', '_', 'g')"
_INSTRUMENT_LIST = ", ".join(f"'{i}'" for i in INSTRUMENTS)

# parsed once in the inner select, read by the checks: DuckDB does not share repeated macro calls
_CHECKED_SQL = f"""
SELECT p.*,
  CASE
    WHEN p._funder_ref IS NULL THEN 'no usable funder_id or funder_name'
    WHEN p._recipient_ref IS NULL THEN 'no usable recipient_id or recipient_name'
    WHEN nullif(trim(p.instrument), '') IS NULL THEN 'missing instrument'
    WHEN p._instrument NOT IN ({_INSTRUMENT_LIST})
      THEN 'unknown instrument: ' || p.instrument || ' (allowed: {", ".join(INSTRUMENTS)})'
    WHEN p.amount IS NULL THEN 'missing amount'
    WHEN p._amount IS NULL THEN 'unparseable or out-of-range amount: ' || p.amount
    WHEN p._amount <= 0 THEN 'amount must be greater than zero: ' || p.amount
    WHEN p._currency IS NULL
      THEN 'invalid currency: ' || coalesce(p.currency, '(empty)')
    WHEN p._date IS NULL
      THEN 'missing or unparseable date: ' || coalesce(p.date, '(empty)')
  END AS _reason
FROM (
  SELECT r.*,
    {_FUNDER_REF} AS _funder_ref,
    {_RECIPIENT_REF} AS _recipient_ref,
    {_INSTRUMENT} AS _instrument,
    ft_parse_amount(r.amount) AS _amount,
    ft_parse_currency(r.currency) AS _currency,
    ft_parse_date(r.date) AS _date
  FROM {RAW_PRIVATE.qualified} r
) p
"""

_KEYED_SQL = """
SELECT c.*, c._key || '-' || row_number() OVER (
         PARTITION BY c.source_file, c._key ORDER BY c.source_row) AS _record_id,
       first_value(c.source_locator) OVER (
         PARTITION BY c.source_file, c._key ORDER BY c.source_row) AS _first_in_file
FROM (
  SELECT *, 'PRV-' || upper(left(md5(concat_ws('|', coalesce(_funder_ref, ''),
           coalesce(_recipient_ref, ''), coalesce(trim(project_id), ''), coalesce(_instrument, ''),
           coalesce(CAST(_amount AS VARCHAR), trim(amount), ''), coalesce(_currency, ''),
           coalesce(CAST(_date AS VARCHAR), trim(date), ''))), 12)) AS _key
  FROM _stg_prv_checked) c
"""

_DEDUP_SQL = """
SELECT k.*,
  CASE WHEN k._reason IS NULL THEN row_number() OVER (
    PARTITION BY k._reason IS NULL, k._record_id ORDER BY k.source_file, k.source_row) END AS _rank,
  first_value(k.source_file || ' ' || k.source_locator) OVER (
    PARTITION BY k._reason IS NULL, k._record_id ORDER BY k.source_file, k.source_row) AS _first_seen
FROM _stg_prv_keyed k
"""

_MONEY_SOURCE = """
SELECT d.*, d._amount AS amount_original, d._currency AS currency_original, d._date AS fx_on
FROM _stg_prv_dedup d WHERE d._reason IS NULL AND d._rank = 1
"""


def build_stg_private_funding(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Rebuild the staging table and this source's quarantine rows. Returns (staged, quarantined)."""
    install_macros(con)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _stg_prv_checked AS {_CHECKED_SQL}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _stg_prv_keyed AS {_KEYED_SQL}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _stg_prv_dedup AS {_DEDUP_SQL}")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _stg_prv_money AS "
        + to_eur_sql(_MONEY_SOURCE, ECB_RATES.qualified)
    )
    quarantined = replace_quarantine(
        con,
        SOURCE_SYSTEM,
        STG_PRIVATE.name,
        """SELECT source_file, file_sha256, source_row, source_locator, _record_id AS record_id,
             coalesce(_reason, 'duplicate row (same values in another file): kept the first '
                      || 'copy, ' || _first_seen) AS reason
           FROM _stg_prv_dedup WHERE _reason IS NOT NULL OR _rank > 1
           UNION ALL
           SELECT source_file, file_sha256, source_row, source_locator, _record_id,
                  'no ECB rate: ' || fx_note || ' on ' || fx_on
           FROM _stg_prv_money WHERE fx_note IS NOT NULL""",
    )
    levels = funder_levels_sql("SELECT _funder_ref AS org_ref FROM _stg_prv_money")
    select = f"""
    SELECT m._record_id AS record_id, m._instrument AS instrument,
      m._funder_ref AS funder_org_ref, ft_clean_name(m.funder_name) AS funder_name,
      m.funder_id AS funder_published_id,
      m._recipient_ref AS recipient_org_ref, ft_clean_name(m.recipient_name) AS recipient_name,
      m.recipient_id AS recipient_published_id,
      nullif(trim(m.project_id), '') AS project_ref, m._date AS award_date,
      m.amount_original, m.currency_original, m.amount_eur, m.fx_rate, m.fx_date,
      m.source_url,
      CASE WHEN l.funding_level IS NULL OR l.funding_level = 'unknown' THEN '{DEFAULT_LEVEL}'
           ELSE l.funding_level END AS funding_level,
      CASE WHEN l.funding_level IS NULL OR l.funding_level = 'unknown'
           THEN '{DEFAULT_LEVEL_BASIS}' ELSE l.funding_level_basis END AS funding_level_basis,
      CASE WHEN NOT ends_with(m._record_id, '-1')
           THEN 'identical to ' || m._first_in_file || ' of this file: kept (equal tranches are '
                || 'possible); check before adding up' END AS note,
      m.source_system, m.source_file, m.source_row, m.source_locator, m.file_sha256, m.loaded_at
    FROM _stg_prv_money m LEFT JOIN ({levels}) l ON l.org_ref = m._funder_ref
    WHERE m.fx_note IS NULL
    """
    staged = rebuild_table(con, STG_PRIVATE, select)
    con.execute(
        "DROP TABLE _stg_prv_checked; DROP TABLE _stg_prv_keyed; DROP TABLE _stg_prv_dedup; "
        "DROP TABLE _stg_prv_money"
    )
    return staged, quarantined


@dg.asset(
    key=STG_PRIVATE.asset_key,
    group_name="staging",
    kinds={"duckdb", "sql"},
    description=STG_PRIVATE.doc,
    deps=[RAW_PRIVATE.asset_key, ECB_RATES.asset_key, FUNDERS.asset_key, ORGID_PREFIXES.asset_key],
    tags={"source_system": SOURCE_SYSTEM},
)
@skip_unchanged
def stg_private_funding(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        staged, quarantined = build_stg_private_funding(con)
        context.log.info(
            f"{STG_PRIVATE.qualified}: {staged} rows staged, {quarantined} quarantined "
            f"(see {STG_QUARANTINE.qualified})"
        )
        return materialize_result(con, STG_PRIVATE, {"rows_quarantined": quarantined})


STAGING_PAIRS = (StagingPair(SOURCE_SYSTEM, RAW_PRIVATE, STG_PRIVATE),)
AWARDS_DEPS = (STG_PRIVATE,)
AWARDS_SQL = f"""
SELECT source_system || ':' || record_id AS award_id, instrument AS award_type,
  funder_org_ref, funder_name, recipient_org_ref, recipient_name,
  'organisation' AS recipient_kind, CAST(NULL AS VARCHAR) AS programme, project_ref,
  'private ' || replace(instrument, '_', '-') || coalesce(' for project ' || project_ref, '')
    AS title,
  award_date, amount_original, currency_original, amount_eur, fx_rate, fx_date, funding_level,
  funder_org_ref AS controller_org_ref, funder_name AS controller_name,
  'funder' AS control_basis,
  source_system, source_file, source_row, record_id AS source_record_id
FROM {STG_PRIVATE.qualified}
"""
