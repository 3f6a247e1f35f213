"""`intermediate.int_funding_awards`: every funding award, payment or commitment, one shape.

Each funding source's staging module contributes an `AWARDS_SQL` select with exactly these
columns; this model is their union. Money already carries its EUR value (ECB rate of the
award date) and the funding level is decided in staging from who the funder is.
"""

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.fingerprint import skip_unchanged
from assets.common.money import AMOUNT_TYPE, RATE_TYPE
from assets.common.slices import Slice, SliceRefresh, refresh_slices
from assets.common.tables import Column, TableSpec, materialize_result
from assets.staging import (
    stg_360giving_grants,
    stg_cordis,
    stg_council_spend_payments,
    stg_eu_fts_commitments,
    stg_kohesio,
    stg_private_funding,
)

AWARD_TYPES = (
    "grant", "payment", "commitment", "eu_share", "co_financing",
    "equity", "loan", "sponsorship", "in_kind",
)  # fmt: skip

INT_FUNDING_AWARDS = TableSpec(
    schema="intermediate",
    name="int_funding_awards",
    grain="one funding award, payment or commitment (one staged source record, or one share of it)",
    description="Funding from every level (local, national, EU, private) in one canonical "
    "shape: funder, recipient, programme, project reference, money as published and in EUR, "
    "level, the body that controls the stream, and provenance.",
    columns=(
        Column("award_id", "VARCHAR", "Unique id: source_system:record id[:share].", False),
        Column("award_type", "VARCHAR", "grant | payment | commitment | eu_share | co_financing | equity | loan | sponsorship | in_kind.", False),
        Column("funder_org_ref", "VARCHAR", "Organisation reference of the funder/payer.", False),
        Column("funder_name", "VARCHAR", "Funder name as published."),
        Column("recipient_org_ref", "VARCHAR", "Organisation reference of the recipient.", False),
        Column("recipient_name", "VARCHAR", "Recipient name as published (NULL for individuals and redacted recipients)."),
        Column("recipient_kind", "VARCHAR", "organisation | individual | redacted.", False),
        Column("programme", "VARCHAR", "Programme, fund or budget line the money came through."),
        Column("project_ref", "VARCHAR", "Source-side project id (CORDIS project id, Kohesio operation id, template project_id) used to link governance projects."),
        Column("title", "VARCHAR", "What the money is for."),
        Column("award_date", "DATE", "Award, payment or commitment date.", False),
        Column("amount_original", AMOUNT_TYPE, "Amount as published.", False),
        Column("currency_original", "VARCHAR", "ISO 4217 currency as published.", False),
        Column("amount_eur", AMOUNT_TYPE, "Amount in EUR at the ECB rate of fx_date."),
        Column("fx_rate", RATE_TYPE, "Units of currency_original per EUR."),
        Column("fx_date", "DATE", "ECB fixing day used."),
        Column("funding_level", "VARCHAR", "local | national | eu | private | international | unknown, from who the funder is.", False),
        Column("controller_org_ref", "VARCHAR", "Body that controls the stream (the funder, or e.g. the managing authority of a cohesion programme).", False),
        Column("controller_name", "VARCHAR", "Name of that body."),
        Column("control_basis", "VARCHAR", "funder | managing_authority | ...", False),
        Column("source_system", "VARCHAR", "Source system.", False),
        Column("source_file", "VARCHAR", "File relative to FUNDTRACE_RAW_DIR.", False),
        Column("source_row", "BIGINT", "Record position in the file.", False),
        Column("source_record_id", "VARCHAR", "The record's own id in its source.", False),
    ),
    order_by=("award_id",),
)  # fmt: skip

AWARD_COLUMNS = INT_FUNDING_AWARDS.column_names

# staging modules that carry money; each exports AWARDS_SQL and its TableSpecs
FUNDING_SOURCES = (
    stg_360giving_grants,
    stg_council_spend_payments,
    stg_cordis,
    stg_eu_fts_commitments,
    stg_kohesio,
    stg_private_funding,
)

# The same EU research grant is published twice: by CORDIS (per participant, with roles) and
# by the FTS (per beneficiary commitment). CORDIS wins; an FTS line whose project reference is
# a CORDIS project we hold is left out so the money is counted once.
DEDUP_SQL = f"""
NOT coalesce(source_system = 'eu_fts' AND project_ref IN (
  SELECT project_id FROM {stg_cordis.STG_PROJECTS.qualified} WHERE project_id IS NOT NULL), false)
"""


def award_slices() -> list[Slice]:
    """One slice per funding source: a new file of one source rebuilds that source's awards."""
    return [
        Slice(
            key=m.SOURCE_SYSTEM,
            where=f"source_system = '{m.SOURCE_SYSTEM}'",
            sql=f"SELECT * FROM ({m.AWARDS_SQL}) WHERE {DEDUP_SQL}",
        )
        for m in FUNDING_SOURCES
    ]


def build_int_funding_awards(con: duckdb.DuckDBPyConnection) -> SliceRefresh:
    # a new file rewrites its own awards, not its source's (the unique award_id as key)
    return refresh_slices(con, INT_FUNDING_AWARDS, award_slices(), key="award_id")


@dg.asset(
    key=INT_FUNDING_AWARDS.asset_key,
    group_name="intermediate",
    kinds={"duckdb", "sql"},
    description=INT_FUNDING_AWARDS.doc,
    deps=[
        *(spec.asset_key for m in FUNDING_SOURCES for spec in m.AWARDS_DEPS),
        stg_cordis.STG_PROJECTS.asset_key,
    ],
)
@skip_unchanged
def int_funding_awards(duckdb: DuckDBResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        refresh = build_int_funding_awards(con)
        return materialize_result(con, INT_FUNDING_AWARDS, {"slices": refresh.summary()})
