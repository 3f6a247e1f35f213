"""`intermediate.int_org_identity`: each organisation reference -> one canonical organisation.

References come from `intermediate.int_org_mentions` (every staged source); the decisions from
`intermediate.int_org_matches` (overrides, shared identifiers, exact and fuzzy names; see
`assets/intermediate/int_org_matches.py`). A cluster is the union-find closure of the accepted
pairs; its canonical `org_id` is its strongest reference: a registered org-id (GB-COH, GB-CHC,
GB-LAE..., XM-DAC, XI-LEI) before a PIC (XI-PIC) before a publisher-assigned 360G- id before a
local register id before a name-based FTNAME- id; ties alphabetical, so reruns agree.

`match_method` / `match_evidence` say how a reference joined its cluster: the accepted pair
linking it to the member it was attached to (`matched_to`), on the path to the canonical
reference; the canonical reference itself says what kind of id it is.
"""

from collections import defaultdict, deque

import dagster as dg
import duckdb
import pyarrow as pa
from dagster_duckdb import DuckDBResource

from assets.common.fingerprint import skip_unchanged
from assets.common.tables import Column, TableSpec, materialize_result, rebuild_table
from assets.intermediate.int_org_matches import (
    INT_ORG_MATCHES,
    INT_ORG_MENTIONS,
    install_macros,
    iter_match_rows,
)

# The two upstream assets are re-exported so that loading this module (pipelines/definitions.py
# ASSET_MODULES) loads all three; listing int_org_matches there too is harmless (deduplicated).
from assets.intermediate.int_org_matches import int_org_matches as int_org_matches
from assets.intermediate.int_org_matches import int_org_mentions as int_org_mentions
from assets.raw.reference import ORGID_PREFIXES

INT_ORG_IDENTITY = TableSpec(
    schema="intermediate",
    name="int_org_identity",
    grain="one organisation reference seen in any staged source",
    description="Maps every organisation reference to its canonical org_id with the method and "
    "evidence, plus the names it was published under.",
    columns=(
        Column("org_ref", "VARCHAR", "Reference as used in staging/intermediate tables.", False),
        Column("org_id", "VARCHAR", "Canonical organisation id: the strongest reference of its cluster (registered org-id > XI-PIC > 360G- > local id > FTNAME-, ties alphabetical).", False),
        Column("match_method", "VARCHAR", "How the reference joined its cluster: override_same | shared_identifier | exact_name | fuzzy_name (see intermediate.int_org_matches); for the canonical reference itself: identifier | self-assigned id | register id | name | redacted.", False),
        Column("match_evidence", "VARCHAR", "What supports the mapping, for review."),
        Column("name", "VARCHAR", "Most frequently published name (ties: alphabetical)."),
        Column("names_seen", "VARCHAR[]", "Every distinct name published for this reference, sorted."),
        Column("scheme", "VARCHAR", "Org-id scheme prefix (longest known prefix) or FTNAME/360G/PARTNERSHIP."),
        Column("org_type", "VARCHAR", "Kind of organisation implied by the scheme, or individual / person / partnership / redacted."),
        Column("country", "VARCHAR", "Country (ISO alpha-2): of the register if national, else as published."),
        Column("source_systems", "VARCHAR[]", "Sources that mention this reference."),
        Column("matched_to", "VARCHAR", "The cluster member this reference was matched with (NULL for the canonical reference)."),
        Column("match_score", "DOUBLE", "Score of that match: 100 for identifiers and exact names, the fuzzy score, NULL for overrides."),
    ),
    order_by=("org_ref",),
)  # fmt: skip


def canonical_org_id_sql(ref: str) -> str:
    """SQL for the canonical id of the organisation reference `ref` (itself when unknown)."""
    return f"coalesce((SELECT i.org_id FROM {INT_ORG_IDENTITY.qualified} i WHERE i.org_ref = {ref}), {ref})"


def cluster_links(
    refs: dict[str, int], pairs: list[tuple[str, str, str, float | None, str, int]]
) -> list[tuple[str, str, str | None, str | None, str | None, float | None]]:
    """(org_ref, org_id, method, evidence, matched_to, score) for every reference.

    `refs` maps each reference to its rank (lower is stronger); `pairs` are the accepted
    matches (ref_a, ref_b, method, score, evidence, step). Union-find gives the clusters; a
    breadth-first walk from the canonical reference over the pairs, in decision order, gives
    each member the pair that attached it.
    """
    parent = {r: r for r in refs}

    def find(r: str) -> str:
        while parent[r] != r:
            parent[r] = parent[parent[r]]
            r = parent[r]
        return r

    adjacency: dict[str, list[tuple[int, str, str, float | None, str]]] = defaultdict(list)
    for a, b, method, score, evidence, step in pairs:
        if a not in parent or b not in parent:
            continue
        parent[find(a)] = find(b)
        adjacency[a].append((step, b, method, score, evidence))
        adjacency[b].append((step, a, method, score, evidence))
    members: dict[str, list[str]] = defaultdict(list)
    for r in refs:
        members[find(r)].append(r)
    out = []
    for group in members.values():
        canonical = min(group, key=lambda r: (refs[r], r))
        out.append((canonical, canonical, None, None, None, None))
        if len(group) == 1:
            continue
        seen = {canonical}
        queue = deque([canonical])
        while queue:
            node = queue.popleft()
            for _, other, method, score, evidence in sorted(adjacency[node]):
                if other in seen:
                    continue
                seen.add(other)
                queue.append(other)
                out.append(
                    (other, canonical, method, f"{method} with {node}: {evidence}", node, score)
                )
    return sorted(out)


def _links_table(con: duckdb.DuckDBPyConnection) -> pa.Table:
    refs = {
        r[0]: int(r[1])
        for r in con.execute(
            f"SELECT DISTINCT org_ref, ft_ref_rank(org_ref) FROM {INT_ORG_MENTIONS.qualified}"
        ).fetchall()
    }
    links = cluster_links(refs, list(iter_match_rows(con)))
    cols = list(zip(*links, strict=True)) if links else [[] for _ in range(6)]
    return pa.table(
        {
            "org_ref": pa.array(cols[0], pa.string()),
            "org_id": pa.array(cols[1], pa.string()),
            "via_method": pa.array(cols[2], pa.string()),
            "via_evidence": pa.array(cols[3], pa.string()),
            "matched_to": pa.array(cols[4], pa.string()),
            "match_score": pa.array(cols[5], pa.float64()),
        }
    )


_SELECT = f"""
WITH m AS (SELECT * FROM {INT_ORG_MENTIONS.qualified}),
names AS (
  SELECT org_ref, name, sum(records) AS n FROM m WHERE name IS NOT NULL GROUP BY ALL
),
best_name AS (
  SELECT org_ref, first(name ORDER BY n DESC, name) AS name,
         list_sort(list(DISTINCT name)) AS names_seen
  FROM names GROUP BY org_ref
),
published_country AS (
  SELECT org_ref, first(country ORDER BY n DESC, country) AS country
  FROM (SELECT org_ref, country, sum(records) AS n FROM m WHERE country IS NOT NULL GROUP BY ALL)
  GROUP BY org_ref
),
refs AS (
  SELECT org_ref, list_sort(list(DISTINCT source_system)) AS source_systems,
    CASE WHEN starts_with(org_ref, 'FT-REDACTED-') OR bool_or(kind = 'redacted') THEN 'redacted'
         WHEN bool_or(kind = 'person') THEN 'person'
         WHEN bool_or(kind = 'individual') THEN 'individual'
         WHEN starts_with(org_ref, 'PARTNERSHIP:') THEN 'partnership' END AS special_type
  FROM m GROUP BY org_ref
),
scheme AS (
  SELECT r.org_ref, arg_max(p.prefix, length(p.prefix)) AS prefix,
         arg_max(p.org_type, length(p.prefix)) AS org_type,
         arg_max(p.country, length(p.prefix)) AS country
  FROM refs r JOIN {ORGID_PREFIXES.qualified} p ON starts_with(r.org_ref || '-', p.prefix || '-')
  GROUP BY r.org_ref
)
SELECT r.org_ref, l.org_id,
  coalesce(l.via_method,
    CASE WHEN starts_with(r.org_ref, 'FT-REDACTED-') THEN 'redacted'
         WHEN starts_with(r.org_ref, 'FTNAME-') THEN 'name'
         WHEN starts_with(r.org_ref, '360G-') THEN 'self-assigned id'
         WHEN ft_ref_rank(r.org_ref) = 3 THEN 'register id'
         ELSE 'identifier' END) AS match_method,
  coalesce(l.via_evidence,
    CASE WHEN starts_with(r.org_ref, 'FTNAME-') THEN 'no identifier published; normalised name ' || b.name
         WHEN starts_with(r.org_ref, 'FT-REDACTED-') THEN 'payee withheld by the publisher ' || substr(r.org_ref, 13)
         WHEN starts_with(r.org_ref, '360G-') THEN 'publisher-assigned 360Giving id'
         WHEN starts_with(r.org_ref, 'PARTNERSHIP:') THEN 'partnership id of the governance register'
         WHEN ft_ref_rank(r.org_ref) = 3 THEN 'local id assigned by the publisher'
         ELSE 'normalised org-id' END) AS match_evidence,
  CASE WHEN starts_with(r.org_ref, 'FT-REDACTED-')
       THEN 'Redacted payee (withheld by ' || substr(r.org_ref, 13) || ')' ELSE b.name END AS name,
  b.names_seen,
  coalesce(s.prefix, CASE WHEN starts_with(r.org_ref, 'FTNAME-') THEN 'FTNAME'
                          WHEN starts_with(r.org_ref, 'FT-REDACTED-') THEN 'FT-REDACTED'
                          WHEN starts_with(r.org_ref, '360G-') THEN '360G'
                          WHEN starts_with(r.org_ref, 'PARTNERSHIP:') THEN 'PARTNERSHIP'
                          ELSE nullif(regexp_extract(r.org_ref, '^([A-Z0-9]{{2,}}-[A-Z0-9]+)-', 1), '')
                     END) AS scheme,
  coalesce(r.special_type, s.org_type) AS org_type,
  CASE WHEN r.special_type = 'redacted' THEN NULL ELSE coalesce(s.country,
           CASE WHEN regexp_matches(r.org_ref, '^[A-Z]{{2}}-') AND NOT regexp_matches(r.org_ref, '^(FT|XI|XM)-')
                THEN regexp_extract(r.org_ref, '^([A-Z]{{2}})-', 1) END,
           c.country) END AS country,
  r.source_systems, l.matched_to, l.match_score
FROM refs r JOIN _ft_links l USING (org_ref)
LEFT JOIN best_name b USING (org_ref) LEFT JOIN scheme s USING (org_ref)
LEFT JOIN published_country c USING (org_ref)
"""


def build_int_org_identity(con: duckdb.DuckDBPyConnection) -> int:
    """Rebuild the identity table from int_org_mentions and int_org_matches."""
    install_macros(con)
    con.register("_ft_links", _links_table(con))
    try:
        return rebuild_table(con, INT_ORG_IDENTITY, _SELECT)
    finally:
        con.unregister("_ft_links")


@dg.asset(
    key=INT_ORG_IDENTITY.asset_key,
    group_name="intermediate",
    kinds={"duckdb", "sql"},
    description=INT_ORG_IDENTITY.doc,
    deps=[INT_ORG_MENTIONS.asset_key, INT_ORG_MATCHES.asset_key, ORGID_PREFIXES.asset_key],
)
@skip_unchanged
def int_org_identity(duckdb: DuckDBResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        build_int_org_identity(con)
        merged = con.execute(
            f"SELECT count(*) FILTER (WHERE org_ref <> org_id), count(DISTINCT org_id) "
            f"FROM {INT_ORG_IDENTITY.qualified}"
        ).fetchall()
        extra = {"refs_merged": merged[0][0], "organisations": merged[0][1]} if merged else {}
        return materialize_result(con, INT_ORG_IDENTITY, extra)
