"""`marts.data_quality`: for every source file, what came in, what loaded, what was quarantined.

Checks per file: `ingest` (records read from the file vs written to raw vs quarantined) and
`staging` (raw records vs staged vs quarantined by staging rules), each reconciling
rows_in = rows_loaded + rows_quarantined; plus one `gx:<suite>` row per file naming the Great
Expectations results of the staging table the file feeds.
"""

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.fingerprint import skip_unchanged
from assets.common.tables import Column, TableSpec, materialize_result, rebuild_table
from assets.raw.ingest import FILE_MANIFEST, QUARANTINE
from assets.staging import (
    stg_360giving_grants,
    stg_bods,
    stg_cordis,
    stg_council_spend_payments,
    stg_eu_fts_commitments,
    stg_governance,
    stg_kohesio,
    stg_ocds,
    stg_private_funding,
    stg_ted_awards,
)
from assets.staging.quarantine import STG_QUARANTINE
from assets.staging.registry import StagingPair
from pipelines.quality import RESULTS_TABLE, ensure_results_table

# Every staging model with its raw table; new sources add their STAGING_PAIRS here.
SOURCES: tuple[StagingPair, ...] = (
    *stg_360giving_grants.STAGING_PAIRS,
    *stg_council_spend_payments.STAGING_PAIRS,
    *stg_governance.STAGING_PAIRS,
    *stg_cordis.STAGING_PAIRS,
    *stg_eu_fts_commitments.STAGING_PAIRS,
    *stg_kohesio.STAGING_PAIRS,
    *stg_private_funding.STAGING_PAIRS,
    *stg_ted_awards.STAGING_PAIRS,
    *stg_bods.STAGING_PAIRS,
    *stg_ocds.STAGING_PAIRS,
)

GX_RESULTS_TABLE = RESULTS_TABLE

DATA_QUALITY = TableSpec(
    schema="marts",
    name="data_quality",
    grain="one source file x check",
    description="Per source file: records in, loaded and quarantined at ingest and at staging "
    "(rows_in = rows_loaded + rows_quarantined), and the Great Expectations outcome of the "
    "table the file feeds. Quarantined records are listed with reasons in raw.raw_quarantine "
    "and staging.stg_quarantine of the build database.",
    columns=(
        Column("source_system", "VARCHAR", "Source system (raw folder).", False),
        Column("source_file", "VARCHAR", "File path relative to FUNDTRACE_RAW_DIR.", False),
        Column("file_sha256", "VARCHAR", "SHA-256 of the file content checked.", False),
        Column("check_name", "VARCHAR", "ingest | staging:<staging table> | gx:<suite>.", False),
        Column("status", "VARCHAR", "ok | quarantined_rows | failed | warning.", False),
        Column("rows_in", "BIGINT", "Records entering the check (NULL for gx rows)."),
        Column("rows_loaded", "BIGINT", "Records that passed (NULL for gx rows)."),
        Column("rows_quarantined", "BIGINT", "Records quarantined (NULL for gx rows)."),
        Column("failed_expectations", "VARCHAR[]", "Failed or errored expectations (gx rows), critical ones marked [critical]."),
        Column("message", "VARCHAR", "File-level problem or first quarantine reasons."),
    ),
    order_by=("source_system", "source_file", "check_name"),
)  # fmt: skip


def _files(src: StagingPair) -> str:
    """Files of the source that feed this staging table: those with rows in its raw table or
    in its quarantine; for single-table sources every file that was read."""
    single = len(sources_of(src.source_system)) == 1
    return f"""
    SELECT m.source_system, m.source_file, m.file_sha256 FROM {FILE_MANIFEST.qualified} m
    WHERE m.source_system = '{src.source_system}' AND m.status <> 'failed'
      AND ({str(single).lower()}
           OR m.source_file IN (SELECT source_file FROM {src.raw.qualified})
           OR m.source_file IN (SELECT source_file FROM {STG_QUARANTINE.qualified}
                                WHERE staging_table = '{src.staging.name}'))
    """


def _staging_rows(src: StagingPair) -> str:
    return f"""
    SELECT m.source_system, m.source_file, m.file_sha256,
      'staging:{src.staging.name}' AS check_name,
      coalesce(r.n, 0) AS rows_in, coalesce(s.n, 0) AS rows_loaded, coalesce(q.n, 0) AS rows_quarantined,
      q.reasons AS message
    FROM ({_files(src)}) m
    LEFT JOIN (SELECT source_file, count(*) AS n FROM {src.raw.qualified} GROUP BY 1) r USING (source_file)
    LEFT JOIN (SELECT source_file, count(*) AS n FROM {src.staging.qualified} GROUP BY 1) s USING (source_file)
    LEFT JOIN (
      SELECT source_file, count(*) AS n,
             string_agg(DISTINCT regexp_extract(reason, '^[^:]*'), '; ' ORDER BY regexp_extract(reason, '^[^:]*')) AS reasons
      FROM {STG_QUARANTINE.qualified} WHERE staging_table = '{src.staging.name}' GROUP BY 1
    ) q USING (source_file)
    """


def sources_of(source_system: str) -> list[StagingPair]:
    return [s for s in SOURCES if s.source_system == source_system]


def _gx_rows(src: StagingPair) -> str:
    suite = f"{src.staging.schema}__{src.staging.name}"
    return f"""
    SELECT m.source_system, m.source_file, m.file_sha256, 'gx:{suite}' AS check_name,
      NULL AS rows_in, NULL AS rows_loaded, NULL AS rows_quarantined,
      g.failed AS message_list, g.any_critical, g.any_failed, g.evaluated
    FROM ({_files(src)}) m
    CROSS JOIN (
      SELECT count(*) AS evaluated,
        list_sort(list(expectation || CASE WHEN severity = 'critical' THEN ' [critical]' ELSE '' END
                       || CASE WHEN errored THEN ' [errored]' ELSE '' END)
                  FILTER (WHERE NOT success OR errored)) AS failed,
        bool_or((NOT success OR errored) AND severity = 'critical') AS any_critical,
        bool_or(NOT success OR errored) AS any_failed
      FROM {GX_RESULTS_TABLE} WHERE suite = '{suite}'
    ) g
    WHERE g.evaluated > 0
    """


def build_data_quality(con: duckdb.DuckDBPyConnection) -> int:
    ensure_results_table(con)
    parts = [
        f"""SELECT source_system, source_file, file_sha256, 'ingest' AS check_name,
          CASE status WHEN 'failed' THEN 'failed' WHEN 'partial' THEN 'quarantined_rows' ELSE 'ok' END AS status,
          rows_in, rows_loaded, rows_quarantined, CAST(NULL AS VARCHAR[]) AS failed_expectations,
          message
        FROM {FILE_MANIFEST.qualified}"""
    ]
    for src in SOURCES:
        parts.append(
            f"""SELECT source_system, source_file, file_sha256, check_name,
              CASE WHEN rows_quarantined > 0 THEN 'quarantined_rows' ELSE 'ok' END,
              rows_in, rows_loaded, rows_quarantined, CAST(NULL AS VARCHAR[]), message
            FROM ({_staging_rows(src)})"""
        )
        parts.append(
            f"""SELECT source_system, source_file, file_sha256, check_name,
              CASE WHEN any_critical THEN 'failed' WHEN any_failed THEN 'warning' ELSE 'ok' END,
              rows_in, rows_loaded, rows_quarantined, message_list,
              evaluated || ' expectations evaluated on the staging table'
            FROM ({_gx_rows(src)})"""
        )
    return rebuild_table(con, DATA_QUALITY, " UNION ALL ".join(parts))


# Reads the shared manifest, quarantines and GX results besides its deps: only the rows of
# its SOURCES, because other staging tables and the later layers' checks write theirs after
# this asset was built, which would make every next run look changed.
_STAGED = ", ".join(f"'{src.staging.name}'" for src in SOURCES)
_SUITES = ", ".join(f"'{src.staging.schema}__{src.staging.name}'" for src in SOURCES)


@dg.asset(
    key=DATA_QUALITY.asset_key,
    group_name="marts",
    kinds={"duckdb", "sql", "great_expectations"},
    description=DATA_QUALITY.doc,
    deps=[src.staging.asset_key for src in SOURCES] + [src.raw.asset_key for src in SOURCES],
)
@skip_unchanged(
    extra_tables=(
        FILE_MANIFEST.qualified,
        QUARANTINE.qualified,
        f"{STG_QUARANTINE.qualified} WHERE staging_table IN ({_STAGED})",
        f"{GX_RESULTS_TABLE} WHERE suite IN ({_SUITES})",
    )
)
def data_quality(duckdb: DuckDBResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        build_data_quality(con)
        return materialize_result(con, DATA_QUALITY, preview_rows=10)
