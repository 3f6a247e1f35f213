"""`marts.procurement_contracts` and the contract flows added to `marts.money_flows`.

Links from a contract to a governance project, first match wins, each stated in `link_basis`:
1. `ocid`: the process id is one of the ocids a project declares in projects.csv;
2. `budget project id`: OCDS planning.budget.projectID equals a project id;
3. `eu funds reference`: the EU-funds reference published with the contract (TED
   EU_PROGR_RELATED text, eForms BT-5011/BT-722...) contains a Kohesio operation id or CORDIS
   id that a project declares;
4. `buyer is the partnership company`: the buyer is the company of a partnership that runs
   exactly one project (the partnership is always given when the buyer is its company).

Contract awards and payments: an award is a commitment and council spend lines are the payments
that honour it. To never count the same money twice, `marts.money_flows` gets a
`contract_award` flow (buyer -> supplier, the award value) only when it holds no payment from
that buyer to that supplier; otherwise the payments already carry the money and the award value
stays in `marts.procurement_contracts`.
"""

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.fingerprint import skip_unchanged
from assets.common.money import AMOUNT_TYPE, RATE_TYPE
from assets.common.tables import Column, Refresh, TableSpec, materialize_result, refresh_table
from assets.intermediate.int_control_edges import IDENTITY_READ, PARTNERSHIP_NODES_SQL
from assets.intermediate.int_money_flows import INT_MONEY_FLOWS
from assets.intermediate.int_org_identity import INT_ORG_IDENTITY, canonical_org_id_sql
from assets.intermediate.int_procurement_awards import (
    INT_PROCUREMENT_AWARDS,
    contract_project_links_sql,
)
from assets.staging import stg_governance

PROCUREMENT_CONTRACTS = TableSpec(
    schema="marts",
    name="procurement_contracts",
    grain="one contracting process (OCDS ocid or TED notice) x award x supplier",
    description="Who bought what from whom: buyer, supplier, value as published and in EUR, "
    "award date, procedure, number of bidders, CPV, the source record, and the governance "
    "project / partnership the contract belongs to with how that link was made.",
    columns=(
        Column("contract_award_id", "VARCHAR", "Unique: source_system:process:award:supplier.", False),
        Column("process_id", "VARCHAR", "OCDS ocid or TED notice id.", False),
        Column("award_id", "VARCHAR", "Award (lot/contract) within the process.", False),
        Column("buyer_org_id", "VARCHAR", "Canonical id of the buyer (marts.organisations).", False),
        Column("buyer_name", "VARCHAR", "Buyer name."),
        Column("supplier_org_id", "VARCHAR", "Canonical id of the supplier (marts.organisations).", False),
        Column("supplier_name", "VARCHAR", "Supplier name."),
        Column("title", "VARCHAR", "Tender or contract title."),
        Column("award_date", "DATE", "Award, signature or dispatch date."),
        Column("value_original", AMOUNT_TYPE, "Award value as published."),
        Column("currency_original", "VARCHAR", "Currency of value_original."),
        Column("value_eur", AMOUNT_TYPE, "Value in EUR at the ECB rate of fx_date."),
        Column("fx_rate", RATE_TYPE, "Units of currency per EUR."),
        Column("fx_date", "DATE", "ECB fixing day used."),
        Column("procedure_type", "VARCHAR", "Procedure as published."),
        Column("number_of_bidders", "BIGINT", "Tenders received, where published."),
        Column("cpv", "VARCHAR", "Main CPV code."),
        Column("eu_funded", "BOOLEAN", "The notice says EU funds pay for it."),
        Column("eu_programme", "VARCHAR", "EU programme / project reference published with it."),
        Column("project_id", "VARCHAR", "Governance project the contract belongs to, if linked."),
        Column("partnership_id", "VARCHAR", "Partnership the contract belongs to (through the project or the buyer)."),
        Column("link_basis", "VARCHAR", "ocid | budget project id | eu funds reference | buyer is the partnership company; NULL = not linked."),
        Column("counted_in_money_flows", "BOOLEAN", "True when the award is also a money flow (no payment between buyer and supplier already carries it).", False),
        Column("source_system", "VARCHAR", "ocds | ted.", False),
        Column("source_file", "VARCHAR", "Source file relative to FUNDTRACE_RAW_DIR.", False),
        Column("source_record_id", "VARCHAR", "Release or notice id.", False),
    ),
    order_by=("contract_award_id",),
)  # fmt: skip


LINKED_CONTRACTS_SQL = f"""
WITH c AS (
  SELECT p.*, {canonical_org_id_sql("p.buyer_org_ref")} AS buyer_id,
         {canonical_org_id_sql("p.supplier_org_ref")} AS supplier_id
  FROM {INT_PROCUREMENT_AWARDS.qualified} p
),
projects AS (SELECT project_id, partnership_id FROM {stg_governance.STG_PROJECTS.qualified}),
nodes AS ({PARTNERSHIP_NODES_SQL}),
by_id AS ({contract_project_links_sql()}),
by_buyer AS (
  SELECT c.contract_award_id, min(p.project_id) AS project_id
  FROM c JOIN nodes n ON n.node_id = c.buyer_id JOIN projects p USING (partnership_id)
  GROUP BY c.contract_award_id HAVING count(DISTINCT p.project_id) = 1
)
SELECT c.contract_award_id, c.process_id, c.award_id, c.buyer_id AS buyer_org_id, c.buyer_name,
  c.supplier_id AS supplier_org_id, c.supplier_name, c.title, c.award_date, c.value_original,
  c.currency_original, c.value_eur, c.fx_rate, c.fx_date, c.procedure_type,
  c.number_of_tenders AS number_of_bidders, c.cpv, c.eu_funded, c.eu_programme,
  coalesce(i.project_id, b.project_id) AS project_id,
  coalesce(p.partnership_id,
           (SELECT min(n.partnership_id) FROM nodes n WHERE n.node_id = c.buyer_id)) AS partnership_id,
  coalesce(i.link_basis,
           CASE WHEN EXISTS (SELECT 1 FROM nodes n WHERE n.node_id = c.buyer_id)
                THEN 'buyer is the partnership company' END) AS link_basis,
  EXISTS (SELECT 1 FROM {INT_MONEY_FLOWS.qualified} f
          WHERE f.flow_type = 'contract_award' AND f.flow_id = c.contract_award_id)
    AS counted_in_money_flows,
  c.source_system, c.source_file, c.source_record_id
FROM c
LEFT JOIN by_id i USING (contract_award_id)
LEFT JOIN by_buyer b USING (contract_award_id)
LEFT JOIN projects p ON p.project_id = coalesce(i.project_id, b.project_id)
"""


def build_procurement_contracts(con: duckdb.DuckDBPyConnection) -> Refresh:
    from assets.common.sql import install_macros

    install_macros(con)
    return refresh_table(con, PROCUREMENT_CONTRACTS, LINKED_CONTRACTS_SQL, "contract_award_id")


@dg.asset(
    key=PROCUREMENT_CONTRACTS.asset_key,
    group_name="marts",
    kinds={"duckdb", "sql"},
    description=PROCUREMENT_CONTRACTS.doc,
    deps=[
        INT_PROCUREMENT_AWARDS.asset_key,
        INT_ORG_IDENTITY.asset_key,
        stg_governance.STG_PROJECTS.asset_key,
        stg_governance.STG_PARTNERSHIPS.asset_key,
        INT_MONEY_FLOWS.asset_key,
    ],
)
# of identity it reads the canonical ids and (partnership nodes) the spellings of registered
# organisations, of the money flows the contract flows' ids: a new funding file of known
# organisations leaves these, and the contracts, as they were
@skip_unchanged(
    reads={
        INT_ORG_IDENTITY.qualified: IDENTITY_READ,
        INT_MONEY_FLOWS.qualified: f"{INT_MONEY_FLOWS.qualified}[flow_id] "
        "WHERE flow_type = 'contract_award'",
    }
)
def procurement_contracts(duckdb: DuckDBResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        built = build_procurement_contracts(con)
        return materialize_result(con, PROCUREMENT_CONTRACTS, built.metadata(), preview_rows=10)
