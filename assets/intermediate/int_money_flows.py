"""`intermediate.int_money_flows`: every award or payment from every staged source, one shape."""

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.money import AMOUNT_TYPE, RATE_TYPE
from assets.common.tables import Column, TableSpec, materialize_result, rebuild_table
from assets.intermediate.int_funding_awards import INT_FUNDING_AWARDS

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
        Column("source_system", "VARCHAR", "Source system.", False),
        Column("source_file", "VARCHAR", "File relative to FUNDTRACE_RAW_DIR.", False),
        Column("source_row", "BIGINT", "Record position in the file.", False),
        Column("source_record_id", "VARCHAR", "The record's own id in its source.", False),
    ),
    order_by=("flow_id",),
)  # fmt: skip

FLOWS_FROM_FUNDING = f"""
SELECT award_id AS flow_id, award_type AS flow_type,
  funder_org_ref AS from_org_ref, funder_name AS from_name,
  recipient_org_ref AS to_org_ref, recipient_name AS to_name, recipient_kind AS to_kind,
  programme, title, award_date AS flow_date, amount_original, currency_original, amount_eur,
  fx_rate, fx_date, funding_level, source_system, source_file, source_row, source_record_id
FROM {INT_FUNDING_AWARDS.qualified}
"""


def build_int_money_flows(con: duckdb.DuckDBPyConnection) -> int:
    return rebuild_table(con, INT_MONEY_FLOWS, FLOWS_FROM_FUNDING)


@dg.asset(
    key=INT_MONEY_FLOWS.asset_key,
    group_name="intermediate",
    kinds={"duckdb", "sql"},
    description=INT_MONEY_FLOWS.doc,
    deps=[INT_FUNDING_AWARDS.asset_key],
)
def int_money_flows(duckdb: DuckDBResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        build_int_money_flows(con)
        return materialize_result(con, INT_MONEY_FLOWS)
