"""Control marts: ultimate_controllers, project_control, funding_stream_control.

Share arithmetic: shares are percent ranges [min, max]; along an ownership chain the fractions
multiply (75% of 60% -> 45%); exact shares have min = max; an unknown share makes the product
unknown (NULL); an exclusive bound anywhere on the chain makes the product's bound exclusive.
Several chains from one entity to the same owner add up (min: sum of mins, max: sum of maxes
capped at 100). Chains stop at 20 links and at a cycle: a chain that comes back to a node
already on it ends there and is flagged `cycle`, it never loops.
"""

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.fingerprint import skip_unchanged
from assets.common.tables import (
    Column,
    Refresh,
    TableSpec,
    materialize_result,
    rebuild_table,
    refresh_table,
)
from assets.intermediate.int_control_edges import INT_CONTROL_EDGES, SHARE_TYPE
from assets.intermediate.int_org_identity import INT_ORG_IDENTITY
from assets.marts.core import FUNDING_STREAMS, MONEY_FLOWS
from assets.staging import stg_governance

MAX_DEPTH = 20

ULTIMATE_CONTROLLERS = TableSpec(
    schema="marts",
    name="ultimate_controllers",
    grain="one owned entity x ultimate owner",
    description="For every organisation or partnership with known owners: the owners at the top "
    "of each ownership chain (persons, or entities nobody is recorded as owning), with the "
    "share range multiplied along the chain, the shortest depth and every path. Chains that "
    "loop are cut and flagged.",
    columns=(
        Column("entity_id", "VARCHAR", "Owned organisation (org_id) or PARTNERSHIP:<id>.", False),
        Column("entity_name", "VARCHAR", "Its name."),
        Column("owner_id", "VARCHAR", "Ultimate owner: person id or org_id.", False),
        Column("owner_name", "VARCHAR", "Owner name (names and roles only; no personal details)."),
        Column("owner_kind", "VARCHAR", "person | organisation.", False),
        Column("direct", "BOOLEAN", "True when one chain is a single link (the owner holds shares directly).", False),
        Column("depth", "INTEGER", "Links in the shortest chain.", False),
        Column("share_min", SHARE_TYPE, "Lower bound of the effective share in percent (NULL = unknown)."),
        Column("share_max", SHARE_TYPE, "Upper bound of the effective share in percent (NULL = unknown)."),
        Column("min_exclusive", "BOOLEAN", "share_min is an exclusive bound.", False),
        Column("max_exclusive", "BOOLEAN", "share_max is an exclusive bound.", False),
        Column("paths", "VARCHAR[]", "Every chain, as 'entity <- owner <- ... <- ultimate owner'.", False),
        Column("cycle", "BOOLEAN", "A chain to this owner was cut because it looped back on itself.", False),
        Column("evidence", "VARCHAR[]", "Source records of the links used.", False),
    ),
    order_by=("entity_id", "owner_id"),
)  # fmt: skip

PROJECT_CONTROL = TableSpec(
    schema="marts",
    name="project_control",
    grain="one governance project x controller x control basis",
    description="Who controls each project and why: owners of the partnership running it "
    "(direct shares, and ultimate owners through ownership chains), board seats, lead and "
    "signatory roles, the accountable body, funders (with their share of the project's money) "
    "and managing authorities, each with the path and the evidence.",
    columns=(
        Column("project_id", "VARCHAR", "Governance project (projects.csv).", False),
        Column("project_title", "VARCHAR", "Project title."),
        Column("partnership_id", "VARCHAR", "Partnership running the project.", False),
        Column("controller_id", "VARCHAR", "Person id or org_id of the controller.", False),
        Column("controller_name", "VARCHAR", "Controller name."),
        Column("controller_kind", "VARCHAR", "person | organisation.", False),
        Column("control_basis", "VARCHAR", "ownership | ownership_chain | board_member | lead | signatory | partner | operator | supplier | advisory_panel | accountable_body | funder | managing_authority | voting_rights | board_appointment...", False),
        Column("share_min", SHARE_TYPE, "Lower bound of the share in percent, where meaningful (ownership, funding share)."),
        Column("share_max", SHARE_TYPE, "Upper bound of the share in percent."),
        Column("path", "VARCHAR", "How control reaches the project, e.g. 'project <- partnership <- owner <- owner'.", False),
        Column("valid_from", "DATE", "Start of the relationship, if known."),
        Column("valid_to", "DATE", "End of the relationship (NULL = current)."),
        Column("evidence", "VARCHAR", "Source system, file and record(s) the row rests on.", False),
    ),
    order_by=("project_id", "control_basis", "controller_id", "valid_from"),
)  # fmt: skip

FUNDING_STREAM_CONTROL = TableSpec(
    schema="marts",
    name="funding_stream_control",
    grain="one funding stream x controller x control basis",
    description="Who controls each funding stream: the funder, the body the source names "
    "(managing authority, responsible Commission department), the funder's ultimate owners "
    "and, when the funder is a partnership company, its board and accountable body.",
    columns=(
        Column("stream_id", "VARCHAR", "Funding stream (marts.funding_streams).", False),
        Column("funder_org_id", "VARCHAR", "The stream's funder.", False),
        Column("programme", "VARCHAR", "The stream's programme."),
        Column("controller_id", "VARCHAR", "Person id or org_id of the controller.", False),
        Column("controller_name", "VARCHAR", "Controller name."),
        Column("controller_kind", "VARCHAR", "person | organisation.", False),
        Column("control_basis", "VARCHAR", "funder | managing_authority | responsible_department | ownership_chain | board_member | accountable_body ...", False),
        Column("share_min", SHARE_TYPE, "Lower bound of the controller's share in the funder, where it is an owner."),
        Column("share_max", SHARE_TYPE, "Upper bound of that share."),
        Column("path", "VARCHAR", "How control reaches the stream.", False),
        Column("evidence", "VARCHAR", "What the row rests on.", False),
    ),
    order_by=("stream_id", "control_basis", "controller_id"),
)  # fmt: skip

_EDGES = INT_CONTROL_EDGES.qualified

ULTIMATE_SQL = f"""
WITH RECURSIVE own AS (
  SELECT controlled_id, controlled_name, controller_id, controller_name, controller_kind,
         share_min / 100 AS fmin, share_max / 100 AS fmax, min_exclusive, max_exclusive,
         source_system || ':' || source_file || ':' || source_record_id AS ev
  FROM {_EDGES}
  WHERE is_ownership AND (valid_to IS NULL OR valid_to >= current_date)
),
walk AS (
  SELECT controlled_id AS entity_id, controlled_name AS entity_name, controller_id AS node,
         controller_name AS node_name, controller_kind AS node_kind,
         [controlled_id, controller_id] AS path, [ev] AS evidence, fmin, fmax,
         min_exclusive AS lo_x, max_exclusive AS hi_x, 1 AS depth
  FROM own WHERE controller_id <> controlled_id
  UNION ALL
  SELECT w.entity_id, w.entity_name, o.controller_id, o.controller_name, o.controller_kind,
         list_append(w.path, o.controller_id), list_append(w.evidence, o.ev),
         w.fmin * o.fmin, w.fmax * o.fmax, w.lo_x OR o.min_exclusive, w.hi_x OR o.max_exclusive,
         w.depth + 1
  FROM walk w JOIN own o ON o.controlled_id = w.node
  WHERE NOT list_contains(w.path, o.controller_id) AND w.depth < {MAX_DEPTH}
),
tops AS (
  -- a chain ends at a node nobody owns, or at a node whose owners lead back onto the chain
  -- (a loop: the chain is cut there, never followed round again, and flagged)
  SELECT w.*, EXISTS (
      SELECT 1 FROM own o WHERE o.controlled_id = w.node AND list_contains(w.path, o.controller_id)
    ) AS cycle
  FROM walk w
  WHERE w.node NOT IN (SELECT controlled_id FROM own)
     OR EXISTS (SELECT 1 FROM own o
                WHERE o.controlled_id = w.node AND list_contains(w.path, o.controller_id))
)
SELECT entity_id, min(entity_name) AS entity_name, node AS owner_id,
  min(node_name) AS owner_name, min(node_kind) AS owner_kind,
  bool_or(depth = 1) AS direct, min(depth) AS depth,
  -- least() would skip NULLs: one unknown chain makes the bound unknown
  CASE WHEN bool_or(fmin IS NULL) THEN NULL
       ELSE CAST(least(sum(fmin), 1) * 100 AS {SHARE_TYPE}) END AS share_min,
  CASE WHEN bool_or(fmax IS NULL) THEN NULL
       ELSE CAST(least(sum(fmax), 1) * 100 AS {SHARE_TYPE}) END AS share_max,
  bool_or(lo_x) AS min_exclusive, bool_or(hi_x) AS max_exclusive,
  list_sort(list(array_to_string(path, ' <- '))) AS paths,
  bool_or(cycle) AS cycle,
  list_sort(list_distinct(flatten(list(evidence)))) AS evidence
FROM tops
GROUP BY entity_id, node
"""

_PROJECTS = stg_governance.STG_PROJECTS.qualified

PROJECT_CONTROL_SQL = f"""
WITH projects AS (SELECT project_id, title, partnership_id FROM {_PROJECTS}),
node AS (
  SELECT DISTINCT partnership_id, controlled_id AS node_id FROM {_EDGES}
  WHERE partnership_id IS NOT NULL
),
direct AS (
  SELECT p.project_id, p.title AS project_title, p.partnership_id, e.controller_id,
    e.controller_name, e.controller_kind, e.control_basis, e.share_min, e.share_max,
    p.project_id || ' <- ' || p.partnership_id || ' <- ' || e.controller_id AS path,
    e.valid_from, e.valid_to,
    e.source_system || ':' || e.source_file || ':' || e.source_record_id AS evidence
  FROM projects p JOIN {_EDGES} e ON e.partnership_id = p.partnership_id
),
chains AS (
  -- owners of the partnership (company) found through ownership chains, beyond direct owners
  SELECT p.project_id, p.title, p.partnership_id, u.owner_id, u.owner_name, u.owner_kind,
    'ownership_chain', u.share_min, u.share_max,
    p.project_id || ' <- ' || u.paths[1], NULL::DATE, NULL::DATE,
    array_to_string(u.evidence, '; ')
  FROM projects p JOIN node n USING (partnership_id)
  JOIN {ULTIMATE_CONTROLLERS.qualified} u ON u.entity_id = n.node_id
  WHERE NOT u.direct
),
money AS (
  SELECT f.project_id, f.from_org_id, f.from_name, f.controller_org_id, f.control_basis,
         sum(f.amount_eur) AS eur, count(*) AS n, min(f.flow_date) AS first_date,
         max(f.flow_date) AS last_date, list_sort(list(DISTINCT f.source_system)) AS sources
  FROM {MONEY_FLOWS.qualified} f WHERE f.project_id IS NOT NULL
  GROUP BY ALL
),
totals AS (SELECT project_id, sum(eur) AS total FROM money GROUP BY 1),
funders AS (
  SELECT p.project_id, p.title, p.partnership_id, m.from_org_id, first(m.from_name ORDER BY m.n DESC, m.from_name),
    'organisation', 'funder',
    CAST(100 * sum(m.eur) / nullif(any_value(t.total), 0) AS {SHARE_TYPE}),
    CAST(100 * sum(m.eur) / nullif(any_value(t.total), 0) AS {SHARE_TYPE}),
    p.project_id || ' <- funding <- ' || m.from_org_id, min(m.first_date), max(m.last_date),
    sum(m.n) || ' flow(s) in marts.money_flows from ' || array_to_string(list_sort(list_distinct(flatten(list(m.sources)))), ', ')
  FROM projects p JOIN money m USING (project_id) JOIN totals t USING (project_id)
  GROUP BY p.project_id, p.title, p.partnership_id, m.from_org_id
),
stream_controllers AS (
  SELECT p.project_id, p.title, p.partnership_id, m.controller_org_id,
    (SELECT first(i.name ORDER BY i.org_ref <> i.org_id, i.org_ref) FROM {INT_ORG_IDENTITY.qualified} i
     WHERE i.org_id = m.controller_org_id),
    'organisation', m.control_basis, NULL::{SHARE_TYPE}, NULL::{SHARE_TYPE},
    p.project_id || ' <- funding <- ' || m.from_org_id || ' <- ' || m.controller_org_id,
    min(m.first_date), max(m.last_date),
    'controller of the funding stream in marts.money_flows'
  FROM projects p JOIN money m USING (project_id)
  WHERE m.control_basis <> 'funder'
  GROUP BY p.project_id, p.title, p.partnership_id, m.controller_org_id, m.control_basis, m.from_org_id
)
SELECT * FROM direct
UNION ALL SELECT * FROM chains
UNION ALL SELECT * FROM funders
UNION ALL SELECT * FROM stream_controllers
"""

STREAM_CONTROL_SQL = f"""
WITH streams AS (
  SELECT stream_id, funder_org_id, funder_name, programme, controller_org_id, controller_name,
         control_basis FROM {FUNDING_STREAMS.qualified}
)
SELECT stream_id, funder_org_id, programme, funder_org_id AS controller_id,
  funder_name AS controller_name, 'organisation' AS controller_kind, 'funder' AS control_basis,
  NULL::{SHARE_TYPE} AS share_min, NULL::{SHARE_TYPE} AS share_max,
  stream_id || ' <- ' || funder_org_id AS path,
  'funder of the stream (marts.funding_streams)' AS evidence
FROM streams
UNION ALL
SELECT stream_id, funder_org_id, programme, controller_org_id, controller_name, 'organisation',
  control_basis, NULL, NULL, stream_id || ' <- ' || controller_org_id,
  'named by the source as ' || control_basis
FROM streams WHERE controller_org_id <> funder_org_id
UNION ALL
SELECT s.stream_id, s.funder_org_id, s.programme, u.owner_id, u.owner_name, u.owner_kind,
  'ownership_chain', u.share_min, u.share_max, s.stream_id || ' <- ' || u.paths[1],
  array_to_string(u.evidence, '; ')
FROM streams s JOIN {ULTIMATE_CONTROLLERS.qualified} u ON u.entity_id = s.funder_org_id
UNION ALL
SELECT s.stream_id, s.funder_org_id, s.programme, e.controller_id, e.controller_name,
  e.controller_kind, e.control_basis, e.share_min, e.share_max,
  s.stream_id || ' <- ' || s.funder_org_id || ' <- ' || e.controller_id,
  e.source_system || ':' || e.source_file || ':' || e.source_record_id
FROM streams s JOIN {_EDGES} e ON e.controlled_id = s.funder_org_id
WHERE NOT e.is_ownership AND (e.valid_to IS NULL OR e.valid_to >= current_date)
"""


def build_ultimate_controllers(con: duckdb.DuckDBPyConnection) -> Refresh:
    return refresh_table(con, ULTIMATE_CONTROLLERS, ULTIMATE_SQL, "entity_id")


def build_project_control(con: duckdb.DuckDBPyConnection) -> Refresh:
    return refresh_table(con, PROJECT_CONTROL, PROJECT_CONTROL_SQL, "project_id")


def build_funding_stream_control(con: duckdb.DuckDBPyConnection) -> int:
    return rebuild_table(con, FUNDING_STREAM_CONTROL, STREAM_CONTROL_SQL)


@dg.asset(
    key=ULTIMATE_CONTROLLERS.asset_key,
    group_name="marts",
    kinds={"duckdb", "sql"},
    description=ULTIMATE_CONTROLLERS.doc,
    deps=[INT_CONTROL_EDGES.asset_key],
)
@skip_unchanged
def ultimate_controllers(duckdb: DuckDBResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        built = build_ultimate_controllers(con)
        return materialize_result(con, ULTIMATE_CONTROLLERS, built.metadata(), preview_rows=10)


@dg.asset(
    key=PROJECT_CONTROL.asset_key,
    group_name="marts",
    kinds={"duckdb", "sql"},
    description=PROJECT_CONTROL.doc,
    deps=[
        INT_CONTROL_EDGES.asset_key,
        ULTIMATE_CONTROLLERS.asset_key,
        MONEY_FLOWS.asset_key,
        stg_governance.STG_PROJECTS.asset_key,
        INT_ORG_IDENTITY.asset_key,
    ],
)
@skip_unchanged
def project_control(duckdb: DuckDBResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        built = build_project_control(con)
        return materialize_result(con, PROJECT_CONTROL, built.metadata(), preview_rows=10)


@dg.asset(
    key=FUNDING_STREAM_CONTROL.asset_key,
    group_name="marts",
    kinds={"duckdb", "sql"},
    description=FUNDING_STREAM_CONTROL.doc,
    deps=[INT_CONTROL_EDGES.asset_key, ULTIMATE_CONTROLLERS.asset_key, FUNDING_STREAMS.asset_key],
)
@skip_unchanged
def funding_stream_control(duckdb: DuckDBResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        build_funding_stream_control(con)
        return materialize_result(con, FUNDING_STREAM_CONTROL, preview_rows=10)
