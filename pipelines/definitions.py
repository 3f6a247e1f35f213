"""The one place Fundtrace's Dagster definitions are assembled (workspace.yaml points here).

Groups are layers (raw, staging, intermediate, marts) and each group is a DuckDB schema of the
same name in the build database. Great Expectations suites in `expectations/` become asset
checks. Runs use the in-process executor: the multiprocess default costs ~1.5 s per asset.
`FUNDTRACE_RAW_PARTITIONS=file` partitions the raw assets by source file (pipelines/partitions.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from assets.intermediate import (
    int_control_edges,
    int_funding_awards,
    int_money_flows,
    int_org_identity,
    int_procurement_awards,
)
from assets.marts import control, core, data_quality, procurement, publish, red_flags, report
from assets.raw import (
    bods,
    council_spend,
    eu_cordis,
    eu_fts,
    eu_kohesio,
    governance,
    ocds,
    private_funding,
    reference,
    ted,
    threesixty_giving,
)
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
from pipelines.jobs import all_assets_job, fundtrace_all, nightly, nightly_schedule
from pipelines.partitions import (
    DOWNSTREAM_TAG,
    partition_raw_assets,
    partitioned_folders,
    raw_jobs,
    raw_partitions_from_env,
)
from pipelines.quality import EXPECTATIONS_DIR, build_gx_asset_checks
from pipelines.resources import (
    build_database,
    build_db_from_env,
    marts_db_from_env,
    settings_from_env,
)
from pipelines.sensors import raw_file_partitions_sensor, raw_files_sensor, run_failure_notifier
from pipelines.ui_metadata import with_ui_metadata

if TYPE_CHECKING:  # what define_asset_job returns; dagster does not export the type
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

ASSET_MODULES = [
    reference,
    threesixty_giving,
    council_spend,
    eu_cordis,
    eu_fts,
    eu_kohesio,
    private_funding,
    governance,
    ted,
    ocds,
    bods,
    stg_360giving_grants,
    stg_council_spend_payments,
    stg_cordis,
    stg_eu_fts_commitments,
    stg_kohesio,
    stg_private_funding,
    stg_governance,
    stg_ted_awards,
    stg_ocds,
    stg_bods,
    int_funding_awards,
    int_money_flows,
    int_org_identity,
    int_procurement_awards,
    int_control_edges,
    core,
    control,
    procurement,
    red_flags,
    data_quality,
    publish,
    report,
]


def build_definitions(expectations_dir: Path = EXPECTATIONS_DIR) -> dg.Definitions:
    """Definitions for the paths and raw partitioning in the environment (read now, so tests
    can vary them)."""
    marts_db = marts_db_from_env()
    build_db = build_db_from_env(marts_db)
    build_db.parent.mkdir(parents=True, exist_ok=True)
    assets = with_ui_metadata(
        [
            a
            for a in dg.load_assets_from_modules(ASSET_MODULES)
            if isinstance(a, dg.AssetsDefinition)
        ],
        expectations_dir,
    )
    jobs: list[UnresolvedAssetJobDefinition] = [fundtrace_all]
    schedules = [nightly]
    sensors = [raw_files_sensor, run_failure_notifier]
    if raw_partitions_from_env() == "file":
        assets = partition_raw_assets(assets)
        folders = partitioned_folders(assets)
        downstream = all_assets_job(
            exclude=[k for _, keys in folders for k in keys], tags={DOWNSTREAM_TAG: "1"}
        )
        folder_jobs = raw_jobs(folders)
        jobs = [downstream, *(job for _, job in folder_jobs)]
        schedules = [nightly_schedule(downstream)]
        sensors = [raw_file_partitions_sensor(downstream, folder_jobs), run_failure_notifier]
    return dg.Definitions(
        assets=assets,
        asset_checks=build_gx_asset_checks(expectations_dir),
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources={
            "duckdb": build_database(build_db),
            "fundtrace": settings_from_env(),
        },
        executor=dg.in_process_executor,
    )


defs = build_definitions()
