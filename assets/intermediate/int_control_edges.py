"""`intermediate.int_control_edges`: who controls whom, from every kind of evidence.

One row is one relationship "controller -> controlled" with its basis:
- governance register: partnership members (owner with share, board_member, advisory_panel,
  signatory, lead, partner, funder, operator, supplier, managing_authority) and the body the
  partnership is accountable to;
- beneficial ownership (BODS): shareholdings, voting rights, board appointment... (when the
  `bods/` source is present, its staging module exports `OWNERSHIP_SQL`).

Nodes are canonical ids: organisations through `intermediate.int_org_identity` (org_ref ->
org_id), persons by their register id, partnerships by the org id of their company when one
organisation was published under the partnership's exact name, else `PARTNERSHIP:<id>`.
"""

import importlib

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.fingerprint import skip_unchanged
from assets.common.sql import install_macros
from assets.common.tables import Column, Refresh, TableSpec, materialize_result, refresh_table
from assets.intermediate.int_org_identity import INT_ORG_IDENTITY, canonical_org_id_sql
from assets.staging import stg_governance

SHARE_TYPE = "DECIMAL(9,4)"

INT_CONTROL_EDGES = TableSpec(
    schema="intermediate",
    name="int_control_edges",
    grain="one control relationship (controller -> controlled, basis, validity period, source record)",
    description="Every piece of evidence that one party controls or influences another: "
    "ownership shares, voting rights, board seats, lead or signatory roles, accountability, "
    "with share ranges in percent, validity dates and the source record.",
    columns=(
        Column("edge_id", "VARCHAR", "Unique: source_system:record:basis.", False),
        Column("controller_id", "VARCHAR", "Canonical id of the controlling party (organisation org_id or person id).", False),
        Column("controller_name", "VARCHAR", "Name of the controlling party."),
        Column("controller_kind", "VARCHAR", "organisation | person.", False),
        Column("controlled_id", "VARCHAR", "Canonical id of the controlled party (organisation org_id or PARTNERSHIP:<id>).", False),
        Column("controlled_name", "VARCHAR", "Name of the controlled party."),
        Column("partnership_id", "VARCHAR", "Governance partnership the relationship belongs to, if any."),
        Column("control_basis", "VARCHAR", "ownership | voting_rights | board_member | advisory_panel | signatory | lead | partner | funder | operator | supplier | managing_authority | accountable_body | board_appointment | senior_managing_official | other_influence.", False),
        Column("is_ownership", "BOOLEAN", "True for edges that carry an ownership share (walked by marts.ultimate_controllers).", False),
        Column("share_min", SHARE_TYPE, "Lower bound of the share in percent (exact shares: min = max)."),
        Column("share_max", SHARE_TYPE, "Upper bound of the share in percent."),
        Column("min_exclusive", "BOOLEAN", "The lower bound is exclusive (BODS exclusiveMinimum)."),
        Column("max_exclusive", "BOOLEAN", "The upper bound is exclusive (BODS exclusiveMaximum)."),
        Column("valid_from", "DATE", "Start of the relationship, if known."),
        Column("valid_to", "DATE", "End of the relationship (NULL = current)."),
        Column("source_system", "VARCHAR", "Where the evidence comes from.", False),
        Column("source_file", "VARCHAR", "File relative to FUNDTRACE_RAW_DIR.", False),
        Column("source_record_id", "VARCHAR", "Row or statement id in that file.", False),
    ),
    order_by=("edge_id",),
)  # fmt: skip

# optional sources of ownership edges: modules exporting OWNERSHIP_SQL / OWNERSHIP_DEPS
OWNERSHIP_MODULES = ("assets.staging.stg_bods",)


def ownership_modules() -> list:
    mods = []
    for name in OWNERSHIP_MODULES:
        try:
            mods.append(importlib.import_module(name))
        except ModuleNotFoundError:
            continue
    return mods


_MEMBERS = stg_governance.STG_MEMBERS.qualified
_PARTNERSHIPS = stg_governance.STG_PARTNERSHIPS.qualified
_IDENTITY = INT_ORG_IDENTITY.qualified
# what of identity canonical_org_id_sql and PARTNERSHIP_NODES_SQL read (skip_unchanged's reads)
IDENTITY_READ = f"{_IDENTITY}[org_ref, org_id, name, names_seen]"


PARTNERSHIP_NODES_SQL = f"""
-- a company partnership is the organisation published under exactly its name
WITH companies AS (
  SELECT partnership_id, ft_name_key(name) AS key FROM {_PARTNERSHIPS} WHERE legal_form = 'company'
),
spellings AS (
  SELECT DISTINCT i.org_id, unnest(coalesce(i.names_seen, [i.name])) AS name
  FROM {_IDENTITY} i WHERE NOT starts_with(i.org_id, 'FTNAME-')
),
-- the name key once per distinct spelling (~150k at scale 1), not per identity and name
keys AS (SELECT name, ft_name_key(name) AS key FROM (SELECT DISTINCT name FROM spellings)),
candidates AS (
  -- registry ids win over weak ones (EU PIC, self-assigned 360G ids); never guess between two
  SELECT c.partnership_id,
    count(DISTINCT s.org_id) FILTER (WHERE NOT regexp_matches(s.org_id, '^(XI-PIC|360G)-')) AS strong,
    min(s.org_id) FILTER (WHERE NOT regexp_matches(s.org_id, '^(XI-PIC|360G)-')) AS strong_id,
    count(DISTINCT s.org_id) AS n, min(s.org_id) AS any_id
  FROM companies c JOIN keys k ON k.key = c.key JOIN spellings s USING (name)
  GROUP BY c.partnership_id
)
SELECT p.partnership_id, p.name,
  CASE WHEN c.strong = 1 THEN c.strong_id
       WHEN c.strong = 0 AND c.n = 1 THEN c.any_id
       ELSE 'PARTNERSHIP:' || p.partnership_id END AS node_id
FROM {_PARTNERSHIPS} p LEFT JOIN candidates c USING (partnership_id)
"""

_GOVERNANCE_EDGES = f"""
WITH nodes AS ({PARTNERSHIP_NODES_SQL})
SELECT
  m.source_system || ':' || m.source_file || ':' || m.source_row || ':' || m.role AS edge_id,
  CASE WHEN m.member_type = 'person' THEN m.member_ref
       ELSE {canonical_org_id_sql("m.member_ref")} END AS controller_id,
  m.member_name AS controller_name,
  CASE WHEN m.member_type = 'person' THEN 'person' ELSE 'organisation' END AS controller_kind,
  n.node_id AS controlled_id, n.name AS controlled_name, m.partnership_id,
  CASE m.role WHEN 'owner' THEN 'ownership' ELSE m.role END AS control_basis,
  m.role = 'owner' AS is_ownership,
  CASE WHEN m.role = 'owner' THEN m.share_pct END AS share_min,
  CASE WHEN m.role = 'owner' THEN m.share_pct END AS share_max,
  false AS min_exclusive, false AS max_exclusive,
  m.start_date AS valid_from, m.end_date AS valid_to,
  m.source_system, m.source_file, CAST(m.source_row AS VARCHAR) AS source_record_id
FROM {_MEMBERS} m JOIN nodes n USING (partnership_id)
UNION ALL
SELECT
  p.source_system || ':' || p.source_file || ':' || p.source_row || ':accountable_to',
  {canonical_org_id_sql("p.accountable_to_ref")}, p.accountable_to_name, 'organisation',
  n.node_id, n.name, p.partnership_id, 'accountable_body', false, NULL, NULL, false, false,
  p.start_date, p.end_date, p.source_system, p.source_file, CAST(p.source_row AS VARCHAR)
FROM {_PARTNERSHIPS} p JOIN nodes n USING (partnership_id)
WHERE p.accountable_to_ref IS NOT NULL
"""

# BODS interest types -> control basis; shareholding carries ownership
_BODS_BASIS = """
CASE
  WHEN interest_type = 'shareholding' THEN 'ownership'
  WHEN interest_type = 'votingRights' THEN 'voting_rights'
  WHEN interest_type IN ('appointmentOfBoard', 'boardMember', 'boardChair') THEN 'board_appointment'
  WHEN interest_type = 'seniorManagingOfficial' THEN 'senior_managing_official'
  ELSE 'other_influence'
END
"""


def _bods_edges(module: object) -> str:
    sql = getattr(module, "OWNERSHIP_SQL")  # noqa: B009 - optional module attribute
    return f"""
    SELECT
      o.source_system || ':' || o.source_file || ':' || o.source_record_id || ':' || o.interest_type,
      CASE WHEN o.controller_kind = 'person' THEN o.controller_ref
           ELSE {canonical_org_id_sql("o.controller_ref")} END,
      o.controller_name, CASE WHEN o.controller_kind = 'person' THEN 'person' ELSE 'organisation' END,
      {canonical_org_id_sql("o.subject_org_ref")}, o.subject_name, NULL,
      -- indirect rows restate chains whose direct links are present: walking both double-counts
      {_BODS_BASIS},
      o.interest_type = 'shareholding' AND coalesce(o.direct_or_indirect, '') <> 'indirect',
      o.share_min, o.share_max, coalesce(o.min_exclusive, false), coalesce(o.max_exclusive, false),
      o.start_date, o.end_date, o.source_system, o.source_file, o.source_record_id
    FROM ({sql}) o
    WHERE o.controller_ref IS NOT NULL AND o.subject_org_ref IS NOT NULL
    """


def build_int_control_edges(con: duckdb.DuckDBPyConnection) -> Refresh:
    install_macros(con)
    parts = [_GOVERNANCE_EDGES] + [_bods_edges(m) for m in ownership_modules()]
    union = " UNION ALL ".join(f"SELECT * FROM ({p})" for p in parts)
    # an edge id repeats when a source lists the same interest twice: keep one, stably
    select = f"""
    SELECT * FROM ({union}) u
    QUALIFY row_number() OVER (PARTITION BY edge_id ORDER BY controller_id, controlled_id) = 1
    """
    # a new funding file rarely changes who controls whom: nothing rewritten, dependents skip
    return refresh_table(con, INT_CONTROL_EDGES, select, "edge_id")


def _deps() -> list[dg.AssetKey]:
    keys = [
        INT_ORG_IDENTITY.asset_key,
        stg_governance.STG_MEMBERS.asset_key,
        stg_governance.STG_PARTNERSHIPS.asset_key,
    ]
    for m in ownership_modules():
        keys += [spec.asset_key for spec in getattr(m, "OWNERSHIP_DEPS", ())]
    return keys


@dg.asset(
    key=INT_CONTROL_EDGES.asset_key,
    group_name="intermediate",
    kinds={"duckdb", "sql"},
    description=INT_CONTROL_EDGES.doc,
    deps=_deps(),
)
# identity is read for canonical ids and the spellings of registered organisations: a new
# funding file that leaves those as they were does not rebuild the edges
@skip_unchanged(reads={_IDENTITY: IDENTITY_READ})
def int_control_edges(duckdb: DuckDBResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        built = build_int_control_edges(con)
        return materialize_result(con, INT_CONTROL_EDGES, built.metadata())
