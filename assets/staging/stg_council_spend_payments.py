"""`staging.stg_council_spend_payments`: council spend lines typed, payer and recipient resolved.

Rules, in the order a row is checked (the first failure is the quarantine reason):
amount parses (`£1,234.56`, `(123.45)`, `-50`: credits stay negative payments), the payment date
parses (dd/mm/yyyy, dd-Mon-yy, ISO; a trailing `00:00:00` time is ignored), there is a
supplier name or company number, the payer is known, and an ECB rate exists for the date.

Payer (the council): the body column's value looked up in council_spend/councils.csv; else the
first file-name glob there matching the file; else the body value itself when it is an org-id
(`GB-LAE-OXF`); else the row is quarantined ("unknown payer").

Recipient: `GB-COH-<company number>` when the file publishes one, else `GB-CHC-<charity
number>`, else a name-based `FTNAME-` id. A supplier the council withheld ("Redacted personal
data", "REDACTED", "Personal data redacted"...) is kept as a payment to one redacted recipient
per council, `FT-REDACTED-<council org-id>`, so its money is counted, never dropped.

Split lines (same transaction number, amount, date and supplier within a file) are payments
as published and all kept. The same file saved under two names is NOT deduplicated here: the
suite flags it (identical file_sha256 under two file names).
"""

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.fingerprint import skip_unchanged
from assets.common.levels import funder_levels_sql
from assets.common.macros import install_macro_script
from assets.common.money import AMOUNT_TYPE, RATE_TYPE, to_eur_sql
from assets.common.sql import install_macros
from assets.common.tables import Column, TableSpec, materialize_result, refresh_table
from assets.raw.council_spend import (
    BODY_KEY_SQL,
    COUNCILS_FILE,
    FOLDER,
    RAW_COUNCILS,
    RAW_SPEND,
    SOURCE_SYSTEM,
)
from assets.raw.ingest import PROVENANCE_COLUMNS
from assets.raw.reference import ECB_RATES, FUNDERS, ORGID_PREFIXES
from assets.staging.per_file import FileCacheRefresh, refresh_file_cache
from assets.staging.quarantine import STG_QUARANTINE, replace_quarantine
from assets.staging.registry import StagingPair

CURRENCY = "GBP"
REDACTED_PREFIX = "FT-REDACTED-"
UNKNOWN_PAYER = f"unknown payer: add it to {FOLDER}/{COUNCILS_FILE}"

STG_PAYMENTS = TableSpec(
    schema="staging",
    name="stg_council_spend_payments",
    grain="one payment line of one council spend file (split lines and credits kept as published)",
    description="Council 'spend over £500' payments typed and checked: amount in GBP as "
    "DECIMAL (credits negative) with its EUR value at the ECB rate of the payment date, the "
    "paying council as an org-id (from council_spend/councils.csv), the supplier as a canonical "
    "organisation reference (redacted suppliers as one redacted recipient per council), funding "
    "level from the council. Rows that fail a rule are in staging.stg_quarantine instead.",
    columns=(
        Column("payment_id", "VARCHAR", "Unique id of the line: source_file#source_row.", False),
        Column("transaction_id", "VARCHAR", "Transaction number as published (repeats on split lines)."),
        Column("council_org_ref", "VARCHAR", "Org-id of the paying council.", False),
        Column("council_name", "VARCHAR", "Council name from councils.csv, else the body name in the file."),
        Column("payer_basis", "VARCHAR", "How the council was found: councils.csv name | councils.csv file glob '<glob>' | body column org-id.", False),
        Column("body_name", "VARCHAR", "Body name as written in the file, if it has that column."),
        Column("supplier_name", "VARCHAR", "Supplier name as published, spaces collapsed ('Redacted personal data' kept as written)."),
        Column("supplier_id", "VARCHAR", "The council's own supplier id (not a registered number)."),
        Column("supplier_company_number", "VARCHAR", "Companies House number, zero-padded to 8, where published."),
        Column("recipient_org_ref", "VARCHAR", "Canonical recipient: GB-COH-<company no.>, GB-CHC-<charity no.>, FTNAME-<name hash>, or FT-REDACTED-<council org-id>.", False),
        Column("recipient_kind", "VARCHAR", "organisation | redacted (the council withheld the supplier's name).", False),
        Column("recipient_ref_basis", "VARCHAR", "company number | charity number | name | redacted.", False),
        Column("amount_original", AMOUNT_TYPE, "Amount in GBP as published; negative for credits.", False),
        Column("vat_amount", AMOUNT_TYPE, "VAT in GBP, where published and parseable."),
        Column("currency_original", "VARCHAR", "Always GBP (UK councils publish in pounds).", False),
        Column("amount_eur", AMOUNT_TYPE, "Amount in EUR at the ECB reference rate of fx_date.", False),
        Column("fx_rate", RATE_TYPE, "GBP per EUR used for amount_eur.", False),
        Column("fx_date", "DATE", "ECB fixing day of fx_rate: the payment date or the last business day before it.", False),
        Column("payment_date", "DATE", "Payment date.", False),
        Column("department", "VARCHAR", "Department / service area / organisational unit."),
        Column("expense_type", "VARCHAR", "Expense type / expenditure category."),
        Column("expense_code", "VARCHAR", "Expenditure / account code."),
        Column("description", "VARCHAR", "Narrative or purpose, where published."),
        Column("capital_or_revenue", "VARCHAR", "Capital or revenue, as published."),
        Column("is_credit", "BOOLEAN", "True for a negative amount (credit note, refund, reversal).", False),
        Column("funding_level", "VARCHAR", "local | national | eu | private | international | unknown, from the council's org-id.", False),
        Column("funding_level_basis", "VARCHAR", "Which rule set funding_level.", False),
        *PROVENANCE_COLUMNS,
    ),
    order_by=("source_file", "source_row"),
)  # fmt: skip

# Words a withheld-supplier placeholder is made of; it must contain one of REDACTION_WORDS.
REDACTION_WORDS = ("redacted", "redaction", "withheld")
PLACEHOLDER_WORDS = (
    *REDACTION_WORDS, "personal", "data", "information", "info", "details", "detail", "name",
    "supplier", "payee", "recipient", "individual", "private", "privacy", "protection", "due",
    "to", "for", "under", "the", "of", "as", "act", "gdpr", "dpa", "reasons", "sensitive",
)  # fmt: skip


def _list(words: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{w}'" for w in words) + "]"


MACROS = f"""
CREATE OR REPLACE TEMP MACRO ft_cs_words(x) AS
  string_split(trim(regexp_replace(lower(CAST(x AS VARCHAR)), '[^a-z]+', ' ', 'g')), ' ');
CREATE OR REPLACE TEMP MACRO ft_cs_is_redacted(x) AS
  coalesce(list_has_any(ft_cs_words(x), {_list(REDACTION_WORDS)})
    AND list_bool_and(list_transform(ft_cs_words(x),
                                     lambda w: list_contains({_list(PLACEHOLDER_WORDS)}, w))), false);
-- Excel-style exports add a midnight time to day-first dates; ISO datetimes are handled by
-- ft_parse_date itself
CREATE OR REPLACE TEMP MACRO ft_cs_date(x) AS
  ft_parse_date(regexp_replace(trim(CAST(x AS VARCHAR)),
                               '^(\\d{{1,2}}[/.-]\\w{{1,3}}[/.-]\\d{{2,4}})\\s+\\d{{1,2}}:\\d{{2}}(:\\d{{2}})?$', '\\1'));
"""


def install_council_spend_macros(con: duckdb.DuckDBPyConnection) -> None:
    install_macros(con)
    install_macro_script(con, __name__, MACROS)


def is_redacted_name(text: str | None) -> bool:
    """Python view of `ft_cs_is_redacted`, evaluated by DuckDB (one implementation)."""
    con = duckdb.connect()
    install_council_spend_macros(con)
    row = con.execute("SELECT ft_cs_is_redacted(?)", [text]).fetchone()
    con.close()
    return bool(row and row[0])


def _body_key(col: str) -> str:
    return BODY_KEY_SQL.format(col=col)


def _file_sql(source: str) -> str:
    """Council of each file of `source` by councils.csv file globs (the file name below the
    source folder, or its base name)."""
    return f"""
SELECT f.source_file,
  arg_min(c.council_org_id, c.source_row) AS org_id,
  arg_min(c.council_name, c.source_row) AS name,
  arg_min(c.match, c.source_row) AS pattern
FROM (SELECT DISTINCT source_file FROM {source}) f
JOIN {RAW_COUNCILS.qualified} c
  ON c.match_kind = 'file'
 AND (lower(regexp_extract(f.source_file, '[^/]+$')) GLOB lower(c.match)
      OR lower(regexp_replace(f.source_file, '^{FOLDER}/', '')) GLOB lower(c.match))
GROUP BY f.source_file
"""


def _checked_sql(source: str) -> str:
    """Every raw row of `source` parsed, with the first failed rule as `_reason`."""
    by_file = _file_sql(source)
    return f"""
WITH by_name AS (
  SELECT {_body_key("match")} AS k, arg_min(council_org_id, source_row) AS org_id,
         arg_min(council_name, source_row) AS name
  FROM {RAW_COUNCILS.qualified} WHERE match_kind = 'name' GROUP BY 1
),
by_file AS ({by_file}),
parsed AS (
  SELECT r.*,
    ft_parse_amount(r.amount) AS _amount,
    ft_parse_amount(r.vat_amount) AS _vat,
    ft_cs_date(r.payment_date) AS _date,
    ft_clean_name(r.supplier_name) AS _supplier,
    ft_company_number(r.supplier_company_number) AS _company_text,
    ft_org_id_from_charity_number(r.supplier_charity_number) AS _charity_text,
    ft_cs_is_redacted(r.supplier_name) AS _redacted,
    ft_org_id(coalesce(n.org_id, f.org_id,
      CASE WHEN regexp_full_match(upper(trim(r.body_name)), '[A-Z]{{2}}-[A-Z]{{2,5}}-[A-Z0-9]+')
           THEN r.body_name END)) AS _payer_ref,
    CASE WHEN n.org_id IS NOT NULL THEN n.name ELSE f.name END AS _payer_name,
    CASE
      WHEN n.org_id IS NOT NULL THEN 'councils.csv name'
      WHEN f.org_id IS NOT NULL THEN 'councils.csv file glob ''' || f.pattern || ''''
      ELSE 'body column org-id'
    END AS _payer_basis
  FROM {source} r
  LEFT JOIN by_name n ON n.k = {_body_key("r.body_name")}
  LEFT JOIN by_file f ON f.source_file = r.source_file
),
refs AS (
  -- a registered company number only: 8 digits, or two letters and six digits
  SELECT * EXCLUDE (_company_text, _charity_text),
    CASE WHEN regexp_full_match(_company_text, '[0-9]{{8}}|[A-Z]{{2}}[0-9]{{6}}')
         THEN _company_text END AS _company_number,
    CASE WHEN NOT regexp_full_match(coalesce(_company_text, ''), '[0-9]{{8}}|[A-Z]{{2}}[0-9]{{6}}')
         THEN _charity_text END AS _charity_ref
  FROM parsed
)
SELECT *,
  CASE
    WHEN amount IS NULL THEN 'missing amount'
    WHEN _amount IS NULL THEN 'unparseable amount: ' || amount
    WHEN payment_date IS NULL THEN 'missing payment date'
    WHEN _date IS NULL THEN 'unparseable payment date: ' || payment_date
    WHEN _supplier IS NULL AND _company_number IS NULL THEN 'missing supplier'
    WHEN _payer_ref IS NULL THEN '{UNKNOWN_PAYER} (body name '
      || coalesce('''' || body_name || '''', 'none') || ', file '
      || regexp_extract(source_file, '[^/]+$') || ')'
  END AS _reason
FROM refs
"""


_RECIPIENT_SQL = f"""
CASE WHEN _redacted THEN '{REDACTED_PREFIX}' || _payer_ref
     WHEN _company_number IS NOT NULL THEN 'GB-COH-' || _company_number
     WHEN _charity_ref IS NOT NULL THEN _charity_ref
     ELSE ft_name_org_id(_supplier) END
"""

_RECIPIENT_BASIS_SQL = """
CASE WHEN _redacted THEN 'redacted'
     WHEN _company_number IS NOT NULL THEN 'company number'
     WHEN _charity_ref IS NOT NULL THEN 'charity number'
     ELSE 'name' END
"""


# Per raw row (kept per file: see assets/staging/per_file.py).
PAYMENT_ROWS = "staging.stg_council_spend_payment_rows"
PAYMENT_ROWS_GRAIN = (
    "Grain: one raw council spend row, checked, typed and converted to EUR. Internal file "
    "cache of staging.stg_council_spend_payments (rows with _reason, fx_note or no EUR "
    "amount are quarantined, the rest staged)."
)


def payment_rows_sql(source: str) -> str:
    """Checked, typed and converted rows of `source` (raw rows): all of staging's work."""
    good = f"""
      SELECT *, _amount AS amount_original, '{CURRENCY}' AS currency_original, _date AS fx_on
      FROM checked WHERE _reason IS NULL"""
    levels = funder_levels_sql("SELECT _payer_ref AS org_ref FROM checked WHERE _reason IS NULL")
    # the checks run once: the CTE is read three times (money, levels, rejected rows)
    return f"""
    WITH checked AS MATERIALIZED ({_checked_sql(source)}),
         money AS ({to_eur_sql(good, ECB_RATES.qualified)}),
         levels AS ({levels})
    SELECT
      m.source_file || '#' || m.source_row AS payment_id, m.transaction_id,
      m._payer_ref AS council_org_ref,
      coalesce(m._payer_name, ft_clean_name(m.body_name)) AS council_name,
      m._payer_basis AS payer_basis, ft_clean_name(m.body_name) AS body_name,
      m._supplier AS supplier_name, m.supplier_id,
      m._company_number AS supplier_company_number,
      {_RECIPIENT_SQL} AS recipient_org_ref,
      CASE WHEN m._redacted THEN 'redacted' ELSE 'organisation' END AS recipient_kind,
      {_RECIPIENT_BASIS_SQL} AS recipient_ref_basis,
      m.amount_original, m._vat AS vat_amount, m.currency_original,
      m.amount_eur, m.fx_rate, m.fx_date, m._date AS payment_date,
      ft_clean_name(m.department) AS department, ft_clean_name(m.expense_type) AS expense_type,
      ft_clean_name(m.expense_code) AS expense_code, ft_clean_name(m.description) AS description,
      ft_clean_name(m.capital_or_revenue) AS capital_or_revenue,
      m.amount_original < 0 AS is_credit,
      l.funding_level, l.funding_level_basis,
      m.source_system, m.source_file, m.source_row, m.source_locator, m.file_sha256, m.loaded_at,
      CAST(NULL AS VARCHAR) AS _reason, m.fx_note
    FROM money m LEFT JOIN levels l ON l.org_ref = m._payer_ref
    UNION ALL BY NAME
    SELECT transaction_id, source_system, source_file, source_row, source_locator, file_sha256,
      loaded_at, _reason
    FROM checked WHERE _reason IS NOT NULL
    """


def build_stg_council_spend_payments(
    con: duckdb.DuckDBPyConnection,
) -> tuple[int, int, FileCacheRefresh]:
    """Rebuild the staging table and this source's quarantine rows from the per-file cache.

    Returns (staged, quarantined, what the cache refresh did).
    """
    install_council_spend_macros(con)
    refresh = refresh_file_cache(
        con,
        cache=PAYMENT_ROWS,
        raw=RAW_SPEND.qualified,
        rows_sql=payment_rows_sql,
        context_inputs=(
            RAW_COUNCILS.qualified,
            ECB_RATES.qualified,
            FUNDERS.qualified,
            ORGID_PREFIXES.qualified,
        ),
        grain=PAYMENT_ROWS_GRAIN,
    )
    quarantined = replace_quarantine(
        con,
        SOURCE_SYSTEM,
        STG_PAYMENTS.name,
        f"""SELECT source_file, file_sha256, source_row, source_locator,
             transaction_id AS record_id, _reason AS reason
           FROM {PAYMENT_ROWS} WHERE _reason IS NOT NULL
           UNION ALL
           SELECT source_file, file_sha256, source_row, source_locator,
             transaction_id, 'no ECB rate for the payment date: ' || fx_note
           FROM {PAYMENT_ROWS}
           WHERE _reason IS NULL AND (fx_note IS NOT NULL OR amount_eur IS NULL)""",
    )
    # a new file writes its own rows only (the table's grain is per file)
    staged = refresh_table(
        con,
        STG_PAYMENTS,
        f"SELECT * FROM {PAYMENT_ROWS} "
        "WHERE _reason IS NULL AND fx_note IS NULL AND amount_eur IS NOT NULL",
        "source_file",
    ).rows
    return staged, quarantined, refresh


@dg.asset(
    key=STG_PAYMENTS.asset_key,
    group_name="staging",
    kinds={"duckdb", "sql"},
    description=STG_PAYMENTS.doc,
    deps=[
        RAW_SPEND.asset_key,
        RAW_COUNCILS.asset_key,
        ECB_RATES.asset_key,
        FUNDERS.asset_key,
        ORGID_PREFIXES.asset_key,
    ],
    tags={"source_system": SOURCE_SYSTEM},
)
@skip_unchanged
def stg_council_spend_payments(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        staged, quarantined, refresh = build_stg_council_spend_payments(con)
        context.log.info(
            f"{STG_PAYMENTS.qualified}: {staged} payments staged, {quarantined} quarantined "
            f"(see {STG_QUARANTINE.qualified}); raw files: {refresh.summary()}"
        )
        return materialize_result(
            con,
            STG_PAYMENTS,
            {"rows_quarantined": quarantined, "raw_files_derived": refresh.summary()},
        )


STAGING_PAIRS = (StagingPair(SOURCE_SYSTEM, RAW_SPEND, STG_PAYMENTS),)
AWARDS_DEPS = (STG_PAYMENTS,)
AWARDS_SQL = f"""
SELECT source_system || ':' || payment_id AS award_id, 'payment' AS award_type,
  council_org_ref AS funder_org_ref, council_name AS funder_name, recipient_org_ref,
  CASE WHEN recipient_kind = 'redacted' THEN NULL ELSE supplier_name END AS recipient_name,
  recipient_kind, department AS programme, CAST(NULL AS VARCHAR) AS project_ref,
  expense_type AS title, payment_date AS award_date,
  amount_original, currency_original, amount_eur, fx_rate, fx_date, funding_level,
  council_org_ref AS controller_org_ref, council_name AS controller_name,
  'funder' AS control_basis,
  source_system, source_file, source_row, coalesce(transaction_id, source_locator) AS source_record_id
FROM {STG_PAYMENTS.qualified}
"""
