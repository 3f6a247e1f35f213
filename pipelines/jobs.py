"""Jobs and schedules: one job materializes everything; it runs nightly at 02:00 London time."""

import dagster as dg

ALL_ASSETS_JOB_NAME = "fundtrace_all"

fundtrace_all = dg.define_asset_job(
    name=ALL_ASSETS_JOB_NAME,
    selection=dg.AssetSelection.all(),
    description="Ingest every source in $FUNDTRACE_RAW_DIR, run all checks, rebuild and "
    "publish the marts.",
    executor_def=dg.in_process_executor,
    # transient I/O (a file still being copied, a locked share) gets two more tries
    op_retry_policy=dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL),
)

nightly = dg.ScheduleDefinition(
    name="fundtrace_nightly",
    job=fundtrace_all,
    cron_schedule="0 2 * * *",
    execution_timezone="Europe/London",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly full build at 02:00 Europe/London (unchanged files are not re-parsed).",
)
