"""Sensors: new or changed raw files launch a run; a failed run is reported.

- `fundtrace_raw_files` (default STOPPED; enable it in the UI, see README "Operations"):
  fingerprints every file under $FUNDTRACE_RAW_DIR (path, size, mtime) and, when a source
  folder changed, launches the job for that folder's raw assets and everything downstream.
  Unchanged files are not re-parsed by the run anyway (content hashes), so a false positive
  costs little.
- `fundtrace_run_failure_notifier` (default RUNNING): logs every failed run of the job and,
  when FUNDTRACE_ALERT_WEBHOOK_URL is set, POSTs a JSON message to it (Slack/Teams/Matrix
  style `{"text": ...}` plus structured fields). Webhook errors are logged, never raised.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from pipelines.jobs import fundtrace_all
from pipelines.partitions import (
    RAW_PARTITIONS_TAG,
    RawFolder,
    key_changes,
    range_tags,
    run_state,
)
from pipelines.resources import raw_dir_from_env

if TYPE_CHECKING:
    from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

WEBHOOK_ENV = "FUNDTRACE_ALERT_WEBHOOK_URL"


def raw_fingerprint(raw_dir: Path) -> dict[str, list[int]]:
    """relative path -> [size, mtime_ns] for every visible file below `raw_dir`."""
    if not raw_dir.is_dir():
        return {}
    out: dict[str, list[int]] = {}
    for path in sorted(raw_dir.rglob("*")):
        rel = path.relative_to(raw_dir)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            stat = path.stat()
            out[rel.as_posix()] = [stat.st_size, stat.st_mtime_ns]
    return out


def changed_folders(before: dict[str, list[int]], after: dict[str, list[int]]) -> set[str]:
    """Top-level source folders with an added, changed or removed file."""
    changed = {rel for rel in set(before) | set(after) if before.get(rel) != after.get(rel)}
    return {rel.split("/", 1)[0] for rel in changed if "/" in rel}


def raw_keys_for_folders(
    folders: set[str], raw_specs: list[dg.AssetSpec]
) -> tuple[list[dg.AssetKey], set[str]]:
    """Raw asset keys fed by `folders` (matched on the `source_system`/`source_folder` tag)
    and the folders no asset reads."""
    keys: list[dg.AssetKey] = []
    unmatched = set(folders)
    for spec in raw_specs:
        folder = spec.tags.get("source_folder") or spec.tags.get("source_system")
        if folder in folders:
            keys.append(spec.key)
            unmatched.discard(folder)
    return sorted(keys, key=lambda k: k.to_user_string()), unmatched


def run_selection(graph: BaseAssetGraph, folders: set[str]) -> tuple[list[dg.AssetKey], set[str]]:
    """What a change in the source `folders` launches: their raw assets and everything
    downstream (sorted keys; checks of these assets run with them), and the folders no asset
    reads. The benchmark's one-new-file run uses the same selection."""
    raw_specs = [
        graph.get(key).to_asset_spec()  # type: ignore[attr-defined]
        for key in graph.get_all_asset_keys()
        if key.path[0] == "raw"
    ]
    keys, unmatched = raw_keys_for_folders(folders, raw_specs)
    if not keys:
        return [], unmatched
    selected = dg.AssetSelection.assets(*keys).downstream().resolve(graph)
    return sorted(selected, key=lambda k: k.to_user_string()), unmatched


@dg.sensor(
    name="fundtrace_raw_files",
    job=fundtrace_all,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Launches a run when files in $FUNDTRACE_RAW_DIR are added, changed or removed.",
)
def raw_files_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    raw_dir = raw_dir_from_env()
    after = raw_fingerprint(raw_dir)
    if context.cursor is None:
        # first tick after enabling: remember the folder, don't rebuild what the schedule owns
        return dg.SensorResult(
            skip_reason=f"watching {raw_dir} ({len(after)} files)", cursor=json.dumps(after)
        )
    before = json.loads(context.cursor)
    folders = changed_folders(before, after)
    if not folders:
        return dg.SkipReason(f"no change in {raw_dir}")
    assert context.repository_def is not None
    selection, unmatched = run_selection(context.repository_def.asset_graph, folders)
    if unmatched:
        context.log.warning(f"no asset reads folder(s) {sorted(unmatched)}; ignoring them")
    if not selection:
        return dg.SensorResult(
            skip_reason=f"changes only in unread folders {sorted(folders)}",
            cursor=json.dumps(after),
        )
    run_key = hashlib.sha256(json.dumps(after, sort_keys=True).encode()).hexdigest()[:16]
    context.log.info(
        f"changed folders {sorted(folders)} -> {len(selection)} assets (raw and downstream)"
    )
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=run_key,
                asset_selection=selection,
                tags={
                    "fundtrace/trigger": "raw_files",
                    "fundtrace/folders": ",".join(sorted(folders)),
                },
            )
        ],
        cursor=json.dumps(after),
    )


# more changed files than this in one folder and tick: one run over the folder's partitions
# (unchanged files are skipped by their content hash) instead of one run per file
FAN_OUT_LIMIT = 16


def file_partition_requests(
    folder: RawFolder,
    job_name: str,
    before: dict[str, list[int]],
    after: dict[str, list[int]],
    keys_after: list[str],
    fan_out_limit: int = FAN_OUT_LIMIT,
) -> list[dg.RunRequest]:
    """Runs ingesting what changed in `folder` between two fingerprints: one per new or changed
    file (its partition), or, beyond `fan_out_limit` files or on the first tick (no `before`),
    one over all `keys_after`; a removed file is forgotten by a run of the folder's own
    partition."""
    prefix = folder.folder_key
    mine = {k: v for k, v in after.items() if k.startswith(prefix)}
    was = {k: v for k, v in before.items() if k.startswith(prefix)}
    changed = sorted(k for k in keys_after if k in mine and was.get(k) != mine[k])
    removed = sorted(set(was) - set(mine))
    tags = {RAW_PARTITIONS_TAG: "1", "fundtrace/trigger": "raw_files"}
    if len(changed) > fan_out_limit or (changed and not before):  # or the sensor's first tick
        stamp = hashlib.sha256(json.dumps(mine, sort_keys=True).encode()).hexdigest()[:16]
        return [
            dg.RunRequest(
                run_key=f"{folder.folder}@{stamp}",
                job_name=job_name,
                tags={**tags, **range_tags(keys_after)},
            )
        ]
    out = [
        dg.RunRequest(
            run_key=f"{k}@{mine[k][0]}:{mine[k][1]}",
            job_name=job_name,
            partition_key=k,
            tags=tags,
        )
        for k in changed
    ]
    if removed:
        gone = hashlib.sha256(json.dumps(removed).encode()).hexdigest()[:16]
        out.append(
            dg.RunRequest(
                run_key=f"{prefix}-{gone}",
                job_name=job_name,
                partition_key=prefix,
                tags={**tags, "fundtrace/removed": ",".join(removed)[:1000]},
            )
        )
    return out


def raw_file_partitions_sensor(
    downstream_job: UnresolvedAssetJobDefinition,
    folder_jobs: list[tuple[RawFolder, UnresolvedAssetJobDefinition]],
) -> dg.SensorDefinition:
    """`fundtrace_raw_files` when the raw layer is partitioned by file (pipelines/partitions.py):
    keys follow the files, each new or changed file is a run of its partition, and the
    downstream job runs once no raw-partition run is queued or running and one succeeded since
    the downstream job last began."""

    @dg.sensor(
        name="fundtrace_raw_files",
        jobs=[downstream_job, *(job for _, job in folder_jobs)],
        minimum_interval_seconds=15,  # it drives ingestion in this mode
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Raw layer partitioned by file: adds and deletes partitions as files in "
        "$FUNDTRACE_RAW_DIR come and go, runs each new or changed file's partition, then the "
        "downstream assets once the raw runs are done.",
    )
    def fundtrace_raw_files(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        raw_dir = raw_dir_from_env()
        after = raw_fingerprint(raw_dir)
        before: dict[str, list[int]] = json.loads(context.cursor) if context.cursor else {}
        dynamic: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
        requests: list[dg.RunRequest] = []
        for folder, job in folder_jobs:
            existing = context.instance.get_dynamic_partitions(folder.partitions_name)
            changes = key_changes(folder, raw_dir, existing)
            for key, why in changes.refused:
                if before.get(key) != after.get(key):  # once per new or changed file
                    context.log.error(f"{key} cannot be a partition and is NOT ingested: {why}")
            dynamic += changes.requests()
            keys_after = [k for k in existing if k not in changes.deleted] + changes.added
            folder_requests = file_partition_requests(folder, job.name, before, after, keys_after)
            if folder_requests:
                context.log.info(f"{folder.folder}: {len(folder_requests)} run(s) requested")
            requests += folder_requests
        state = run_state(context.instance)
        if not requests and state.downstream_due():
            assert state.last_raw_success is not None
            requests.append(
                dg.RunRequest(
                    run_key=f"downstream@{state.last_raw_success.isoformat()}",
                    job_name=downstream_job.name,
                    tags={"fundtrace/trigger": "raw_files"},
                )
            )
            context.log.info("raw partitions done -> downstream assets requested")
        return dg.SensorResult(
            run_requests=requests, dynamic_partitions_requests=dynamic, cursor=json.dumps(after)
        )

    return fundtrace_raw_files


def failure_payload(run_id: str, job_name: str, message: str, failed_steps: list[str]) -> dict:
    text = (
        f"Fundtrace run {run_id} of {job_name} FAILED"
        + (f" in {', '.join(failed_steps)}" if failed_steps else "")
        + f": {message}. The previous marts are still published; re-execute from failure in "
        "the Dagster UI once the cause is fixed."
    )
    return {"text": text, "run_id": run_id, "job": job_name, "failed_steps": failed_steps}


def post_webhook(url: str, payload: dict, timeout: float = 10.0) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return int(response.status)


# no monitored_jobs: every job of the code location, the raw_files_* jobs and runs launched
# from the UI's "Materialize" (Dagster's implicit asset job) included
@dg.run_failure_sensor(
    name="fundtrace_run_failure_notifier",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Logs failed runs and POSTs them to ${WEBHOOK_ENV} when set.",
)
def run_failure_notifier(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    steps = [e.step_key for e in context.get_step_failure_events() if e.step_key is not None]
    message = context.failure_event.message or "run failed"
    payload = failure_payload(run.run_id, run.job_name, message, steps)
    context.log.error(payload["text"])
    url = os.environ.get(WEBHOOK_ENV, "").strip()
    if url:
        try:
            status = post_webhook(url, payload)
            context.log.info(f"failure notification sent ({status})")
        except OSError as exc:  # an alert channel being down must not hide the failure
            context.log.error(f"could not notify {WEBHOOK_ENV}: {exc}")
