"""Funding level of a funder: from who the funder is, never from the folder a file sat in.

Rule, first match wins: the funder's id in `raw.ref_funders`; the longest org-id prefix in
`raw.ref_orgid_prefixes` that has a level; otherwise 'unknown' (surfaced by a warning check).
"""

from __future__ import annotations


def funder_levels_sql(refs_sql: str) -> str:
    """SQL giving (org_ref, funding_level, funding_level_basis) for the distinct `org_ref`
    values produced by `refs_sql` (a query with one column named org_ref)."""
    return f"""
    WITH refs AS (SELECT DISTINCT org_ref FROM ({refs_sql}) WHERE org_ref IS NOT NULL),
    by_prefix AS (
      SELECT r.org_ref, arg_max(p.level, length(p.prefix)) AS level,
             arg_max(p.prefix, length(p.prefix)) AS prefix
      FROM refs r JOIN raw.ref_orgid_prefixes p
        ON p.level IS NOT NULL AND starts_with(r.org_ref || '-', p.prefix || '-')
      GROUP BY r.org_ref
    )
    SELECT r.org_ref,
      coalesce(f.level, b.level, 'unknown') AS funding_level,
      CASE WHEN f.level IS NOT NULL THEN 'funder reference: ' || f.origin
           WHEN b.level IS NOT NULL THEN 'org-id prefix ' || b.prefix
           ELSE 'no rule matched' END AS funding_level_basis
    FROM refs r
    LEFT JOIN raw.ref_funders f ON f.funder_id = r.org_ref
    LEFT JOIN by_prefix b ON b.org_ref = r.org_ref
    """
