"""Marts built from the intermediate layer: organisations, funding_streams, money_flows.

Marts hold no build timestamps so that the same input gives byte-identical marts.
"""

from collections.abc import Callable

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.changes import Feed, FeedRefresh, keys_of_rows, refresh_by_feeds, same_keys
from assets.common.fingerprint import skip_unchanged
from assets.common.money import AMOUNT_TYPE, RATE_TYPE
from assets.common.tables import Column, TableSpec, materialize_result
from assets.intermediate.int_money_flows import INT_MONEY_FLOWS
from assets.intermediate.int_org_identity import INT_ORG_IDENTITY

MONEY_FLOWS = TableSpec(
    schema="marts",
    name="money_flows",
    grain="one award, payment or contract (one source record)",
    description="Who paid whom, how much, when, through which funding stream: every money "
    "movement Fundtrace knows, in EUR and as published, traceable to its source record.",
    columns=(
        Column("flow_id", "VARCHAR", "Unique id: source_system:record id.", False),
        Column("flow_type", "VARCHAR", "grant | payment | contract | investment.", False),
        Column("from_org_id", "VARCHAR", "Canonical id of the payer/funder (marts.organisations).", False),
        Column("from_name", "VARCHAR", "Payer/funder name (canonical)."),
        Column("to_org_id", "VARCHAR", "Canonical id of the recipient (marts.organisations).", False),
        Column("to_name", "VARCHAR", "Recipient name (canonical); NULL for individuals."),
        Column("stream_id", "VARCHAR", "Funding stream (marts.funding_streams) the money came through.", False),
        Column("controller_org_id", "VARCHAR", "Canonical id of the body controlling the stream (funder, managing authority...).", False),
        Column("control_basis", "VARCHAR", "Why that body controls the stream: funder | managing_authority | responsible_department...", False),
        Column("project_id", "VARCHAR", "Governance-register project (projects.csv) the flow is linked to, if any."),
        Column("funding_level", "VARCHAR", "Level of the funder: local|national|eu|private|international|unknown.", False),
        Column("title", "VARCHAR", "What the money is for, as published."),
        Column("flow_date", "DATE", "Award or payment date.", False),
        Column("amount_eur", AMOUNT_TYPE, "Amount in EUR at the ECB reference rate of fx_date; NULL when no rate exists."),
        Column("amount_original", AMOUNT_TYPE, "Amount as published.", False),
        Column("currency_original", "VARCHAR", "Published ISO 4217 currency.", False),
        Column("fx_rate", RATE_TYPE, "Units of currency_original per EUR used."),
        Column("fx_date", "DATE", "ECB fixing day used (last business day on or before flow_date)."),
        Column("source_system", "VARCHAR", "Source system of the record.", False),
        Column("source_file", "VARCHAR", "Source file relative to FUNDTRACE_RAW_DIR.", False),
        Column("source_row", "BIGINT", "Record position in the source file.", False),
        Column("source_record_id", "VARCHAR", "The record's own id in its source.", False),
    ),
    order_by=("flow_id",),
)  # fmt: skip

FUNDING_STREAMS = TableSpec(
    schema="marts",
    name="funding_streams",
    grain="one funder x programme",
    description="Funding streams: each funder's programme (or its unnamed general funding), its "
    "level, how much it awarded, to how many recipients, over which period, and who controls it.",
    columns=(
        Column("stream_id", "VARCHAR", "Stable id: FS- + hash of funder org_id and programme.", False),
        Column("funder_org_id", "VARCHAR", "Canonical id of the funder.", False),
        Column("funder_name", "VARCHAR", "Funder name (canonical)."),
        Column("programme", "VARCHAR", "Programme title or code as published; NULL = funding outside a named programme."),
        Column("funding_level", "VARCHAR", "local | national | eu | private | international | unknown, from the funder.", False),
        Column("awards", "BIGINT", "Number of awards/payments.", False),
        Column("recipients", "BIGINT", "Distinct recipients.", False),
        Column("total_eur", AMOUNT_TYPE, "Sum of amount_eur (flows without an EUR value are left out, see awards_without_eur).", False),
        Column("awards_without_eur", "BIGINT", "Awards with no ECB rate (kept in money_flows, not in total_eur).", False),
        Column("currencies", "VARCHAR[]", "Published currencies, sorted.", False),
        Column("first_award_date", "DATE", "Earliest award date.", False),
        Column("last_award_date", "DATE", "Latest award date.", False),
        Column("controller_org_id", "VARCHAR", "Who controls the stream: the funder, or the body the source names (a cohesion programme's managing authority, the Commission department responsible).", False),
        Column("controller_name", "VARCHAR", "Name of the controller."),
        Column("control_basis", "VARCHAR", "Why the controller controls the stream (funder, managing authority...).", False),
        Column("source_systems", "VARCHAR[]", "Sources the awards came from.", False),
    ),
    order_by=("stream_id",),
)  # fmt: skip

ORGANISATIONS = TableSpec(
    schema="marts",
    name="organisations",
    grain="one canonical organisation (or anonymised individual recipient)",
    description="Every organisation that gives or receives money: canonical id, the names and "
    "references it was seen under, type, country, level as a funder and money in and out.",
    columns=(
        Column("org_id", "VARCHAR", "Canonical organisation id (normalised org-id, or FTNAME- for name-only).", False),
        Column("name", "VARCHAR", "Most frequently published name."),
        Column("names_seen", "VARCHAR[]", "All published names, sorted."),
        Column("org_refs", "VARCHAR[]", "Source references merged into this organisation (see intermediate.int_org_identity).", False),
        Column("match_methods", "VARCHAR[]", "How the references were matched: identifier | self-assigned id | name.", False),
        Column("scheme", "VARCHAR", "Identifier scheme (org-id prefix), FTNAME or 360G."),
        Column("org_type", "VARCHAR", "local_authority, government_body, charity, company, university..., or individual."),
        Column("country", "VARCHAR", "ISO 3166-1 alpha-2 country, where known."),
        Column("funding_level", "VARCHAR", "Level as a funder (NULL if it never funds)."),
        Column("flows_out", "BIGINT", "Awards/payments made.", False),
        Column("flows_in", "BIGINT", "Awards/payments received.", False),
        Column("eur_out", AMOUNT_TYPE, "EUR given (flows with an EUR value).", False),
        Column("eur_in", AMOUNT_TYPE, "EUR received (flows with an EUR value).", False),
        Column("source_systems", "VARCHAR[]", "Sources that mention it.", False),
    ),
    order_by=("org_id",),
)  # fmt: skip


def _flows_select(scope: str | None = None) -> str:
    """The money flows mart's SELECT; with `scope` (a relation of flow ids, column k) only
    those flows."""
    flows = INT_MONEY_FLOWS.qualified
    if scope is not None:
        flows = f"(SELECT * FROM {flows} WHERE flow_id IN (SELECT k FROM {scope}))"
    return f"""
SELECT f.flow_id, f.flow_type,
  fo.org_id AS from_org_id, fo.name AS from_name,
  tr.org_id AS to_org_id, CASE WHEN f.to_kind = 'individual' THEN NULL ELSE tr.name END AS to_name,
  'FS-' || upper(left(md5(fo.org_id || '|' || coalesce(f.programme, '')), 12)) AS stream_id,
  co.org_id AS controller_org_id, f.control_basis,
  f.project_id,
  f.funding_level, f.title, f.flow_date, f.amount_eur, f.amount_original, f.currency_original,
  f.fx_rate, f.fx_date, f.source_system, f.source_file, f.source_row, f.source_record_id
FROM {flows} f
JOIN {INT_ORG_IDENTITY.qualified} fo ON fo.org_ref = f.from_org_ref
JOIN {INT_ORG_IDENTITY.qualified} tr ON tr.org_ref = f.to_org_ref
JOIN {INT_ORG_IDENTITY.qualified} co ON co.org_ref = f.controller_org_ref
"""


# a flow's row reads its own int_money_flows row and the identity of its three references
FLOW_FEEDS = (
    Feed(INT_MONEY_FLOWS.qualified, "flow_id", same_keys),
    Feed(
        INT_ORG_IDENTITY.qualified,
        "org_ref",
        keys_of_rows(
            INT_MONEY_FLOWS.qualified,
            "flow_id",
            "from_org_ref",
            "to_org_ref",
            "controller_org_ref",
        ),
    ),
)


def _streams_select(scope: str | None = None) -> str:
    """The funding streams mart's SELECT; with `scope` (a relation of stream ids, column k)
    only those streams."""
    only = "" if scope is None else f"WHERE m.stream_id IN (SELECT k FROM {scope})\n"
    return f"""
SELECT m.stream_id, m.from_org_id AS funder_org_id,
  -- the name and programme on the stream's first flow: not any_value, whose pick follows
  -- the join's row order (int_money_flows is maintained by slice, not in flow_id order)
  arg_min(m.from_name, m.flow_id) FILTER (WHERE m.from_name IS NOT NULL) AS funder_name,
  arg_min(f.programme, m.flow_id) FILTER (WHERE f.programme IS NOT NULL) AS programme,
  -- one funder has one level; mode() is deterministic for equal values
  mode(m.funding_level) AS funding_level,
  count(*) AS awards, count(DISTINCT m.to_org_id) AS recipients,
  coalesce(sum(m.amount_eur), 0) AS total_eur,
  count(*) FILTER (WHERE m.amount_eur IS NULL) AS awards_without_eur,
  list_sort(list(DISTINCT m.currency_original)) AS currencies,
  min(m.flow_date) AS first_award_date, max(m.flow_date) AS last_award_date,
  -- one controller per stream; ties broken by id so reruns agree
  first(m.controller_org_id ORDER BY m.controller_org_id) AS controller_org_id,
  first(c.name ORDER BY m.controller_org_id) AS controller_name,
  first(m.control_basis ORDER BY m.controller_org_id) AS control_basis,
  list_sort(list(DISTINCT m.source_system)) AS source_systems
FROM {MONEY_FLOWS.qualified} m JOIN {INT_MONEY_FLOWS.qualified} f USING (flow_id)
JOIN (SELECT org_id, first(name ORDER BY org_ref <> org_id, org_ref) AS name
      FROM {INT_ORG_IDENTITY.qualified} GROUP BY org_id) c ON c.org_id = m.controller_org_id
{only}GROUP BY m.stream_id, m.from_org_id
"""


# a stream's row reads its flows in the mart (which log their streams, old and new), their
# programmes in int_money_flows, and its controller's name in identity
STREAM_FEEDS = (
    Feed(MONEY_FLOWS.qualified, "stream_id", same_keys),
    Feed(
        INT_MONEY_FLOWS.qualified,
        "flow_id",
        keys_of_rows(MONEY_FLOWS.qualified, "stream_id", "flow_id"),
    ),
    Feed(
        INT_ORG_IDENTITY.qualified,
        "org_id",
        keys_of_rows(MONEY_FLOWS.qualified, "stream_id", "controller_org_id"),
    ),
)


def _orgs_select(scope: str | None = None) -> str:
    """The organisations mart's SELECT; with `scope` (a relation of org ids, column k) only
    those organisations."""

    def only(column: str) -> str:
        return "" if scope is None else f" WHERE {column} IN (SELECT k FROM {scope})"

    return f"""
WITH ident AS (
  SELECT org_id, first(name ORDER BY org_ref <> org_id, org_ref) AS name,
    list_sort(list_distinct(flatten(list(names_seen)))) AS names_seen,
    list_sort(list(org_ref)) AS org_refs,
    list_sort(list(DISTINCT match_method)) AS match_methods,
    first(scheme ORDER BY org_ref <> org_id, org_ref) AS scheme, first(org_type ORDER BY org_ref <> org_id, org_ref) AS org_type,
    first(country ORDER BY org_ref <> org_id, org_ref) AS country,
    list_sort(list_distinct(flatten(list(source_systems)))) AS source_systems
  FROM {INT_ORG_IDENTITY.qualified}{only("org_id")} GROUP BY org_id
),
outs AS (
  SELECT from_org_id AS org_id, count(*) AS n, coalesce(sum(amount_eur), 0) AS eur,
         mode(funding_level) AS level
  FROM {MONEY_FLOWS.qualified}{only("from_org_id")} GROUP BY 1
),
ins AS (
  SELECT to_org_id AS org_id, count(*) AS n, coalesce(sum(amount_eur), 0) AS eur
  FROM {MONEY_FLOWS.qualified}{only("to_org_id")} GROUP BY 1
)
SELECT i.org_id, CASE WHEN i.org_type = 'individual' THEN NULL ELSE i.name END AS name,
  CASE WHEN i.org_type = 'individual' THEN NULL ELSE i.names_seen END AS names_seen,
  i.org_refs, i.match_methods, i.scheme, i.org_type, i.country, o.level AS funding_level,
  coalesce(o.n, 0) AS flows_out, coalesce(n.n, 0) AS flows_in,
  coalesce(o.eur, 0) AS eur_out, coalesce(n.eur, 0) AS eur_in, i.source_systems
FROM ident i LEFT JOIN outs o USING (org_id) LEFT JOIN ins n USING (org_id)
"""


# an organisation's row reads its references' identity rows and the flows it pays or
# receives; both feeds log the organisations a row left and joined
ORG_FEEDS = (
    Feed(INT_ORG_IDENTITY.qualified, "org_id", same_keys),
    Feed(MONEY_FLOWS.qualified, "org_id", same_keys),
)


def build_money_flows(con: duckdb.DuckDBPyConnection) -> FeedRefresh:
    """Only the flows whose row changed are written (a new file adds a few of 1.2M), and
    only those the feeds changed are compared (assets/common/changes.py)."""
    return refresh_by_feeds(con, MONEY_FLOWS, _flows_select, "flow_id", FLOW_FEEDS)


def build_funding_streams(con: duckdb.DuckDBPyConnection) -> FeedRefresh:
    """Only the streams whose flows, programmes or controller's name changed are compared."""
    return refresh_by_feeds(con, FUNDING_STREAMS, _streams_select, "stream_id", STREAM_FEEDS)


def build_organisations(con: duckdb.DuckDBPyConnection) -> FeedRefresh:
    """Only the organisations whose references or flows changed are compared and written."""
    return refresh_by_feeds(con, ORGANISATIONS, _orgs_select, "org_id", ORG_FEEDS)


_PREVIEW_ROWS = 10


def _refreshed(
    context: dg.AssetExecutionContext,
    database: DuckDBResource,
    spec: TableSpec,
    build: Callable[[duckdb.DuckDBPyConnection], FeedRefresh],
) -> dg.MaterializeResult:
    """Refresh a mart from its feeds, log what was compared and written, and report it."""
    with database.get_connection() as con:
        built = build(con)
        context.log.info(f"{spec.qualified}: {built.summary()}")
        return materialize_result(con, spec, built.metadata(), preview_rows=_PREVIEW_ROWS)


@dg.asset(
    key=MONEY_FLOWS.asset_key,
    group_name="marts",
    kinds={"duckdb", "sql"},
    description=MONEY_FLOWS.doc,
    deps=[INT_MONEY_FLOWS.asset_key, INT_ORG_IDENTITY.asset_key],
)
@skip_unchanged
def money_flows(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    return _refreshed(context, duckdb, MONEY_FLOWS, build_money_flows)


@dg.asset(
    key=FUNDING_STREAMS.asset_key,
    group_name="marts",
    kinds={"duckdb", "sql"},
    description=FUNDING_STREAMS.doc,
    deps=[MONEY_FLOWS.asset_key, INT_MONEY_FLOWS.asset_key, INT_ORG_IDENTITY.asset_key],
)
@skip_unchanged
def funding_streams(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    return _refreshed(context, duckdb, FUNDING_STREAMS, build_funding_streams)


@dg.asset(
    key=ORGANISATIONS.asset_key,
    group_name="marts",
    kinds={"duckdb", "sql"},
    description=ORGANISATIONS.doc,
    deps=[INT_ORG_IDENTITY.asset_key, MONEY_FLOWS.asset_key],
)
@skip_unchanged
def organisations(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    return _refreshed(context, duckdb, ORGANISATIONS, build_organisations)
