"""`intermediate.int_procurement_awards`: every awarded contract x supplier from every
procurement source (OCDS, TED), one shape.

Each procurement staging module exports `CONTRACTS_SQL` (exactly these columns, in order),
`contracts_sql(scope)` (the same, at least for the processes in `scope`) and `CONTRACTS_DEPS`
(the staging specs it reads); this model is their union.
"""

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.changes import Feed, FeedRefresh, refresh_by_feeds, same_keys
from assets.common.fingerprint import skip_unchanged
from assets.common.money import AMOUNT_TYPE, RATE_TYPE
from assets.common.tables import (
    FEED_TABLES,
    Column,
    Refresh,
    TableSpec,
    materialize_result,
    rebuild_table,
)
from assets.staging import stg_ocds, stg_ted_awards

INT_PROCUREMENT_AWARDS = TableSpec(
    schema="intermediate",
    name="int_procurement_awards",
    grain="one contracting process (OCDS ocid or TED notice) x award x supplier",
    description="Who bought what from whom: buyer, supplier, value as published and in EUR, "
    "award date, procedure, number of tenders, CPV, EU-funds references and the ids that link "
    "the process to governance projects, with provenance.",
    columns=(
        Column("contract_award_id", "VARCHAR", "Unique: source_system:process id:award id:supplier ref.", False),
        Column("process_id", "VARCHAR", "OCDS ocid, or TED notice publication number / eForms notice id.", False),
        Column("award_id", "VARCHAR", "Award id within the process (OCDS awards.id, TED lot/contract number).", False),
        Column("buyer_org_ref", "VARCHAR", "Organisation reference of the buyer (normalised org-id, else FTNAME-).", False),
        Column("buyer_name", "VARCHAR", "Buyer name as published."),
        Column("supplier_org_ref", "VARCHAR", "Organisation reference of the supplier/winner.", False),
        Column("supplier_name", "VARCHAR", "Supplier name as published."),
        Column("supplier_identifier", "VARCHAR", "Supplier identifier as published (scheme-id), for review."),
        Column("supplier_country", "VARCHAR", "Supplier country (ISO alpha-2) where published."),
        Column("title", "VARCHAR", "Tender or contract title."),
        Column("award_date", "DATE", "Award (or contract signature / notice dispatch) date."),
        Column("value_original", AMOUNT_TYPE, "Award value as published (for several suppliers on one award: the award value, not split)."),
        Column("currency_original", "VARCHAR", "ISO 4217 currency of value_original (upper-cased)."),
        Column("value_eur", AMOUNT_TYPE, "value_original in EUR at the ECB rate of fx_date."),
        Column("fx_rate", RATE_TYPE, "Units of currency per EUR."),
        Column("fx_date", "DATE", "ECB fixing day used."),
        Column("procedure_type", "VARCHAR", "Procurement method / procedure type as published (open, restricted, direct...)."),
        Column("number_of_tenders", "BIGINT", "Number of tenders/bids received, where published."),
        Column("cpv", "VARCHAR", "Main CPV code."),
        Column("eu_funded", "BOOLEAN", "True when the notice says the contract is EU-funded (TED EU_PROGR_RELATED / eForms BT-60)."),
        Column("eu_programme", "VARCHAR", "EU programme or project reference published with the contract (eForms BT-5010/5011/722...)."),
        Column("budget_project_ref", "VARCHAR", "Project id from OCDS planning.budget.projectID (links to governance projects)."),
        Column("budget_source_party", "VARCHAR", "OCDS planning.budget.budgetBreakdown sourceParty name or id, if any."),
        Column("source_system", "VARCHAR", "ocds | ted.", False),
        Column("source_file", "VARCHAR", "File relative to FUNDTRACE_RAW_DIR.", False),
        Column("source_row", "BIGINT", "Record position in the file.", False),
        Column("source_record_id", "VARCHAR", "Release id / notice id the values came from.", False),
    ),
    order_by=("contract_award_id",),
)  # fmt: skip

CONTRACT_COLUMNS = INT_PROCUREMENT_AWARDS.column_names

# procurement staging modules; each exports CONTRACTS_SQL and CONTRACTS_DEPS
PROCUREMENT_SOURCES: tuple = (stg_ocds, stg_ted_awards)


def contracts_select(scope: str | None) -> str:
    """The union of the sources' contracts; with `scope` (a relation of process ids, column
    k), at least the rows of those processes (OCDS reads only their ocids' staging rows)."""
    return " UNION ALL ".join(
        f"SELECT * FROM ({m.contracts_sql(scope)})" for m in PROCUREMENT_SOURCES
    )


def build_int_procurement_awards(con: duckdb.DuckDBPyConnection) -> Refresh | FeedRefresh:
    if not PROCUREMENT_SOURCES:
        empty = ", ".join(
            f"CAST(NULL AS {c.type}) AS {c.name}" for c in INT_PROCUREMENT_AWARDS.columns
        )
        n = rebuild_table(con, INT_PROCUREMENT_AWARDS, f"SELECT {empty} WHERE false")
        return Refresh(n, n, n, True)
    # A new OCDS file changes ~1,600 of 167k contracts at scale 1. The OCDS staging tables
    # log the ocids each write re-derived (feeds): only those processes are compared and
    # rewritten, read from their staging rows; any other change compares every process.
    read = [spec.qualified for m in PROCUREMENT_SOURCES for spec in m.CONTRACTS_DEPS]
    feeds = [Feed(t, "ocid", same_keys) for t in read if t in FEED_TABLES]
    others = [t for t in read if t not in FEED_TABLES]
    return refresh_by_feeds(
        con, INT_PROCUREMENT_AWARDS, contracts_select, "process_id", feeds, others
    )


@dg.asset(
    key=INT_PROCUREMENT_AWARDS.asset_key,
    group_name="intermediate",
    kinds={"duckdb", "sql"},
    description=INT_PROCUREMENT_AWARDS.doc,
    deps=[spec.asset_key for m in PROCUREMENT_SOURCES for spec in m.CONTRACTS_DEPS],
)
@skip_unchanged
def int_procurement_awards(duckdb: DuckDBResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        built = build_int_procurement_awards(con)
        return materialize_result(con, INT_PROCUREMENT_AWARDS, built.metadata())


def contract_project_links_sql() -> str:
    """(contract_award_id, project_id, link_basis): the governance project a contract belongs
    to, by the first rule that matches: ocid declared in projects.csv; OCDS
    planning.budget.projectID = project id; an EU-funds reference that contains a Kohesio or
    CORDIS id a project declares."""
    from assets.staging import stg_governance

    return f"""
    WITH links AS ({stg_governance.PROJECT_LINKS_SQL}),
    cand AS (
      SELECT c.contract_award_id, l.project_id, 1 AS rank, 'ocid' AS basis
      FROM {INT_PROCUREMENT_AWARDS.qualified} c
      JOIN links l ON l.link_kind = 'ocid' AND l.link_value = c.process_id
      UNION ALL
      SELECT c.contract_award_id, p.project_id, 2, 'budget project id'
      FROM {INT_PROCUREMENT_AWARDS.qualified} c
      JOIN {stg_governance.STG_PROJECTS.qualified} p
        ON p.project_id = upper(trim(c.budget_project_ref))
      UNION ALL
      SELECT c.contract_award_id, l.project_id, 3, 'eu funds reference'
      FROM {INT_PROCUREMENT_AWARDS.qualified} c
      JOIN links l ON l.link_kind IN ('kohesio', 'cordis')
        AND c.eu_programme IS NOT NULL AND contains(c.eu_programme, l.link_value)
    )
    SELECT contract_award_id, arg_min(project_id, (rank, project_id)) AS project_id,
           arg_min(basis, (rank, project_id)) AS link_basis
    FROM cand GROUP BY contract_award_id
    """
