"""`intermediate.int_money_flows`: every award or payment from every staged source, one shape."""

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.fingerprint import skip_unchanged
from assets.common.levels import funder_levels_sql
from assets.common.money import AMOUNT_TYPE, RATE_TYPE
from assets.common.slices import Slice, SliceRefresh, refresh_slices, tables_in
from assets.common.sql import install_macros
from assets.common.tables import Column, TableSpec, materialize_result
from assets.intermediate.int_funding_awards import FUNDING_SOURCES, INT_FUNDING_AWARDS
from assets.intermediate.int_procurement_awards import (
    INT_PROCUREMENT_AWARDS,
    contract_project_links_sql,
)
from assets.raw.reference import FUNDERS, ORGID_PREFIXES
from assets.staging import stg_governance

INT_MONEY_FLOWS = TableSpec(
    schema="intermediate",
    name="int_money_flows",
    grain="one award, payment or contract value from one source record",
    description="All money movements in one shape, with the organisations as source-level "
    "references (resolved to canonical ids through intermediate.int_org_identity).",
    columns=(
        Column("flow_id", "VARCHAR", "source_system:record id, unique.", False),
        Column("flow_type", "VARCHAR", "Award type (see int_funding_awards) or contract.", False),
        Column("from_org_ref", "VARCHAR", "Organisation reference of the payer/funder.", False),
        Column("from_name", "VARCHAR", "Payer/funder name as published."),
        Column("to_org_ref", "VARCHAR", "Organisation reference of the recipient.", False),
        Column("to_name", "VARCHAR", "Recipient name as published."),
        Column("to_kind", "VARCHAR", "organisation | individual | redacted.", False),
        Column("programme", "VARCHAR", "Programme or budget line the money came through."),
        Column("title", "VARCHAR", "What the money is for."),
        Column("flow_date", "DATE", "Award/payment date.", False),
        Column("amount_original", AMOUNT_TYPE, "Amount in the published currency.", False),
        Column("currency_original", "VARCHAR", "ISO 4217 currency as published.", False),
        Column("amount_eur", AMOUNT_TYPE, "Amount in EUR (ECB rate of fx_date)."),
        Column("fx_rate", RATE_TYPE, "Units of currency per EUR."),
        Column("fx_date", "DATE", "ECB fixing day used."),
        Column("funding_level", "VARCHAR", "Level of the funder: local|national|eu|private|international|unknown.", False),
        Column("controller_org_ref", "VARCHAR", "Body controlling the stream the money came through.", False),
        Column("controller_name", "VARCHAR", "Name of that body as published."),
        Column("control_basis", "VARCHAR", "funder | managing_authority | responsible_department | ...", False),
        Column("project_id", "VARCHAR", "Governance-register project (projects.csv) the flow is linked to."),
        Column("project_link_basis", "VARCHAR", "How project_id was found: cordis id | kohesio id | project id | ocid | budget project id | eu funds reference."),
        Column("source_system", "VARCHAR", "Source system.", False),
        Column("source_file", "VARCHAR", "File relative to FUNDTRACE_RAW_DIR.", False),
        Column("source_row", "BIGINT", "Record position in the file.", False),
        Column("source_record_id", "VARCHAR", "The record's own id in its source.", False),
    ),
    order_by=("flow_id",),
)  # fmt: skip

# source systems whose project_ref is an id that projects.csv declares in one of its columns
LINK_KINDS = {"eu_cordis": "cordis", "eu_fts": "cordis", "eu_kohesio": "kohesio"}
_KINDS_SQL = " UNION ALL ".join(
    f"SELECT '{src}' AS source_system, '{kind}' AS link_kind" for src, kind in LINK_KINDS.items()
)


def flows_from_funding(awards: str = INT_FUNDING_AWARDS.qualified) -> str:
    """Funding awards of `awards` (the table, or a subquery of some of its rows) as flows."""
    return f"""
WITH links AS ({stg_governance.PROJECT_LINKS_SQL}),
kinds AS ({_KINDS_SQL}),
by_external_id AS (
  SELECT a.award_id, min(l.project_id) AS project_id, min(l.link_kind) || ' id' AS basis
  FROM {awards} a
  JOIN kinds k ON k.source_system = a.source_system
  JOIN links l ON l.link_kind = k.link_kind AND l.link_value = a.project_ref
  GROUP BY a.award_id
),
by_project_id AS (
  SELECT a.award_id, p.project_id, 'project id' AS basis
  FROM {awards} a
  JOIN {stg_governance.STG_PROJECTS.qualified} p ON p.project_id = upper(trim(a.project_ref))
)
SELECT a.award_id AS flow_id, a.award_type AS flow_type,
  a.funder_org_ref AS from_org_ref, a.funder_name AS from_name,
  a.recipient_org_ref AS to_org_ref, a.recipient_name AS to_name, a.recipient_kind AS to_kind,
  a.programme, a.title, a.award_date AS flow_date, a.amount_original, a.currency_original,
  a.amount_eur, a.fx_rate, a.fx_date, a.funding_level,
  a.controller_org_ref, a.controller_name, a.control_basis,
  coalesce(x.project_id, p.project_id) AS project_id,
  coalesce(x.basis, p.basis) AS project_link_basis,
  a.source_system, a.source_file, a.source_row, a.source_record_id
FROM {awards} a
LEFT JOIN by_external_id x USING (award_id)
LEFT JOIN by_project_id p USING (award_id)
"""


FLOWS_FROM_FUNDING = flows_from_funding()

# Contract awards become buyer -> supplier flows unless payments between the same buyer and
# supplier are already in the data (council spend): then the payments carry that money and the
# award stays in marts.procurement_contracts only, so nothing is counted twice. Buyers are
# often published by name only, so the payer matches by reference or by normalised name.
# The same contract published by OCDS and TED (same buyer, supplier, date, value, currency)
# is one flow (OCDS kept); an award to several suppliers is split equally between them.
FLOWS_FROM_CONTRACTS = f"""
-- each distinct name keyed once: ft_name_key is a chain of regexes, and per row it was
-- most of this query (2.8 -> 0.8 s at scale 1)
WITH name_keys AS MATERIALIZED (
  SELECT name, ft_name_key(name) AS k FROM (
    SELECT buyer_name AS name FROM {INT_PROCUREMENT_AWARDS.qualified}
    UNION SELECT supplier_name FROM {INT_PROCUREMENT_AWARDS.qualified}
    UNION SELECT funder_name FROM {INT_FUNDING_AWARDS.qualified} WHERE award_type = 'payment'
    UNION SELECT recipient_name FROM {INT_FUNDING_AWARDS.qualified} WHERE award_type = 'payment')
  WHERE name IS NOT NULL
),
contracts AS (
  SELECT c.* REPLACE (
      CAST(c.value_original / n_suppliers AS {AMOUNT_TYPE}) AS value_original,
      CAST(c.value_eur / n_suppliers AS {AMOUNT_TYPE}) AS value_eur)
  FROM (
    SELECT p.*,
      count(*) OVER (PARTITION BY p.source_system, p.process_id, p.award_id) AS n_suppliers,
      row_number() OVER (
        PARTITION BY p.supplier_org_ref, coalesce(bk.k, p.buyer_org_ref),
                     p.award_date, p.value_original, p.currency_original
        ORDER BY p.source_system, p.contract_award_id) AS copy_rank
    FROM {INT_PROCUREMENT_AWARDS.qualified} p LEFT JOIN name_keys bk ON bk.name = p.buyer_name
  ) c
  WHERE c.copy_rank = 1
),
payments AS (
  SELECT DISTINCT a.funder_org_ref, fk.k AS payer_key, a.recipient_org_ref, rk.k AS payee_key
  FROM {INT_FUNDING_AWARDS.qualified} a
  LEFT JOIN name_keys fk ON fk.name = a.funder_name
  LEFT JOIN name_keys rk ON rk.name = a.recipient_name
  WHERE a.award_type = 'payment'
),
keyed AS (
  SELECT c.contract_award_id, c.supplier_org_ref, c.buyer_org_ref,
         sk.k AS supplier_key, bk.k AS buyer_key
  FROM contracts c
  LEFT JOIN name_keys sk ON sk.name = c.supplier_name
  LEFT JOIN name_keys bk ON bk.name = c.buyer_name
),
-- (supplier by ref or name) AND (buyer by ref or name) as four equi-joins: an OR-ed join
-- condition cannot be hashed and compares every contract with every payment
paid AS (
  SELECT k.contract_award_id FROM keyed k JOIN payments p
    ON p.recipient_org_ref = k.supplier_org_ref AND p.funder_org_ref = k.buyer_org_ref
  UNION
  SELECT k.contract_award_id FROM keyed k JOIN payments p
    ON p.recipient_org_ref = k.supplier_org_ref AND p.payer_key = k.buyer_key
  UNION
  SELECT k.contract_award_id FROM keyed k JOIN payments p
    ON p.payee_key = k.supplier_key AND p.funder_org_ref = k.buyer_org_ref
  UNION
  SELECT k.contract_award_id FROM keyed k JOIN payments p
    ON p.payee_key = k.supplier_key AND p.payer_key = k.buyer_key
),
levels AS ({funder_levels_sql(f"SELECT buyer_org_ref AS org_ref FROM {INT_PROCUREMENT_AWARDS.qualified}")}),
links AS ({contract_project_links_sql()})
SELECT c.contract_award_id AS flow_id, 'contract_award' AS flow_type,
  c.buyer_org_ref AS from_org_ref, c.buyer_name AS from_name,
  c.supplier_org_ref AS to_org_ref, c.supplier_name AS to_name, 'organisation' AS to_kind,
  'procurement: ' || coalesce(c.cpv, 'no CPV') AS programme, c.title,
  c.award_date AS flow_date, c.value_original AS amount_original,
  c.currency_original, c.value_eur AS amount_eur, c.fx_rate, c.fx_date,
  coalesce(l.funding_level, 'unknown') AS funding_level,
  c.buyer_org_ref AS controller_org_ref, c.buyer_name AS controller_name,
  'contract_buyer' AS control_basis,
  k.project_id, k.link_basis AS project_link_basis,
  c.source_system, c.source_file, c.source_row, c.source_record_id
FROM contracts c
LEFT JOIN levels l ON l.org_ref = c.buyer_org_ref
LEFT JOIN links k USING (contract_award_id)
WHERE c.value_eur IS NOT NULL AND c.award_date IS NOT NULL
  -- contract_award_id is NOT NULL, so NOT IN is a plain anti-join
  AND c.contract_award_id NOT IN (SELECT contract_award_id FROM paid)
"""


_AWARDS = INT_FUNDING_AWARDS.qualified
_CONTRACTS = "flow_type = 'contract_award'"


def flow_slices() -> list[Slice]:
    """One slice per funding source and one for contracts: a new 360Giving file rebuilds the
    360Giving flows, not the other million."""
    slices = []
    for m in FUNDING_SOURCES:
        rows = f"source_system = '{m.SOURCE_SYSTEM}'"
        sql = flows_from_funding(f"(SELECT * FROM {_AWARDS} WHERE {rows})")
        slices.append(
            Slice(
                key=f"funding:{m.SOURCE_SYSTEM}",
                where=f"{rows} AND NOT {_CONTRACTS}",
                sql=sql,
                inputs=(*(t for t in tables_in(sql) if t != _AWARDS), f"{_AWARDS} WHERE {rows}"),
            )
        )
    # contracts read the payments (to leave out awards already paid), not every award
    payments = f"{_AWARDS} WHERE award_type = 'payment'"
    slices.append(
        Slice(
            key="contracts",
            where=_CONTRACTS,
            sql=FLOWS_FROM_CONTRACTS,
            inputs=(*(t for t in tables_in(FLOWS_FROM_CONTRACTS) if t != _AWARDS), payments),
        )
    )
    return slices


def build_int_money_flows(con: duckdb.DuckDBPyConnection) -> SliceRefresh:
    install_macros(con)
    # a new file rewrites its own flows, not its source's (the unique flow_id as key)
    return refresh_slices(con, INT_MONEY_FLOWS, flow_slices(), key="flow_id")


@dg.asset(
    key=INT_MONEY_FLOWS.asset_key,
    group_name="intermediate",
    kinds={"duckdb", "sql"},
    description=INT_MONEY_FLOWS.doc,
    deps=[
        INT_FUNDING_AWARDS.asset_key,
        INT_PROCUREMENT_AWARDS.asset_key,
        *(s.asset_key for s in stg_governance.PROJECT_LINKS_DEPS),
    ],
)
# buyers' funding levels read the reference tables directly
@skip_unchanged(extra_tables=(FUNDERS.qualified, ORGID_PREFIXES.qualified))
def int_money_flows(duckdb: DuckDBResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        refresh = build_int_money_flows(con)
        return materialize_result(con, INT_MONEY_FLOWS, {"slices": refresh.summary()})
