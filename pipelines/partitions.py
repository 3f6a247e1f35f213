"""Raw assets partitioned by source file: the scale-out path of docs/scaling.md ("Fanning out").

`FUNDTRACE_RAW_PARTITIONS=file` partitions every raw asset that ingests a source folder by the
files in it; `none` (the default) keeps one unpartitioned step per source, which is cheaper on
one machine (`make bench` measures both: docs/scaling.md).

In `file` mode:
- each folder's raw asset has a `DynamicPartitionsDefinition` named `raw_files_<source>`. Its
  keys are the files' paths relative to FUNDTRACE_RAW_DIR, plus the folder itself (`ocds/`),
  whose partition parses nothing: it forgets the rows of files gone from the folder and
  creates the source's tables, so a run exists even for an empty folder;
- a partition run ingests exactly its files (`assets.raw.ingest.partition_files`); a range of
  partitions runs in one step (`BackfillPolicy.single_run`), so a backfill of a whole folder
  costs one step, not one run per file;
- the job `fundtrace_all` is everything downstream (it cannot mix partitioned and unpartitioned
  raw assets), and one job per folder, `raw_files_<source>`, ingests that folder's partitions;
- the `fundtrace_raw_files` sensor is on by default and orchestrates: it adds and deletes
  partition keys as files come and go, requests one run per new or changed file (fanned out by
  whatever executor the deployment uses), and once no raw-partition run is queued or running
  and one finished since the last downstream run began, requests the downstream assets;
- the nightly schedule runs `fundtrace_all` (the downstream assets): the sensor, not the
  schedule, ingests files in this mode;
- `python -m pipelines.cli run` (`make run`) does the same in this process: partition keys
  brought in line with the folder, one run per folder over all its keys, then `fundtrace_all`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import dagster as dg

from assets.common.files import list_source_files
from assets.raw import (
    bods,
    council_spend,
    eu_cordis,
    eu_fts,
    eu_kohesio,
    governance,
    ocds,
    private_funding,
    ted,
    threesixty_giving,
)

if TYPE_CHECKING:  # what define_asset_job returns; dagster does not export the type
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

PARTITIONS_ENV = "FUNDTRACE_RAW_PARTITIONS"
MODES = ("none", "file")
RAW_PARTITIONS_TAG = "fundtrace/raw_partitions"  # on every run of the raw_files_* jobs
DOWNSTREAM_TAG = "fundtrace/downstream"  # on every run of fundtrace_all in `file` mode
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def raw_partitions_from_env() -> str:
    """The partitioning mode of the raw layer: `none` (default) or `file`."""
    mode = os.environ.get(PARTITIONS_ENV, "").strip().lower() or "none"
    if mode not in MODES:
        raise ValueError(
            f"{PARTITIONS_ENV}={os.environ.get(PARTITIONS_ENV)!r}: use one of {', '.join(MODES)}"
        )
    return mode


@dataclass(frozen=True)
class RawFolder:
    """A raw source folder and the (multi-)asset that ingests it."""

    source_system: str
    folder: str
    suffixes: tuple[str, ...]
    node_name: str  # the raw asset's function: its op (multi-asset) or its key `raw/<name>`

    @property
    def partitions_name(self) -> str:
        return f"raw_files_{self.source_system}"

    @property
    def partitions_def(self) -> dg.DynamicPartitionsDefinition:
        return dg.DynamicPartitionsDefinition(name=self.partitions_name)

    @property
    def folder_key(self) -> str:
        """The folder's own partition: housekeeping, no file parsed."""
        return f"{self.folder}/"

    @property
    def job_name(self) -> str:
        return self.partitions_name

    def partition_keys(self, raw_dir: Path) -> list[str]:
        """The keys the folder should have now: the folder, then its files in a stable order."""
        files = list_source_files(raw_dir / self.folder, self.suffixes)
        return [self.folder_key, *(p.relative_to(raw_dir).as_posix() for p in files)]


def _folder(module: ModuleType, node_name: str) -> RawFolder:
    return RawFolder(module.SOURCE_SYSTEM, module.FOLDER, tuple(module.SUFFIXES), node_name)


RAW_FOLDERS: tuple[RawFolder, ...] = (
    _folder(threesixty_giving, "raw_360giving_grants"),
    _folder(council_spend, "raw_council_spend"),
    _folder(eu_cordis, "raw_cordis"),
    _folder(eu_fts, "raw_eu_fts_commitments"),
    _folder(eu_kohesio, "raw_kohesio"),
    _folder(private_funding, "raw_private_funding"),
    _folder(governance, "raw_governance"),
    _folder(ted, "raw_ted"),
    _folder(ocds, "raw_ocds_releases"),
    _folder(bods, "raw_bods_statements"),
)
_BY_NODE = {f.node_name: f for f in RAW_FOLDERS}


def folder_of(asset: dg.AssetsDefinition) -> RawFolder | None:
    """The folder `asset` ingests, if it is one of RAW_FOLDERS' assets."""
    if not asset.is_executable:
        return None
    if asset.node_def.name in _BY_NODE:  # a multi-asset's op
        return _BY_NODE[asset.node_def.name]
    key = asset.key if len(asset.keys) == 1 else None
    if key is not None and len(key.path) == 2 and key.path[0] == "raw":
        return _BY_NODE.get(key.path[1])
    return None


# what Dagster refuses inside a partition key (its INVALID_PARTITION_SUBSTRINGS; a test compares)
INVALID_KEY_SUBSTRINGS = ("...", "\a", "\b", "\f", "\n", "\r", "\t", "\v", "\0")


def invalid_key(key: str) -> str | None:
    """Why Dagster refuses `key` as a partition key (e.g. a file name with '...'), or None."""
    bad = [s for s in INVALID_KEY_SUBSTRINGS if s in key]
    return f"Dagster partition keys cannot contain {bad[0]!r}" if bad else None


def partition_raw_assets(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """`assets` with every folder's raw asset partitioned by file (see module doc)."""
    out: list[dg.AssetsDefinition] = []
    for asset in assets:
        folder = folder_of(asset)
        if folder is None:
            out.append(asset)
            continue
        parts = folder.partitions_def
        mapped = dg.map_asset_specs(
            lambda s, p=parts: s.replace_attributes(partitions_def=p), [asset]
        )
        # one step for any range of files: a folder's backfill is one run, not one per file
        # (with_attributes: AssetSpec has no backfill policy; a test checks it is applied)
        out.append(mapped[0].with_attributes(backfill_policy=dg.BackfillPolicy.single_run()))
    return out


def partitioned_folders(
    assets: Iterable[dg.AssetsDefinition],
) -> list[tuple[RawFolder, list[dg.AssetKey]]]:
    """Each partitioned folder with the asset keys its raw (multi-)asset materializes."""
    found: dict[str, list[dg.AssetKey]] = {}
    for asset in assets:
        folder = folder_of(asset)
        if folder is not None and asset.partitions_def is not None:
            found[folder.node_name] = sorted(asset.keys, key=lambda k: k.to_user_string())
    return [(f, found[f.node_name]) for f in RAW_FOLDERS if f.node_name in found]


def raw_jobs(
    folders: Sequence[tuple[RawFolder, list[dg.AssetKey]]],
) -> list[tuple[RawFolder, UnresolvedAssetJobDefinition]]:
    """One job per partitioned folder (what the UI backfills and `cli run` executes)."""
    return [
        (
            folder,
            dg.define_asset_job(
                name=folder.job_name,
                selection=dg.AssetSelection.assets(*keys),
                description=f"Ingest the files of $FUNDTRACE_RAW_DIR/{folder.folder} "
                "(one partition per file; unchanged files are skipped by their content hash).",
                executor_def=dg.in_process_executor,
                tags={RAW_PARTITIONS_TAG: "1"},
            ),
        )
        for folder, keys in folders
    ]


@dataclass
class KeyChanges:
    """What bringing one folder's partition keys in line with the files changes."""

    folder: RawFolder
    added: list[str]
    deleted: list[str]
    refused: list[tuple[str, str]]  # (file, why Dagster refuses it as a key)

    def requests(self) -> list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest]:
        parts = self.folder.partitions_def
        out: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
        if self.added:
            out.append(parts.build_add_request(self.added))
        if self.deleted:
            out.append(parts.build_delete_request(self.deleted))
        return out


def key_changes(folder: RawFolder, raw_dir: Path, existing: Sequence[str]) -> KeyChanges:
    """The keys to add and delete so `folder`'s partitions are its files (and the folder)."""
    wanted, refused = [], []
    for key in folder.partition_keys(raw_dir):
        why = invalid_key(key)
        if why is None:
            wanted.append(key)
        else:
            refused.append((key, why))
    have = set(existing)
    return KeyChanges(
        folder,
        added=[k for k in wanted if k not in have],
        deleted=sorted(have - set(wanted)),
        refused=refused,
    )


def range_tags(keys: Sequence[str]) -> dict[str, str]:
    """Run tags selecting every partition from the first to the last of `keys` (one run)."""
    return {RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]}


def sync_partitions(
    instance: dg.DagsterInstance, raw_dir: Path, log: Callable[[str], None] = print
) -> list[KeyChanges]:
    """Bring every folder's partition keys in the instance in line with the raw folder."""
    out = []
    for folder in RAW_FOLDERS:
        name = folder.partitions_name
        changes = key_changes(folder, raw_dir, instance.get_dynamic_partitions(name))
        for key, why in changes.refused:
            log(f"{key} cannot be a partition and is NOT ingested: {why}; rename the file")
        if changes.added:
            instance.add_dynamic_partitions(name, changes.added)
        for key in changes.deleted:
            instance.delete_dynamic_partition(name, key)
        if changes.added or changes.deleted:
            log(f"{name}: {len(changes.added)} partition(s) added, {len(changes.deleted)} deleted")
        out.append(changes)
    return out


# ---------------------------------------------------------------- when the downstream run is due

_IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dataclass(frozen=True)
class RunState:
    """What decides whether the downstream assets are due (times in UTC, None: never)."""

    raw_in_flight: int  # raw-partition runs queued or running
    last_raw_success: dt.datetime | None  # when the latest successful one ended
    last_downstream_start: dt.datetime | None  # when the latest downstream run was created

    def downstream_due(self) -> bool:
        if self.raw_in_flight or self.last_raw_success is None:
            return False
        return (
            self.last_downstream_start is None or self.last_raw_success > self.last_downstream_start
        )


def _utc(ts: float | dt.datetime | None) -> dt.datetime | None:
    if ts is None:
        return None
    if isinstance(ts, dt.datetime):
        return ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def run_state(instance: dg.DagsterInstance) -> RunState:
    """The raw-partition and downstream runs in `instance` (the newest of each first)."""
    raw = {RAW_PARTITIONS_TAG: "1"}
    in_flight = instance.get_runs_count(dg.RunsFilter(tags=raw, statuses=_IN_FLIGHT))
    done = instance.get_run_records(
        dg.RunsFilter(tags=raw, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1
    )
    down = instance.get_run_records(dg.RunsFilter(tags={DOWNSTREAM_TAG: "1"}), limit=1)
    return RunState(
        raw_in_flight=in_flight,
        last_raw_success=_utc(done[0].end_time) if done else None,
        last_downstream_start=_utc(down[0].create_timestamp) if down else None,
    )


def execute_partitioned(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    raw_dir: Path,
    run_config: dict | None = None,
    log: Callable[[str], None] = print,
) -> list[dg.ExecuteInProcessResult]:
    """A full build in this process with the raw layer partitioned by file: partition keys in
    line with the folder, one run per folder over all its keys, then `fundtrace_all`. Stops
    before the downstream run when a raw run fails (the published marts stay as they were)."""
    from pipelines.jobs import ALL_ASSETS_JOB_NAME

    sync_partitions(instance, raw_dir, log)
    results = []
    for folder in RAW_FOLDERS:
        keys = instance.get_dynamic_partitions(folder.partitions_name)
        result = defs.resolve_job_def(folder.job_name).execute_in_process(
            instance=instance, raise_on_error=False, run_config=run_config, tags=range_tags(keys)
        )
        results.append(result)
        if not result.success:
            log(f"{folder.job_name} failed: {ALL_ASSETS_JOB_NAME} not run")
            return results
    results.append(
        defs.resolve_job_def(ALL_ASSETS_JOB_NAME).execute_in_process(
            instance=instance, raise_on_error=False, run_config=run_config
        )
    )
    return results
