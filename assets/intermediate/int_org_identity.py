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

A row depends only on its reference's mentions and on its link (the pair that attached it),
so a build redoes only the references whose mentions hash (`quality.key_digests`,
see int_org_matches) or link changed, when the table is as last built with the same code and
org-id prefixes (its entry `intermediate.int_org_identity#refs` in `quality.build_fingerprints`);
otherwise it rebuilds every row. The links come from union-find over the accepted pairs
(singletons, most references, stay in SQL), except when the clusters keep their shape (the same
accepted pairs but for their evidence, entry `intermediate.int_org_identity#links`, a new file
of known recipients): then each attached reference's link is read back from the table, with the
current evidence of the pair that attached it. Rows and state are written in one transaction.
"""

import json
import time
from collections import defaultdict, deque

import dagster as dg
import duckdb
import pyarrow as pa
from dagster_duckdb import DuckDBResource

from assets.common.fingerprint import (
    input_fingerprint,
    record_in_transaction,
    skip_unchanged,
    stored_entry,
)
from assets.common.python_gc import gc_paused
from assets.common.tables import (
    Column,
    TableSpec,
    log_change,
    materialize_result,
    rebuild_table,
    registered,
    registered_table,
    scalar_int,
    transaction,
)
from assets.intermediate.int_org_matches import (
    ACCEPTED_PAIRS_SQL,
    INT_ORG_MATCHES,
    INT_ORG_MENTIONS,
    BuildResult,
    changed_refs,
    ensure_state,
    install_macros,
    iter_match_rows,
    ref_digests,
    save_state,
    stored_state,
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


# its state in quality.build_fingerprints (see DECISIONS_KEY in int_org_matches)
REFS_KEY = f"{INT_ORG_IDENTITY.qualified}#refs"
# the shape of the clusters the table's links were computed from (see _links_shape)
LINKS_KEY = f"{INT_ORG_IDENTITY.qualified}#links"


def canonical_org_id_sql(ref: str) -> str:
    """SQL for the canonical id of the organisation reference `ref` (itself when unknown)."""
    return f"coalesce((SELECT i.org_id FROM {INT_ORG_IDENTITY.qualified} i WHERE i.org_ref = {ref}), {ref})"


# (org_ref, org_id, method, evidence, matched_to, score)
Link = tuple[str, str, str, str, str, float | None]


def cluster_links(
    refs: dict[str, int], pairs: list[tuple[str, str, str, float | None, str, int]]
) -> list[Link]:
    """(org_ref, org_id, method, evidence, matched_to, score) for every reference attached
    to another, unordered; the others are their own canonical reference.

    `refs` maps each reference to its rank (lower is stronger), at least for those of the
    pairs; `pairs` are the accepted matches (ref_a, ref_b, method, score, evidence, step).
    Union-find over the references of the pairs gives the clusters; a breadth-first walk
    from the canonical reference over the pairs, in decision order, gives each member the
    pair that attached it. Singletons never enter Python: most references are.
    """
    parent: dict[str, str] = {}

    def find(r: str) -> str:
        while (p := parent[r]) != r:
            parent[r] = parent[p]
            r = parent[p]
        return r

    adjacency: dict[str, list[tuple[int, str, str, float | None, str]]] = defaultdict(list)
    for a, b, method, score, evidence, step in pairs:
        if a not in refs or b not in refs:
            continue
        parent.setdefault(a, a)
        parent.setdefault(b, b)
        parent[find(a)] = find(b)
        adjacency[a].append((step, b, method, score, evidence))
        adjacency[b].append((step, a, method, score, evidence))
    members: dict[str, list[str]] = defaultdict(list)
    for r in parent:
        members[find(r)].append(r)
    out: list[Link] = []
    for group in members.values():
        canonical = min(group, key=lambda r: (refs[r], r))
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
    return out


def _links_shape(con: duckdb.DuckDBPyConnection) -> str:
    """Fingerprint of what the links rest on besides the pairs' evidence: the code and the
    accepted pairs between references mentioned (_ft_digests). A new file of known recipients
    re-renders the evidence of their pairs but leaves this as it was."""
    row = con.execute(
        f"SELECT count(*), sum(hash(ref_a, ref_b, method, score, step)) FROM ({ACCEPTED_PAIRS_SQL}) "
        "WHERE ref_a IN (SELECT org_ref FROM _ft_digests) "
        "AND ref_b IN (SELECT org_ref FROM _ft_digests)"
    ).fetchall()
    return input_fingerprint(con, [LINKS_KEY], [], json.dumps(row, default=str))


# cluster_links read back from a table built with the same shape: each attached reference
# keeps its canonical id and the member it was attached to; the pair that attached it (the
# earliest accepted pair between the two, as in the breadth-first walk) gives method, score
# and today's evidence
_LINKS_FROM_TABLE = f"""
WITH pairs AS (
  SELECT ref_a AS ref, ref_b AS other, method, score, evidence, step FROM ({ACCEPTED_PAIRS_SQL})
  UNION ALL
  SELECT ref_b, ref_a, method, score, evidence, step FROM ({ACCEPTED_PAIRS_SQL})
)
SELECT i.org_ref, i.org_id, p.method AS via_method,
  p.method || ' with ' || i.matched_to || ': ' || p.evidence AS via_evidence,
  i.matched_to, p.score AS match_score
FROM {INT_ORG_IDENTITY.qualified} i
JOIN pairs p ON p.ref = i.org_ref AND p.other = i.matched_to
WHERE i.matched_to IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY i.org_ref ORDER BY p.step) = 1
"""


# ~46k pairs and their links at scale 1 hold no cycles: the collector's passes over them
# were half of the closure's time (0.50 -> 0.26 s)
@gc_paused()
def _links_table(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """cluster_links over the references mentioned (those of _ft_digests)."""
    pairs = list(iter_match_rows(con))
    with registered(con, "_ft_tmp", {"org_ref": sorted({r for p in pairs for r in p[:2]})}):
        refs = dict(
            con.execute(
                "SELECT org_ref, ft_ref_rank(org_ref) FROM _ft_digests "
                "SEMI JOIN _ft_tmp USING (org_ref)"
            ).fetchall()
        )
    links = cluster_links(refs, pairs)
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


def _select(mentions: str) -> str:
    """The identity rows of the references of `mentions` (a query of mention rows: all of
    them, or those of the references to redo); a row depends on its own mentions only."""
    return f"""
WITH m AS ({mentions}),
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
SELECT r.org_ref, coalesce(l.org_id, r.org_ref) AS org_id,
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
FROM refs r LEFT JOIN _ft_links l USING (org_ref)
LEFT JOIN best_name b USING (org_ref) LEFT JOIN scheme s USING (org_ref)
LEFT JOIN published_country c USING (org_ref)
"""


# references whose identity row would change with the links of _ft_links: the attached
# ones, as the table holds them (the others have no link and no matched_to)
_LINK_CHANGED = f"""
SELECT org_ref FROM _ft_links l FULL JOIN (
  SELECT org_ref, org_id, match_method, match_evidence, matched_to, match_score
  FROM {INT_ORG_IDENTITY.qualified} WHERE matched_to IS NOT NULL) i USING (org_ref)
WHERE l.org_id IS DISTINCT FROM i.org_id OR l.via_method IS DISTINCT FROM i.match_method
   OR l.via_evidence IS DISTINCT FROM i.match_evidence
   OR l.matched_to IS DISTINCT FROM i.matched_to OR l.match_score IS DISTINCT FROM i.match_score
"""


def _row_hashes(refs: str) -> str:
    """SQL of (org_ref, n, h, org_ids): the identity rows of the references in `refs` (column
    org_ref), hashed whole (count and sum: a reference has one row, the GX suite checks it),
    and their canonical ids."""
    return (
        f"SELECT org_ref, count(*) AS n, sum(hash({INT_ORG_IDENTITY.select_list()})) AS h, "
        "list(org_id) AS org_ids "
        f"FROM {INT_ORG_IDENTITY.qualified} WHERE org_ref IN (SELECT org_ref FROM {refs}) "
        "GROUP BY org_ref"
    )


def build_int_org_identity(con: duckdb.DuckDBPyConnection) -> BuildResult:
    """Bring the identity table up to date with int_org_mentions and int_org_matches.

    A row depends only on its reference's mentions and its link, so when the table is as
    last built (same code and prefixes, same row count) only the references whose mentions
    digest or link changed are redone; otherwise every row is.
    """
    install_macros(con)
    ensure_state(con)
    context = input_fingerprint(con, [REFS_KEY], [ORGID_PREFIXES.qualified])
    timings: dict[str, float] = {}
    t = time.perf_counter()
    ref_digests(con, decisions=False)
    timings["digests_s"] = time.perf_counter() - t
    t = time.perf_counter()
    why = stored_state(con, INT_ORG_IDENTITY, REFS_KEY, context)
    shape = _links_shape(con)
    entry = stored_entry(con, LINKS_KEY)
    if why is None and entry is not None and entry[0] == shape:
        # the clusters are as the table holds them: no union-find in Python
        con.execute(f"CREATE OR REPLACE TEMP TABLE _ft_links AS {_LINKS_FROM_TABLE}")
        timings["links_from_table_s"] = time.perf_counter() - t
    else:
        with registered_table(con, "_ft_new_links", _links_table(con)):
            con.execute("CREATE OR REPLACE TEMP TABLE _ft_links AS SELECT * FROM _ft_new_links")
        timings["links_s"] = time.perf_counter() - t
    t = time.perf_counter()
    try:
        if why is None:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _ft_changed AS "
                f"{changed_refs(INT_ORG_IDENTITY, 'mentions')} UNION {_LINK_CHANGED}"
            )
        with transaction(con):
            if why is None:
                # the redone references' rows before, to log those that changed
                con.execute(
                    f"CREATE OR REPLACE TEMP TABLE _ft_before AS {_row_hashes('_ft_changed')}"
                )
                con.execute(
                    f"DELETE FROM {INT_ORG_IDENTITY.qualified} "
                    "WHERE org_ref IN (SELECT org_ref FROM _ft_changed)"
                )
                mentions = (
                    f"SELECT * FROM {INT_ORG_MENTIONS.qualified} "
                    "SEMI JOIN _ft_changed USING (org_ref)"
                )
                con.execute(
                    f"INSERT INTO {INT_ORG_IDENTITY.qualified} "
                    f"({INT_ORG_IDENTITY.select_list()}) "
                    f"SELECT {INT_ORG_IDENTITY.select_list()} "
                    f"FROM ({_select(mentions)}) ORDER BY org_ref"
                )
                redone = scalar_int(con, "SELECT count(*) FROM _ft_changed")
                path = f"{redone} reference(s) redone (mentions or links changed)"
                con.execute(
                    f"CREATE OR REPLACE TEMP TABLE _ft_after AS {_row_hashes('_ft_changed')}"
                )
                changed = (
                    "SELECT org_ref, b.org_ids AS before, a.org_ids AS after FROM _ft_before b "
                    "FULL JOIN _ft_after a USING (org_ref) "
                    "WHERE a.h IS DISTINCT FROM b.h OR a.n IS DISTINCT FROM b.n"
                )
                # their canonical ids before and after: the organisations they left and joined
                log_change(
                    con,
                    INT_ORG_IDENTITY.qualified,
                    {
                        "org_ref": f"SELECT org_ref FROM ({changed})",
                        "org_id": f"SELECT unnest(list_concat(before, after)) FROM ({changed})",
                    },
                )
                con.execute("DROP TABLE _ft_after")
                con.execute("DROP TABLE _ft_before")
            else:
                mentions = f"SELECT * FROM {INT_ORG_MENTIONS.qualified}"
                rebuild_table(con, INT_ORG_IDENTITY, _select(mentions))
                path = f"every reference redone: {why}"
            refs = "SELECT org_ref FROM _ft_changed" if why is None else None
            n = save_state(con, INT_ORG_IDENTITY, REFS_KEY, context, refs)
            record_in_transaction(con, LINKS_KEY, shape, None)
    finally:
        con.execute("DROP TABLE IF EXISTS _ft_links")
    timings["rows_s"] = time.perf_counter() - t
    return BuildResult(n, path, timings)


@dg.asset(
    key=INT_ORG_IDENTITY.asset_key,
    group_name="intermediate",
    kinds={"duckdb", "sql"},
    description=INT_ORG_IDENTITY.doc,
    deps=[INT_ORG_MENTIONS.asset_key, INT_ORG_MATCHES.asset_key, ORGID_PREFIXES.asset_key],
)
@skip_unchanged
def int_org_identity(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        built = build_int_org_identity(con)
        context.log.info(f"{built.path}; timings {built.timings}")
        merged = con.execute(
            f"SELECT count(*) FILTER (WHERE org_ref <> org_id), count(DISTINCT org_id) "
            f"FROM {INT_ORG_IDENTITY.qualified}"
        ).fetchall()
        extra = {"refs_merged": merged[0][0], "organisations": merged[0][1]} if merged else {}
        extra["build"] = built.path
        return materialize_result(con, INT_ORG_IDENTITY, extra)
