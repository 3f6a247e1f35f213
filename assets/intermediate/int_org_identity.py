"""`intermediate.int_org_identity`: each organisation reference -> one canonical organisation.

Identifiers first: references are already normalised org-ids (company numbers padded,
placeholders dropped) or name-based FTNAME- ids. A name-only reference is merged into an
identified organisation only when exactly one identified organisation was published under the
same normalised name (legal forms, case and punctuation ignored). Fuzzy matching and analyst
overrides plug in here without changing the marts.
"""

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.sql import install_macros
from assets.common.tables import Column, TableSpec, materialize_result, rebuild_table
from assets.intermediate.int_money_flows import INT_MONEY_FLOWS
from assets.raw.reference import ORGID_PREFIXES

INT_ORG_IDENTITY = TableSpec(
    schema="intermediate",
    name="int_org_identity",
    grain="one organisation reference seen in any staged source",
    description="Maps every organisation reference to its canonical org_id with the method and "
    "evidence, plus the names it was published under.",
    columns=(
        Column("org_ref", "VARCHAR", "Reference as used in staging/intermediate tables.", False),
        Column("org_id", "VARCHAR", "Canonical organisation id.", False),
        Column("match_method", "VARCHAR", "identifier | self-assigned id | exact name | name | redacted: how org_id was established.", False),
        Column("match_evidence", "VARCHAR", "What supports the mapping, for review."),
        Column("name", "VARCHAR", "Most frequently published name (ties: alphabetical)."),
        Column("names_seen", "VARCHAR[]", "Every distinct name published for this reference, sorted."),
        Column("scheme", "VARCHAR", "Org-id scheme prefix (longest known prefix) or FTNAME/360G."),
        Column("org_type", "VARCHAR", "Kind of organisation implied by the scheme, or individual / redacted."),
        Column("country", "VARCHAR", "Country of the register (ISO alpha-2), if national."),
        Column("source_systems", "VARCHAR[]", "Sources that mention this reference."),
    ),
    order_by=("org_ref",),
)  # fmt: skip

_SELECT = f"""
WITH mentions AS (
  SELECT from_org_ref AS org_ref, from_name AS name, 'organisation' AS kind, source_system
  FROM {INT_MONEY_FLOWS.qualified}
  UNION ALL
  SELECT to_org_ref, to_name, to_kind, source_system FROM {INT_MONEY_FLOWS.qualified}
  UNION ALL
  SELECT controller_org_ref, controller_name, 'organisation', source_system
  FROM {INT_MONEY_FLOWS.qualified}
),
names AS (
  SELECT org_ref, name, count(*) AS n FROM mentions WHERE name IS NOT NULL GROUP BY ALL
),
best_name AS (
  SELECT org_ref, first(name ORDER BY n DESC, name) AS name,
         list_sort(list(DISTINCT name)) AS names_seen
  FROM names GROUP BY org_ref
),
refs AS (
  SELECT org_ref, list_sort(list(DISTINCT source_system)) AS source_systems,
         bool_or(kind = 'individual') AS is_individual
  FROM mentions GROUP BY org_ref
),
-- a name-only reference joins the one identified organisation published under the same
-- normalised name; with two or more candidates it stays on its own (never guess)
name_match AS (
  SELECT f.org_ref, min(n.org_ref) AS target, min(ft_name_key(n.name)) AS key
  FROM names f JOIN names n
    ON ft_name_key(n.name) = ft_name_key(f.name) AND n.org_ref <> f.org_ref
  WHERE starts_with(f.org_ref, 'FTNAME-')
    AND NOT starts_with(n.org_ref, 'FTNAME-') AND NOT starts_with(n.org_ref, 'FT-REDACTED-')
  GROUP BY f.org_ref
  HAVING count(DISTINCT n.org_ref) = 1
),
scheme AS (
  SELECT r.org_ref, arg_max(p.prefix, length(p.prefix)) AS prefix,
         arg_max(p.org_type, length(p.prefix)) AS org_type,
         arg_max(p.country, length(p.prefix)) AS country
  FROM refs r JOIN {ORGID_PREFIXES.qualified} p ON starts_with(r.org_ref || '-', p.prefix || '-')
  GROUP BY r.org_ref
)
SELECT r.org_ref, coalesce(nm.target, r.org_ref) AS org_id,
  CASE WHEN nm.target IS NOT NULL THEN 'exact name'
       WHEN starts_with(r.org_ref, 'FTNAME-') THEN 'name'
       WHEN starts_with(r.org_ref, 'FT-REDACTED-') THEN 'redacted'
       WHEN starts_with(r.org_ref, '360G-') THEN 'self-assigned id'
       ELSE 'identifier' END AS match_method,
  CASE WHEN nm.target IS NOT NULL
         THEN 'no identifier published; normalised name "' || nm.key || '" is published by '
              || nm.target || ' and no other identified organisation'
       WHEN starts_with(r.org_ref, 'FTNAME-') THEN 'no identifier published; normalised name ' || b.name
       WHEN starts_with(r.org_ref, 'FT-REDACTED-') THEN 'payee withheld by the publisher ' || substr(r.org_ref, 13)
       WHEN starts_with(r.org_ref, '360G-') THEN 'publisher-assigned 360Giving id'
       ELSE 'normalised org-id' END AS match_evidence,
  CASE WHEN starts_with(r.org_ref, 'FT-REDACTED-')
       THEN 'Redacted payee (withheld by ' || substr(r.org_ref, 13) || ')' ELSE b.name END AS name,
  b.names_seen,
  coalesce(s.prefix, CASE WHEN starts_with(r.org_ref, 'FTNAME-') THEN 'FTNAME'
                          WHEN starts_with(r.org_ref, 'FT-REDACTED-') THEN 'FT-REDACTED'
                          WHEN starts_with(r.org_ref, '360G-') THEN '360G'
                          ELSE regexp_extract(r.org_ref, '^([A-Z]{{2}}-[A-Z0-9]+)-', 1) END) AS scheme,
  CASE WHEN r.is_individual THEN 'individual'
       WHEN starts_with(r.org_ref, 'FT-REDACTED-') THEN 'redacted'
       ELSE s.org_type END AS org_type,
  coalesce(s.country,
           CASE WHEN NOT regexp_matches(r.org_ref, '^(FT|XI|XM)-')
                THEN nullif(regexp_extract(r.org_ref, '^([A-Z]{{2}})-', 1), '') END) AS country,
  r.source_systems
FROM refs r LEFT JOIN best_name b USING (org_ref) LEFT JOIN scheme s USING (org_ref)
LEFT JOIN name_match nm USING (org_ref)
"""


def build_int_org_identity(con: duckdb.DuckDBPyConnection) -> int:
    install_macros(con)
    return rebuild_table(con, INT_ORG_IDENTITY, _SELECT)


@dg.asset(
    key=INT_ORG_IDENTITY.asset_key,
    group_name="intermediate",
    kinds={"duckdb", "sql"},
    description=INT_ORG_IDENTITY.doc,
    deps=[INT_MONEY_FLOWS.asset_key, ORGID_PREFIXES.asset_key],
)
def int_org_identity(duckdb: DuckDBResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        build_int_org_identity(con)
        return materialize_result(con, INT_ORG_IDENTITY)
