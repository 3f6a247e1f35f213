"""Jobs and schedules: one job materializes everything; it runs nightly at 02:00 London time.

With the raw layer partitioned by file (`FUNDTRACE_RAW_PARTITIONS=file`, pipelines/partitions.py)
the job of that name leaves out the partitioned raw assets, which a job cannot mix with
unpartitioned ones: the `raw_files_<source>` jobs ingest them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:  # what define_asset_job returns; dagster does not export the type
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

ALL_ASSETS_JOB_NAME = "fundtrace_all"


def all_assets_job(
    exclude: Collection[dg.AssetKey] = (), tags: Mapping[str, str] | None = None
) -> UnresolvedAssetJobDefinition:
    """`fundtrace_all`: every asset and check, except `exclude` (partitioned raw assets)."""
    selection = dg.AssetSelection.all()
    if exclude:
        selection = selection - dg.AssetSelection.assets(*exclude)
    return dg.define_asset_job(
        name=ALL_ASSETS_JOB_NAME,
        selection=selection,
        description=(
            "Ingest every source in $FUNDTRACE_RAW_DIR, run all checks, rebuild and publish the "
            "marts."
            if not exclude
            else "Everything downstream of the raw files (the raw_files_* jobs ingest those): "
            "run all checks, rebuild and publish the marts."
        ),
        executor_def=dg.in_process_executor,
        # transient I/O (a file still being copied, a locked share) gets two more tries
        op_retry_policy=dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL),
        tags=tags,
    )


def nightly_schedule(job: UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="fundtrace_nightly",
        job=job,
        cron_schedule="0 2 * * *",
        execution_timezone="Europe/London",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Nightly full build at 02:00 Europe/London (unchanged files are not "
        "re-parsed).",
    )


fundtrace_all = all_assets_job()
nightly = nightly_schedule(fundtrace_all)
