"""`make bench`: generate (cached), measure the DuckDB read floor, then time seven builds.

    python -m bench.run [--scale S] [--seed N] [--repeat N]
        [--runs full,no_change,one_file,one_file_job,one_file_new_orgs,one_file_ocds,
                one_file_near_names]
    (scale default: $BENCH_SCALE or 0.01; repeat default: $BENCH_REPEAT or 1)

1. The synthetic raw folder for (scale, seed, generator version, wired sources) comes from
   `bench/.data/` ($BENCH_DATA_DIR) or is generated there (`bench.generate`).
2. A fresh work folder `bench/.work/scale<S>-seed<N>/` ($BENCH_WORK_DIR) gets a hard-linked
   copy of it (`raw/`), an empty build database, marts file and DAGSTER_HOME.
3. **Floor** (median of three, after a warm-up read not counted): in a child process, DuckDB alone reads every raw file into a
   table of one fresh database file (`read_csv` with the dialect given; JSON packages
   streamed with ijson to JSON Lines and read with `read_json`; JSON Lines read directly).
4. Seven builds, each `fundtrace_all` executed in process as `make run` does, each in its own
   child process. With `--repeat N` / $BENCH_REPEAT the floor and the builds run in N rounds
   (`plan_rounds`: the floor, the full build from nothing, then every later run), the run of
   median wall time is reported with every run's figures kept beside it, the ratios are the
   median of each round's own, and the peak RSS judged is the largest of all runs.
   The builds: (1) full build, (2) no-change re-run, (3) one new small 360Giving CSV added,
   running what the `fundtrace_raw_files` sensor launches for it (the raw assets of that
   folder and everything downstream, with their checks), (4) the same new file from the same
   state (build database and marts restored), running the whole job as the nightly schedule
   and `make run` do, (5), (6) and (7) the sensor's run, from that same state, for a
   360Giving file whose recipients include 50 new organisations, for a file of 5,000 OCDS
   releases, and for a 360Giving file whose recipients include 50 known organisations' names
   with a typo. Per step (asset or check) wall time comes from the Dagster event log
   (first STEP_START -> STEP_SUCCESS), rows from `dagster/row_count`, the step's peak RSS
   and CPU seconds from sampling /proc every 50 ms (the process and its workers); the run's
   peak RSS and CPU seconds are the child's `os.wait4` figures (the whole run: DuckDB,
   Python, Dagster), plus the CPU of worker processes the child does not reap itself (those
   of the fork server). The full build's five steps that leave the most core-seconds unused
   (cores x wall - CPU) are listed: where parallelism would pay.
5. A table is printed and the same figures written to `bench/results/<date>-scale<S>.json`
   with the commit, machine and load average ($BENCH_DUCKDB_CONFIG, a JSON object of DuckDB
   settings added to the resource, marks an experiment and suffixes the file name;
   $BENCH_TAG adds its own suffix so a later run of the day keeps the earlier file).

Performance is judged from these files, never by timed assertions in tests."""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.generate import EXTRA_RUNS

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
WORK_DIR = Path(os.environ.get("BENCH_WORK_DIR") or BENCH_DIR / ".work")
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_SCALE = 0.01
DEFAULT_SEED = 42
SCHEMA = "fundtrace-bench/1"
RUNS = (
    "full", "no_change", "one_file", "one_file_job", "one_file_new_orgs", "one_file_ocds",
    "one_file_near_names",
)  # fmt: skip
# the runs judged against the one-new-file target, with their label in the printed report
ONE_FILE_RUNS = {
    "one_file": "one-file / full",
    "one_file_job": "  (whole job)",
    "one_file_new_orgs": "  (new orgs)",
    "one_file_ocds": "  (OCDS file)",
    "one_file_near_names": "  (near names)",
}
COLUMNS = {"full": "full s", "no_change": "nochg s", "one_file": "1file s", "one_file_job": "1f job",
           "one_file_new_orgs": "1f new", "one_file_ocds": "1f ocds",
           "one_file_near_names": "1f near"}  # fmt: skip
# runs that start from the state after no_change, restored from a copy
FROM_BEFORE_ONE_FILE = ("one_file_job", "one_file_new_orgs", "one_file_ocds", "one_file_near_names")
FLOOR_REPEATS = 3  # the floor is short and noisy: median of three
# each build run this many times ($BENCH_REPEAT / --repeat): the run of median wall time is
# reported, every run's figures kept beside it; a shared VM varies by 5-10% from run to run
DEFAULT_REPEAT = 1
TARGETS = {
    "build_over_floor": 3.0,
    "peak_rss_gib": 2.0,
    "no_change_over_full": 0.10,
    "one_file_over_full": 0.20,
}
CSV_DELIMITERS = {"eu_cordis": ";", "eu_kohesio": "\t"}
JSON_ITEMS = {"360giving": ("grants.item",), "ocds": ("releases.item", "records.item")}
JSON_LINES_SUFFIXES = (".jsonl", ".jl", ".ndjson")


# ------------------------------------------------------------------------- child: floor


def measure_floor(raw_dir: Path, db_path: Path, tmp_dir: Path) -> dict[str, Any]:
    """Seconds DuckDB alone needs to read every raw file into a table of a fresh database."""
    import duckdb
    import ijson

    tmp_dir.mkdir(parents=True, exist_ok=True)
    db_path.unlink(missing_ok=True)
    started = time.perf_counter()
    con = duckdb.connect(str(db_path))
    per_source: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    for n, path in enumerate(_raw_files(raw_dir)):
        source = path.relative_to(raw_dir).parts[0]
        t0 = time.perf_counter()
        table = f"t{n}"
        suffix = path.name.lower()
        if suffix.endswith((".csv", ".tsv")):
            rows = _floor_csv(con, path, table, CSV_DELIMITERS.get(source, ","))
        elif suffix.endswith(JSON_LINES_SUFFIXES):
            rows = _floor_jsonl(con, path, table)
        elif suffix.endswith(".json"):
            jsonl = tmp_dir / f"{table}.jsonl"
            with path.open("rb") as fh, jsonl.open("w", encoding="utf-8") as out:
                for item in _json_items(fh, path, JSON_ITEMS.get(source, ("item",)), ijson):
                    out.write(json.dumps(item, default=str, ensure_ascii=False))
                    out.write("\n")
            rows = _floor_jsonl(con, jsonl, table)
            jsonl.unlink()
        else:  # XLSX and friends: DuckDB needs an extension; not part of the generated data
            skipped.append(path.relative_to(raw_dir).as_posix())
            continue
        agg = per_source.setdefault(source, {"files": 0, "bytes": 0, "rows": 0, "seconds": 0.0})
        agg["files"] += 1
        agg["bytes"] += path.stat().st_size
        agg["rows"] += rows
        agg["seconds"] += time.perf_counter() - t0
    con.execute("CHECKPOINT")
    con.close()
    seconds = time.perf_counter() - started
    for agg in per_source.values():
        agg["seconds"] = round(agg["seconds"], 3)
    return {
        "seconds": round(seconds, 3),
        "per_source": dict(sorted(per_source.items())),
        "skipped_files": skipped,
        "ijson_backend": ijson.backend,
    }


def _raw_files(raw_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in raw_dir.rglob("*")
        if p.is_file()
        and p.parent != raw_dir
        and not any(part.startswith(".") for part in p.relative_to(raw_dir).parts)
        and p.name not in ("README.md", ".gitkeep")
    )


def header_line(path: Path, delim: str, scan: int = 20) -> tuple[int, int]:
    """(0-based line, width) of the header: the first record as wide as most of the first
    `scan` records (a council's title lines above its header are skipped, as the pipeline
    does)."""
    import collections
    import csv
    import itertools

    with path.open(encoding="utf-8", errors="replace", newline="") as fh:
        widths = [len(r) for r in itertools.islice(csv.reader(fh, delimiter=delim), scan)]
    if not widths:
        return 0, 1
    common = collections.Counter(widths).most_common()
    usual = max(w for w, n in common if n == common[0][1])
    return widths.index(usual), usual


def _floor_csv(con: Any, path: Path, table: str, delim: str) -> int:
    """DuckDB's CSV reader, every column text, the dialect given (no sniffing, as the pipeline
    knows each source's dialect); rows DuckDB cannot read are skipped."""
    skip, width = header_line(path, delim)
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(width)) + "}"
    options = (
        f"delim = '{delim}', quote = '\"', escape = '\"', header = false, skip = {skip + 1}, "
        f"columns = {columns}, ignore_errors = true, null_padding = true"
    )
    # Windows-1252 council files: DuckDB decodes them as latin-1 itself (ignore_errors would
    # otherwise drop every line with a pound sign)
    if not _is_utf8(path):
        options += ", encoding = 'latin-1'"
    con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_csv(?, {options})", [str(path)])
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _is_utf8(path: Path) -> bool:
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _floor_jsonl(con: Any, path: Path, table: str) -> int:
    con.execute(
        f"CREATE TABLE {table} AS SELECT * FROM read_json(?, format = 'newline_delimited', "
        "maximum_object_size = 134217728, ignore_errors = true)",
        [str(path)],
    )
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _json_items(fh: Any, path: Path, prefixes: tuple[str, ...], ijson: Any) -> Any:
    """Items of the first array among `prefixes` the file has (a package's grants/releases)."""
    for prefix in prefixes:
        fh.seek(0)
        found = False
        for item in ijson.items(fh, prefix, use_float=True):
            found = True
            yield item
        if found:
            return
    _ = path


# ------------------------------------------------------------------------- child: build


def run_build(folders: Sequence[str] = ()) -> dict[str, Any]:
    """Execute `fundtrace_all` in process as `make run` does; timings from the event log.
    With `folders`, only what the raw-files sensor launches when those source folders change.
    With the raw layer partitioned by file (FUNDTRACE_RAW_PARTITIONS=file) a build is what
    `make run` does then (one run per folder, then fundtrace_all) and a run for `folders` is
    what the sensor launches: a run of each new file's partition, then fundtrace_all.

    Paths come from the environment (FUNDTRACE_RAW_DIR, FUNDTRACE_MARTS_DB, FUNDTRACE_BUILD_DB,
    DAGSTER_HOME), exactly like `python -m pipelines.cli run`."""
    t0 = time.perf_counter()
    import dagster as dg

    from pipelines.definitions import build_definitions
    from pipelines.jobs import ALL_ASSETS_JOB_NAME
    from pipelines.partitions import raw_partitions_from_env
    from pipelines.sensors import run_selection

    _apply_duckdb_experiment()
    defs = build_definitions()
    partitioned = raw_partitions_from_env() == "file"
    job = defs.resolve_job_def(ALL_ASSETS_JOB_NAME)
    selection = None
    if folders and not partitioned:
        selection, unread = run_selection(defs.resolve_asset_graph(), set(folders))
        if unread or not selection:
            raise ValueError(f"no asset reads the folder(s) {sorted(unread)}")
    t1 = time.perf_counter()
    started_utc = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    sampler = RssSampler()
    sampler.start()
    run_config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    try:
        with dg.DagsterInstance.get() as instance:
            if partitioned:
                results = _run_partitioned(defs, instance, bool(folders), run_config)
            else:
                results = [
                    job.execute_in_process(
                        instance=instance,
                        asset_selection=selection,
                        raise_on_error=False,
                        run_config=run_config,
                    )
                ]
            t2 = time.perf_counter()
            entries = [e for r in results for e in instance.all_logs(r.run_id)]
    finally:
        sampler.stop()
    result = results[-1]
    steps = steps_from_events(entries)
    for s in steps:
        window = s.pop("_window", None)
        s["peak_rss_mib"] = sampler.peak_mib(window) if window else None
        s["cpu_seconds"] = sampler.cpu_seconds(window) if window else None
    return {
        "tree_peak_rss_mib": sampler.peak_mib(),
        "unreaped_cpu_seconds": sampler.unreaped_cpu_seconds,
        "success": all(r.success for r in results),
        "run_id": result.run_id,
        "dagster_runs": len(results),
        "duckdb_experiment": json.loads(os.environ.get("BENCH_DUCKDB_CONFIG") or "null"),
        "startup_seconds": round(t1 - t0, 3),
        "execute_seconds": round(t2 - t1, 3),
        "steps": steps,
        "raw_files": raw_file_stats(started_utc),
    }


def _run_partitioned(defs: Any, instance: Any, sensor: bool, run_config: dict) -> list[Any]:
    """The runs of a build with the raw layer partitioned by file: `make run`'s, or with
    `sensor` those the fundtrace_raw_files sensor requests for new files
    (`sensors.file_partition_requests`, as if its last tick had seen the files the build has
    ingested), then fundtrace_all. A repeat starts from a copy of the build without the new
    files, while the instance already has their keys: the build, not the keys, says what is
    new."""
    from pipelines.jobs import ALL_ASSETS_JOB_NAME
    from pipelines.partitions import RAW_FOLDERS, execute_partitioned, sync_partitions
    from pipelines.resources import raw_dir_from_env
    from pipelines.sensors import file_partition_requests, raw_fingerprint

    raw = raw_dir_from_env()
    if not sensor:
        return execute_partitioned(defs, instance, raw, run_config)
    sync_partitions(instance, raw)
    with defs.resources["duckdb"].get_connection() as con:
        ingested = {
            r[0] for r in con.execute("SELECT source_file FROM raw.raw_file_manifest").fetchall()
        }
    after = raw_fingerprint(raw)
    before = {rel: stat for rel, stat in after.items() if rel in ingested}
    results = []
    for folder in RAW_FOLDERS:
        keys = instance.get_dynamic_partitions(folder.partitions_name)
        job = defs.resolve_job_def(folder.job_name)
        for request in file_partition_requests(folder, folder.job_name, before, after, keys):
            results.append(
                job.execute_in_process(
                    instance=instance,
                    raise_on_error=False,
                    run_config=run_config,
                    partition_key=request.partition_key,
                    tags=request.tags,
                )
            )
    downstream = defs.resolve_job_def(ALL_ASSETS_JOB_NAME)
    results.append(
        downstream.execute_in_process(
            instance=instance, raise_on_error=False, run_config=run_config
        )
    )
    return results


class RssSampler:
    """Samples the resident memory and the CPU time of this process *and its descendants*
    every 50 ms (worker processes, e.g. the OCDS parse/merge pool, count towards the run), to
    attribute a peak and CPU seconds to each step and to give the run's peak as a sum over the
    process tree. CPU seconds per step show which steps leave a core idle."""

    def __init__(self, interval: float = 0.05):
        import threading

        self.interval = interval
        self.samples: list[tuple[float, int, float]] = []  # (time, tree RSS, tree CPU seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._tick = os.sysconf("SC_CLK_TCK")
        self.unreaped_cpu_seconds = 0.0

    def _tree_rss(self) -> int:
        return self._tree_split()[0]

    def _tree_split(self) -> tuple[int, float, float]:
        """RSS and CPU seconds of this process plus its descendants, and this process's own CPU
        seconds; only this process's own figures are required (a worker or thread that exits
        while it is read is skipped). Each process counts its reaped children too, so a
        worker that ended keeps its seconds in the sum: reaped by this process, or by the
        fork server that forked it (assets/common/worker_processes.py)."""
        total, cpu, own, todo = 0, 0.0, 0.0, [os.getpid()]
        while todo:
            pid = todo.pop()
            try:
                with open(f"/proc/{pid}/statm") as fh:
                    total += int(fh.read().split()[1]) * self._page
                with open(f"/proc/{pid}/stat") as fh:
                    # fields after the command name: utime, stime, cutime, cstime are 12-15
                    fields = fh.read().rpartition(")")[2].split()
                seconds = sum(int(f) for f in fields[11:15]) / self._tick
                cpu += seconds
                if pid == os.getpid():
                    own = seconds
            except (OSError, ValueError, IndexError):
                if pid == os.getpid():
                    raise
                continue
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for task in tasks:
                try:
                    with open(f"/proc/{pid}/task/{task}/children") as fh:
                        todo.extend(int(c) for c in fh.read().split())
                except (OSError, ValueError):
                    continue
        return total, cpu, own

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss, cpu, _ = self._tree_split()
            except (OSError, ValueError, IndexError):  # not Linux: no per-step figures
                return
            self.samples.append((time.time(), rss, cpu))
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        try:
            _, cpu, own = self._tree_split()
        except (OSError, ValueError, IndexError):
            return
        # descendants still alive (a fork server and the workers it reaped) are never reaped by
        # this process, so os.wait4 of it will not count them: the run reports them on top
        self.unreaped_cpu_seconds = round(cpu - own, 3)

    def peak_mib(self, window: tuple[float, float] | None = None) -> float | None:
        inside = [
            rss for t, rss, _ in self.samples if window is None or window[0] <= t <= window[1]
        ]
        return round(max(inside) / 2**20, 1) if inside else None

    def cpu_seconds(self, window: tuple[float, float]) -> float | None:
        """CPU seconds of the process tree between the samples around `window`; a drop (a
        worker that exited before it was reaped) counts as nothing rather than negative."""
        around = [
            cpu
            for t, _, cpu in self.samples
            if window[0] - self.interval <= t <= window[1] + self.interval
        ]
        if len(around) < 2:
            return None
        return round(sum(max(0.0, b - a) for a, b in itertools.pairwise(around)), 3)


def _apply_duckdb_experiment() -> None:
    """$BENCH_DUCKDB_CONFIG (JSON, e.g. {"memory_limit": "1GB"}) is added to the DuckDB
    resource's connection config: measure a setting before proposing it for definitions.py."""
    extra = os.environ.get("BENCH_DUCKDB_CONFIG")
    if not extra:
        return
    import pipelines.definitions as definitions
    from pipelines.resources import BuildDatabase, duckdb_config_from_env

    config = json.loads(extra)

    def with_experiment(build_db: Path) -> BuildDatabase:
        # on top of the settings definitions.py gives (memory limit, temp directory)
        return BuildDatabase(
            database=str(build_db), connection_config={**duckdb_config_from_env(build_db), **config}
        )

    definitions.build_database = with_experiment  # type: ignore[misc,assignment]


def steps_from_events(entries: Sequence[Any]) -> list[dict[str, Any]]:
    """Per step: wall seconds (STEP_START -> end), materialized assets with row counts, checks."""
    import dagster as dg

    steps: dict[str, dict[str, Any]] = {}

    def step(key: str) -> dict[str, Any]:
        return steps.setdefault(
            key,
            {"step": key, "kind": "asset", "status": None, "seconds": None, "attempts": 0,
             "assets": {}, "checks": {}, "_start": None},
        )  # fmt: skip

    for entry in entries:
        event = entry.dagster_event
        if event is None or not event.step_key:
            continue
        s = step(event.step_key)
        etype = event.event_type
        if etype == dg.DagsterEventType.STEP_START:
            # a retried step starts again: its time runs from the first start (retry delays
            # included, as a user waits for them)
            s["attempts"] += 1
            if s["_start"] is None:
                s["_start"] = entry.timestamp
        elif etype in (
            dg.DagsterEventType.STEP_SUCCESS,
            dg.DagsterEventType.STEP_FAILURE,
            dg.DagsterEventType.STEP_SKIPPED,
        ):
            s["status"] = etype.value.removeprefix("STEP_").lower()
            if s["_start"] is not None:
                s["seconds"] = round(entry.timestamp - s["_start"], 3)
        elif etype == dg.DagsterEventType.ASSET_MATERIALIZATION:
            mat = event.step_materialization_data.materialization
            count = mat.metadata.get("table_row_count") or mat.metadata.get("dagster/row_count")
            s["assets"][mat.asset_key.to_user_string()] = (
                None if count is None else int(count.value)  # type: ignore[arg-type]
            )
        elif etype == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            data = event.asset_check_evaluation_data
            if data is not None:
                s["kind"] = "check"
                s["checks"][f"{data.asset_key.to_user_string()}:{data.check_name}"] = (
                    "passed" if data.passed else f"failed ({data.severity.value})"
                )
    out = []
    for s in steps.values():
        start = s.pop("_start")
        if start is not None and s["seconds"] is not None:
            s["_window"] = (start, start + s["seconds"])
        if not s["assets"] and s["checks"]:
            s["kind"] = "check"
        elif s["assets"]:
            s["kind"] = "asset"
        out.append(s)
    return out


def raw_file_stats(since: dt.datetime) -> dict[str, Any]:
    """Per source: files, rows, and the files parsed by this run with their parse seconds
    (from raw.raw_file_manifest; unchanged files keep their earlier ingested_at)."""
    import duckdb

    from pipelines.resources import build_db_from_env

    try:
        con = duckdb.connect(str(build_db_from_env()), read_only=True)
    except duckdb.Error:
        return {}
    try:
        rows = con.execute(
            """SELECT source_system, count(*), sum(rows_in), sum(file_bytes),
                 count(*) FILTER (WHERE ingested_at >= ?),
                 coalesce(sum(parse_seconds) FILTER (WHERE ingested_at >= ?), 0),
                 count(*) FILTER (WHERE status = 'failed'),
                 sum(rows_quarantined)
               FROM raw.raw_file_manifest GROUP BY ALL ORDER BY 1""",
            [since, since],
        ).fetchall()
    except duckdb.Error:
        return {}
    finally:
        con.close()
    return {
        r[0]: {"files": r[1], "rows_in": int(r[2] or 0), "bytes": int(r[3] or 0),
               "parsed_this_run": r[4], "parse_seconds_this_run": round(r[5], 3),
               "failed": r[6], "rows_quarantined": int(r[7] or 0)}
        for r in rows
    }  # fmt: skip


# ------------------------------------------------------------------------- parent: runs


def run_child(
    args: list[str], env: dict[str, str], log_path: Path, out_path: Path, cwd: Path = REPO_ROOT
) -> dict[str, Any]:
    """Run `python -m bench.run <args>` and return its JSON with wall seconds and peak RSS."""
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.run", *args, "--result", str(out_path)],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C / SIGTERM of the benchmark: stop the build too
            proc.terminate()
            try:  # a long DuckDB statement only sees the signal when it returns
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if not out_path.is_file():
        tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise RuntimeError(f"benchmark child {args[0]} failed (exit {proc.returncode}):\n{tail}")
    data = json.loads(out_path.read_text())
    data["wall_seconds"] = round(wall, 3)
    # ru_maxrss is the largest single process; the sampled sum over the process tree also
    # counts worker processes running at the same time
    data["peak_rss_mib"] = max(
        round(usage.ru_maxrss / 1024, 1), data.pop("tree_peak_rss_mib", None) or 0
    )
    # CPU seconds barely move when other work shares the machine; wall seconds do. The
    # workers of the fork server are reaped by it, not by the child: counted on top
    data["cpu_seconds"] = round(
        usage.ru_utime + usage.ru_stime + (data.pop("unreaped_cpu_seconds", None) or 0), 2
    )
    data["exit_code"] = proc.returncode
    # other work on the machine inflates wall times: keep the 1-minute load around the run
    data["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    data["log"] = log_path.name  # in the work folder: result files name no machine paths
    return data


CODE_PARTS = ("assets", "pipelines", "expectations", "bench")


def snapshot_code(dst: Path) -> Path:
    """Copy the code the builds run into `dst`: every build of one benchmark runs the same
    code even while the repository is edited (a code change rebuilds everything below raw,
    which would turn the no-change run into a full one)."""
    for part in CODE_PARTS:
        shutil.copytree(
            REPO_ROOT / part,
            dst / part,
            ignore=shutil.ignore_patterns("__pycache__", ".data", ".work", "results"),
        )
    return dst


def link_tree(src: Path, dst: Path, skip: Callable[[Path], bool]) -> None:
    """Hard-link (else copy) every file of `src` into `dst`: no 1 GB copy per benchmark."""
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if path.is_dir() or skip(rel):
            continue
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


def run_ratios(floor: dict[str, Any], runs: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """The build over the floor and every other run over the full build, on wall and on CPU
    seconds (None: that run was not asked for)."""
    full = runs["full"]

    def over_full(name: str, field: str) -> float | None:
        return _ratio(runs[name][field], full[field]) if name in runs else None

    ratios: dict[str, float | None] = {
        "build_over_floor": _ratio(full["wall_seconds"], floor["seconds"]),
        "execute_over_floor": _ratio(full["execute_seconds"], floor["seconds"]),
        # the same on CPU seconds: barely moved by other work sharing the machine
        "cpu_build_over_floor": _ratio(full["cpu_seconds"], floor["cpu_seconds"]),
    }
    for name in ("no_change", *ONE_FILE_RUNS):
        ratios[f"{name}_over_full"] = over_full(name, "wall_seconds")
        ratios[f"cpu_{name}_over_full"] = over_full(name, "cpu_seconds")
    return ratios


def median_ratios(by_round: Sequence[dict[str, float | None]]) -> dict[str, float | None]:
    """Each ratio's median over the rounds (the mean of two middles), None where no round
    measured it."""
    out: dict[str, float | None] = {}
    for key in by_round[0]:
        values = [v for r in by_round if (v := r.get(key)) is not None]
        out[key] = round(statistics.median(values), 3) if values else None
    return out


def summarize(
    *,
    scale: float,
    seed: int,
    manifest: dict[str, Any],
    generate_seconds: float | None,
    floor: dict[str, Any],
    runs: dict[str, dict[str, Any]],
    machine: dict[str, Any],
    date: str,
    rounds: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The benchmark report (what is printed and written as JSON). With `rounds` (each a
    round's median floor and its runs, see `plan_rounds`) the ratios are the median over
    the rounds of each round's own ratios; without, those of the median runs."""
    full = runs["full"]
    of_medians = run_ratios(floor, runs)
    by_round = [run_ratios(r["floor"], r["runs"]) for r in rounds]
    ratios = median_ratios(by_round) if by_round else of_medians
    peak = max(r.get("peak_rss_max_mib", r["peak_rss_mib"]) for r in runs.values())

    def within(ratio: float | None, target: float) -> bool | None:
        return None if ratio is None else ratio <= target

    targets = {
        "build_within_3x_floor": within(ratios["build_over_floor"], TARGETS["build_over_floor"]),
        "peak_rss_within_2gib": peak <= TARGETS["peak_rss_gib"] * 1024,
        "no_change_within_10pct": within(
            ratios["no_change_over_full"], TARGETS["no_change_over_full"]
        ),
        **{
            f"{name}_within_20pct": within(
                ratios[f"{name}_over_full"], TARGETS["one_file_over_full"]
            )
            for name in ONE_FILE_RUNS
        },
    }
    for run in runs.values():
        timed = sum(s["seconds"] or 0 for s in run["steps"])
        run["steps_seconds"] = round(timed, 3)
        run["orchestration_seconds"] = round(run["execute_seconds"] - timed, 3)
        run["asset_steps_seconds"] = round(
            sum(s["seconds"] or 0 for s in run["steps"] if s["kind"] == "asset"), 3
        )
        run["check_steps_seconds"] = round(
            sum(s["seconds"] or 0 for s in run["steps"] if s["kind"] == "check"), 3
        )
        run["failed_steps"] = [s["step"] for s in run["steps"] if s["status"] == "failure"]
        run["failed_checks"] = sorted(
            f"{name} {state}"
            for s in run["steps"]
            for name, state in s["checks"].items()
            if state != "passed"
        )
    slowest = sorted(full["steps"], key=lambda s: -(s["seconds"] or 0))[:5]
    cores = machine.get("cpus") or 1
    # core-seconds a step leaves unused: where parallelism (or less Python) would help most
    idle = sorted(
        (s for s in full["steps"] if s.get("seconds") and s.get("cpu_seconds") is not None),
        key=lambda s: -(cores * s["seconds"] - s["cpu_seconds"]),
    )[:5]
    return {
        "schema": SCHEMA,
        "date": date,
        "scale": scale,
        "seed": seed,
        "generator_version": manifest["generator_version"],
        "code": code_version(),
        "machine": machine,
        "data": {
            "sources": manifest["sources"],
            "rows_by_source": manifest["rows_by_source"],
            "total_rows": manifest["total_rows"],
            "files": len(manifest["files"]),
            "bytes": manifest["total_bytes"],
            "generate_seconds": None if generate_seconds is None else round(generate_seconds, 2),
            **{
                f"{name}_added": (manifest.get(key) or [{}])[0].get("path")
                for name, (_, key) in EXTRA_RUNS.items()
            },
        },
        "floor": floor,
        "runs": runs,
        "ratios": ratios,
        "ratios_from": "rounds" if by_round else "median runs",
        "ratios_by_round": by_round,
        "ratios_of_median_runs": of_medians,
        "peak_rss_mib": peak,
        "targets": targets,
        "slowest_five": [
            {"step": s["step"], "seconds": s["seconds"], "rows": _rows(s)} for s in slowest
        ],
        "idle_core_five": [
            {
                "step": s["step"],
                "seconds": s["seconds"],
                "cpu_seconds": s["cpu_seconds"],
                "cores_used": round(s["cpu_seconds"] / s["seconds"], 2),
                "idle_core_seconds": round(cores * s["seconds"] - s["cpu_seconds"], 2),
            }
            for s in idle
        ],
    }


def plan_rounds(runs: Sequence[str], repeat: int) -> list[list[str]]:
    """The order of the benchmark's child runs: `repeat` rounds, each the floor and then
    every build asked for, in `RUNS` order. A round's ratios pair runs minutes apart: on a
    shared VM whose speed drifts by 20% within an hour, three full builds in a row and then
    three of each one-file run put that drift into the ratios (session 23). With fewer
    rounds than `FLOOR_REPEATS` each round reads the floor more than once. The first round
    starts with a warm-up read of the floor that no ratio uses: the benchmark's first child
    process pays a cold start (Python, DuckDB and the data read from disk; the first floor
    read 63.2 and 76.8 s against 25-34 s in sessions 22-23, 3.4 against 0.5-0.6 s at scale
    0.01 in session 24)."""
    per_round = -(-FLOOR_REPEATS // repeat)
    plan = [["floor"] * per_round + list(runs) for _ in range(repeat)]
    plan[0].insert(0, "warm_up")
    return plan


def median_floor(floors: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The floor run of median seconds (the upper one of two middles), with every run's
    seconds in `all_seconds`."""
    if not floors:
        raise ValueError("no floor run to take the median of")
    chosen = dict(sorted(floors, key=lambda f: f["seconds"])[len(floors) // 2])
    chosen["all_seconds"] = [f["seconds"] for f in floors]
    return chosen


def _generated(name: str, manifest: dict[str, Any], log: Callable[[str], None]) -> bool:
    if name in EXTRA_RUNS and not manifest.get(EXTRA_RUNS[name][1]):
        log(f"{name}: skipped (the generated data has no such file: source not generated)")
        return False
    return True


def median_run(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The run of median wall time (the upper one of two middles), with every run's wall,
    execute and CPU seconds and peak RSS in `repeats` and the largest peak RSS in
    `peak_rss_max_mib` (the memory bound holds for every run, not for the median)."""
    if not samples:
        raise ValueError("no run to take the median of")
    chosen = dict(sorted(samples, key=lambda r: r["wall_seconds"])[len(samples) // 2])
    chosen["repeats"] = [
        {k: r.get(k) for k in ("wall_seconds", "execute_seconds", "cpu_seconds", "peak_rss_mib")}
        for r in samples
    ]
    chosen["peak_rss_max_mib"] = max(r["peak_rss_mib"] for r in samples)
    chosen["success"] = all(r["success"] for r in samples)
    return chosen


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("inf")


def _rows(step: dict[str, Any]) -> int | None:
    counts = [v for v in step["assets"].values() if v is not None]
    return sum(counts) if counts else None


def format_table(report: dict[str, Any]) -> str:
    runs = report["runs"]
    slow = {s["step"] for s in report["slowest_five"]}
    by_step: dict[str, dict[str, Any]] = {}
    for name in RUNS:
        for s in runs.get(name, {}).get("steps", []):
            entry = by_step.setdefault(
                s["step"], {"kind": s["kind"], "rows": _rows(s), "rss": s.get("peak_rss_mib")}
            )
            entry[name] = s["seconds"]
            if name == "full":
                entry["cpu"] = s.get("cpu_seconds")
    lines = []
    data = report["data"]
    lines.append(
        f"Fundtrace benchmark {report['date']}  scale {report['scale']:g}  seed {report['seed']}  "
        f"{data['total_rows']:,} records in {data['files']} files ({data['bytes'] / 1e6:,.0f} MB)"
        + (
            f"  raw layer partitioned by {report['raw_partitions']}"
            if report.get("raw_partitions", "none") != "none"
            else ""
        )
    )
    head = (
        f"{'step':60} {'kind':5} "
        + " ".join(f"{COLUMNS[name]:>8}" for name in RUNS)
        + f" {'full CPU':>8} {'rows':>10} {'peak MiB':>8}"
    )
    lines += [head, "-" * len(head)]

    def cell(v: float | None) -> str:
        return " " * 8 if v is None else f"{v:8.2f}"

    for key, s in sorted(by_step.items(), key=lambda kv: -(kv[1].get("full") or 0)):
        mark = " <== slowest 5" if key in slow else ""
        rows = "" if s["rows"] is None else f"{s['rows']:,}"
        rss = "" if s["rss"] is None else f"{s['rss']:8.0f}"
        lines.append(
            f"{key[:60]:60} {s['kind']:5} "
            + " ".join(f"{cell(s.get(name)):>8}" for name in RUNS)
            + f" {cell(s.get('cpu'))} {rows:>10} {rss:>8}{mark}"
        )
    lines.append("-" * len(head))
    for label, field in (
        ("asset steps", "asset_steps_seconds"),
        ("check steps", "check_steps_seconds"),
        ("orchestration between steps", "orchestration_seconds"),
        ("process startup (imports, definitions)", "startup_seconds"),
        ("execute_in_process", "execute_seconds"),
        ("TOTAL wall (child process)", "wall_seconds"),
        ("CPU seconds (user + system)", "cpu_seconds"),
        ("peak RSS MiB (child process)", "peak_rss_mib"),
    ):
        vals = [runs[r][field] if r in runs else None for r in RUNS]
        lines.append(f"{label:66} " + " ".join(cell(v) for v in vals))
    repeated = {r: runs[r]["repeats"] for r in RUNS if len(runs.get(r, {}).get("repeats", ())) > 1}
    if repeated:
        lines.append("")
        lines.append("wall seconds of each repeat (the run of median wall time is reported above):")
        for r, samples in repeated.items():
            walls = ", ".join(f"{x['wall_seconds']:.2f}" for x in samples)
            lines.append(f"  {r:22} {walls}")
    floor = report["floor"]
    ratios = report["ratios"]
    by_round = report.get("ratios_by_round") or []
    t = report["targets"]
    lines.append("")
    if len(by_round) > 1:
        lines.append(
            f"ratios: the median over {len(by_round)} rounds of each round's own "
            "(a round: the floor, the full build, then the runs after it)"
        )
    lines.append(
        f"floor (DuckDB alone reads the same raw files): {floor['seconds']:.2f}s "
        f"(median of {floor.get('all_seconds', [floor['seconds']])}"
        + (
            f"; a warm-up read first, {w:.2f}s, not counted"
            if (w := floor.get("warm_up_seconds"))
            else ""
        )
        + "), "
        f"peak RSS {floor['peak_rss_mib']:.0f} MiB"
    )
    for src, agg in floor["per_source"].items():
        lines.append(
            f"  {src:15} {agg['files']:4} files {agg['bytes'] / 1e6:8.1f} MB "
            f"{agg['rows']:>10,} rows {agg['seconds']:7.2f}s"
        )
    for label, key, cpu_key, target, target_key in (
        ("build / floor", "build_over_floor", "cpu_build_over_floor", "3", "build_within_3x_floor"),
        ("no-change / full", "no_change_over_full", "cpu_no_change_over_full", "0.10",
         "no_change_within_10pct"),
        *((label, f"{name}_over_full", f"cpu_{name}_over_full", "0.20", f"{name}_within_20pct")
          for name, label in ONE_FILE_RUNS.items()),
    ):  # fmt: skip
        if ratios[key] is None:
            lines.append(f"{label:18} not measured (--runs)")
            continue
        verdict = "OK" if t[target_key] else "MISSED"
        each = [r[key] for r in by_round if r.get(key) is not None]
        lines.append(
            f"{label:18} {ratios[key]:6.2f}  (target <= {target:4}) {verdict:6}  "
            f"CPU seconds: {ratios[cpu_key]:.2f}"
            + (
                f"  rounds: {', '.join(f'{v:.3f}' for v in each)} "
                f"({sum(v <= float(target) for v in each)} of {len(each)} within)"
                if len(each) > 1
                else ""
            )
        )
    lines.append(
        f"peak RSS           {report['peak_rss_mib']:6.0f} MiB (target <= 2048) "
        f"{'OK' if t['peak_rss_within_2gib'] else 'MISSED'}"
    )
    idle = report.get("idle_core_five") or []
    if idle:
        lines.append(
            f"steps of the full build that leave most of the {report['machine'].get('cpus')} "
            "cores idle (cores x wall - CPU seconds):"
        )
        for s in idle:
            lines.append(
                f"  {s['step'][:60]:60} {s['seconds']:7.2f}s wall {s['cpu_seconds']:7.2f}s CPU "
                f"{s['cores_used']:5.2f} cores used, {s['idle_core_seconds']:6.2f} idle"
            )
    for name, r in runs.items():
        if not r["success"] or r["failed_checks"]:
            lines.append(
                f"{name}: success={r['success']} failed steps={r['failed_steps']} "
                f"failed checks={r['failed_checks']}"
            )
    return "\n".join(lines)


def code_version() -> dict[str, Any]:
    """Commit measured (and how many files differ from it), or $BENCH_SOURCE_COMMIT for a
    snapshot without .git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return {"commit": commit, "modified_tracked_files": len(status.splitlines())}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": os.environ.get("BENCH_SOURCE_COMMIT"), "modified_tracked_files": None}


def machine_info() -> dict[str, Any]:
    import dagster
    import duckdb

    mem = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "memory_gib": mem,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "dagster": dagster.__version__,
    }


def bench(
    scale: float,
    seed: int,
    *,
    work_root: Path = WORK_DIR,
    results_dir: Path | None = RESULTS_DIR,
    cache_dir: Path | None = None,
    sources: list[str] | None = None,
    log: Callable[[str], None] = print,
    runs: Sequence[str] = RUNS,
    repeat: int = DEFAULT_REPEAT,
) -> dict[str, Any]:
    from bench import generate as gen

    if sources is None:
        sources = gen.wired_sources()
    raw_cache, gen_seconds = gen.ensure_dataset(
        scale, seed, sources, cache_dir or gen.CACHE_DIR, log=log
    )
    manifest = gen.load_manifest(raw_cache)
    work = work_root / f"scale{scale:g}-seed{seed}"
    shutil.rmtree(work, ignore_errors=True)
    raw = work / "raw"
    link_tree(
        raw_cache,
        raw,
        skip=lambda rel: (
            rel.parts[0] in {folder for folder, _ in EXTRA_RUNS.values()}
            or rel.name == gen.MANIFEST_NAME
        ),
    )
    code = snapshot_code(work / "code")
    home = work / "dagster_home"
    home.mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / "pipelines" / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "FUNDTRACE_RAW_DIR": str(raw),
        "FUNDTRACE_MARTS_DB": str(work / "marts" / "fundtrace.duckdb"),
        "FUNDTRACE_BUILD_DB": str(work / "build" / "fundtrace.duckdb"),
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": str(code),
    }
    runs = [name for name in runs if _generated(name, manifest, log)]
    floors: list[dict[str, Any]] = []
    rounds: list[dict[str, Any]] = []
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
    before_one_file = work / "before_one_file"
    added: list[Path] = []  # extra files in raw, removed when a run restores the state
    # keeps the state the later runs start from
    keep_before = any(name in FROM_BEFORE_ONE_FILE for name in runs)
    warm_up: dict[str, Any] | None = None
    for i, steps in enumerate(plan_rounds(runs, repeat)):
        nth = f" (round {i + 1} of {repeat})" if repeat > 1 else ""
        rnd: dict[str, Any] = {"floors": [], "runs": {}}
        for path in added:  # the floor and the full build read the generated files alone
            path.unlink()
        added = []
        for name in steps:
            if name in ("warm_up", "floor"):
                label = "warm-up" if name == "warm_up" else f"floor{nth}"
                log(f"{label}: DuckDB reads {raw} ...")
                read = run_child(
                    ["_floor", "--raw", str(raw), "--db", str(work / "floor.duckdb")],
                    env,
                    work / "floor.log",
                    work / f"floor-{'warm-up' if name == 'warm_up' else len(floors)}.json",
                )
                (work / "floor.duckdb").unlink(missing_ok=True)
                log(
                    f"{label}: {read['seconds']:.2f}s"
                    + (", not counted" if name == "warm_up" else "")
                )
                if name == "warm_up":
                    warm_up = read
                else:
                    floors.append(read)
                    rnd["floors"].append(read)
                continue
            args = ["_build"]
            if name == "full":  # from nothing
                for part in ("build", "marts"):
                    shutil.rmtree(work / part, ignore_errors=True)
            if name in FROM_BEFORE_ONE_FILE:
                if name in EXTRA_RUNS:  # only its own new file
                    for path in added:
                        path.unlink()
                    added = []
                for part in ("build", "marts"):
                    shutil.rmtree(work / part)
                    shutil.copytree(before_one_file / part, work / part)
            if name == "one_file" and keep_before:
                for part in ("build", "marts"):
                    shutil.rmtree(before_one_file / part, ignore_errors=True)
                    shutil.copytree(work / part, before_one_file / part)
            if name in EXTRA_RUNS:
                folder, key = EXTRA_RUNS[name]
                folders = set()
                for extra in manifest[key]:
                    rel = Path(extra["path"]).relative_to(folder)
                    (raw / rel).parent.mkdir(parents=True, exist_ok=True)
                    os.link(raw_cache / extra["path"], raw / rel)
                    added.append(raw / rel)
                    folders.add(rel.parts[0])
                args += ["--folders", ",".join(sorted(folders))]
            suffix = f"-{i}" if repeat > 1 else ""
            log(f"{name}: building{nth} ...")
            sample = run_child(
                args, env, work / f"{name}{suffix}.log", work / f"{name}{suffix}.json", cwd=code
            )
            samples[name].append(sample)
            rnd["runs"][name] = sample
            log(f"{name}: {sample['wall_seconds']:.2f}s, success={sample['success']}")
        rnd["floor"] = median_floor(rnd["floors"])
        rounds.append(rnd)
    floor = median_floor(floors)
    floor["warm_up_seconds"] = warm_up["seconds"] if warm_up else None
    log(f"floor: {floor['seconds']:.2f}s (runs: {floor['all_seconds']})")
    measured = {name: median_run(samples[name]) for name in runs}
    if repeat > 1:
        for name in runs:
            walls = ", ".join(f"{r['wall_seconds']:.2f}" for r in measured[name]["repeats"])
            log(f"{name}: median {measured[name]['wall_seconds']:.2f}s of [{walls}]")
    shutil.rmtree(before_one_file, ignore_errors=True)
    date = dt.datetime.now(dt.UTC).date().isoformat()
    report = summarize(
        scale=scale,
        seed=seed,
        manifest=manifest,
        generate_seconds=gen_seconds,
        floor=floor,
        runs=measured,
        machine={**machine_info(), "ijson_backend": floor.get("ijson_backend")},
        date=date,
        rounds=[{"floor": r["floor"], "runs": r["runs"]} for r in rounds],
    )
    report["repeat"] = repeat
    # FUNDTRACE_RAW_PARTITIONS reaches the builds through the environment
    from pipelines.partitions import raw_partitions_from_env

    report["raw_partitions"] = raw_partitions_from_env()
    log("")
    log(format_table(report))
    if results_dir is not None:
        results_dir.mkdir(parents=True, exist_ok=True)
        suffix = "" if seed == DEFAULT_SEED else f"-seed{seed}"
        if report["raw_partitions"] != "none":  # never overwrites the unpartitioned result
            suffix += f"-raw-partitions-{report['raw_partitions']}"
        if tag := os.environ.get("BENCH_TAG", "").strip():  # keeps earlier results of the day
            suffix += f"-{tag}"
        if os.environ.get("BENCH_DUCKDB_CONFIG"):  # an experiment never overwrites a baseline
            config = json.loads(os.environ["BENCH_DUCKDB_CONFIG"])
            suffix += "-" + "-".join(f"{k}={v}".replace(" ", "") for k, v in sorted(config.items()))
        out = results_dir / f"{date}-scale{scale:g}{suffix}.json"
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(report, indent=1) + "\n")
        tmp.replace(out)
        log(f"\nwritten {out}")
    return report


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through run_child, which stops its build


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("_floor", "_build"):
        return _child(argv)
    parser = argparse.ArgumentParser(prog="bench.run", description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--scale", type=float, default=float(os.environ.get("BENCH_SCALE") or DEFAULT_SCALE)
    )
    parser.add_argument(
        "--seed", type=int, default=int(os.environ.get("BENCH_SEED") or DEFAULT_SEED)
    )
    parser.add_argument("--work", type=Path, default=WORK_DIR, help="where builds run")
    parser.add_argument("--no-results", action="store_true", help="do not write bench/results")
    parser.add_argument(
        "--runs",
        default=",".join(RUNS),
        help=f"comma-separated subset of {','.join(RUNS)} (full always runs first; "
        f"{' and '.join(FROM_BEFORE_ONE_FILE)} need one_file)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=int(os.environ.get("BENCH_REPEAT") or DEFAULT_REPEAT),
        help="run each build this many times and report the run of median wall time",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    asked = set(args.runs.split(","))
    if asked & set(FROM_BEFORE_ONE_FILE):
        asked.add("one_file")
    runs = [r for r in RUNS if r == "full" or r in asked]
    report = bench(
        args.scale,
        args.seed,
        work_root=args.work,
        results_dir=None if args.no_results else RESULTS_DIR,
        runs=runs,
        repeat=args.repeat,
    )
    return 0 if all(r["success"] for r in report["runs"].values()) else 1


def _child(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.run child")
    parser.add_argument("kind", choices=("_floor", "_build"))
    parser.add_argument("--raw", type=Path)
    parser.add_argument("--db", type=Path)
    parser.add_argument("--folders", default="", help="_build: only what these folders launch")
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.kind == "_floor":
        data = measure_floor(args.raw, args.db, args.db.parent / "floor_tmp")
    else:
        data = run_build([f for f in args.folders.split(",") if f])
    args.result.write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    code = main()
    # as the CLI that `make run` uses ends (pipelines/cli.py): the run measured is that one;
    # imported only now, so Dagster's import stays in the build's startup figure
    from pipelines.cli import exit_process

    exit_process(code)
