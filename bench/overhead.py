"""What Dagster orchestration costs per step and per partition on this machine (no data work).

    python -m bench.overhead [--repeat 3]

Prints JSON with medians over `--repeat` rounds of:
- `in_process_ephemeral_ms_per_step`: a chain of trivial assets, in-process executor, in-memory
  instance;
- `in_process_sqlite_ms_per_step`: the same with a SQLite-backed instance (what `make run` uses:
  $DAGSTER_HOME);
- `run_per_partition_ms`: one run per partition of a statically partitioned asset (what a
  partition-per-file layout costs when every file is its own run);
- `single_run_backfill_ms`: all partitions in one run (BackfillPolicy.single_run);
- `multiprocess_ms_per_extra_step`: `dagster asset materialize` with the default multiprocess
  executor, (10 assets - 1 asset) / 9, against the in-process executor through the same CLI.
These are the figures docs/scaling.md uses for "what partitioning costs on one machine".
(No `from __future__ import annotations` here: Dagster must resolve the assets' annotations.)
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg

STEPS = 30
PARTITIONS = 40

_CLI_DEFS = """
import os
import dagster as dg
N = int(os.environ["BENCH_N_ASSETS"])
assets = []
for i in range(N):
    @dg.asset(name=f"m{i}", deps=[f"m{i - 1}"] if i else [])
    def _a() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"dagster/row_count": 1})
    assets.append(_a)
executor = dg.in_process_executor if os.environ.get("BENCH_IN_PROCESS") else dg.multiprocess_executor
defs = dg.Definitions(assets=assets, executor=executor)
"""


def _chain_job(n: int) -> Any:
    assets = []
    for i in range(n):

        @dg.asset(name=f"a{i}", deps=[f"a{i - 1}"] if i else [])
        def _a() -> dg.MaterializeResult:
            return dg.MaterializeResult(metadata={"dagster/row_count": 1})

        assets.append(_a)
    job = dg.define_asset_job("j", executor_def=dg.in_process_executor)
    return dg.Definitions(assets=assets, jobs=[job]).resolve_job_def("j")


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def in_process_round(instance: Any) -> dict[str, float]:
    job = _chain_job(STEPS)
    out = {
        "in_process_ephemeral_ms_per_step": _timed(job.execute_in_process) / STEPS * 1000,
        "in_process_sqlite_ms_per_step": _timed(lambda: job.execute_in_process(instance=instance))
        / STEPS
        * 1000,
    }
    parts = dg.StaticPartitionsDefinition([f"file-{i:03d}" for i in range(PARTITIONS)])

    @dg.asset(partitions_def=parts)
    def per_file() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"dagster/row_count": 1})

    @dg.asset(partitions_def=parts, backfill_policy=dg.BackfillPolicy.single_run())
    def all_files(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"files": len(context.partition_keys)})

    defs = dg.Definitions(
        assets=[per_file, all_files],
        jobs=[
            dg.define_asset_job("per", selection=[per_file], executor_def=dg.in_process_executor),
            dg.define_asset_job("one", selection=[all_files], executor_def=dg.in_process_executor),
        ],
    )
    per, one = defs.resolve_job_def("per"), defs.resolve_job_def("one")
    keys = parts.get_partition_keys()
    out["run_per_partition_ms"] = (
        _timed(lambda: [per.execute_in_process(instance=instance, partition_key=k) for k in keys])
        / PARTITIONS
        * 1000
    )
    out["single_run_backfill_ms"] = (
        _timed(
            lambda: one.execute_in_process(
                instance=instance,
                tags={
                    "dagster/asset_partition_range_start": keys[0],
                    "dagster/asset_partition_range_end": keys[-1],
                },
            )
        )
        * 1000
    )
    return out


def multiprocess_round(workdir: Path) -> dict[str, float]:
    defs = workdir / "chain_defs.py"
    defs.write_text(_CLI_DEFS)
    dagster = Path(sys.executable).with_name("dagster")

    def cli(n: int, in_process: bool) -> float:
        env = {**os.environ, "BENCH_N_ASSETS": str(n)}
        if in_process:
            env["BENCH_IN_PROCESS"] = "1"
        return _timed(
            lambda: subprocess.run(
                [str(dagster), "asset", "materialize", "-f", str(defs), "--select", "*"],
                env=env,
                capture_output=True,
                check=True,
            )
        )

    one, ten = cli(1, False), cli(10, False)
    one_ip, ten_ip = cli(1, True), cli(10, True)
    return {
        "multiprocess_ms_per_extra_step": (ten - one) / 9 * 1000,
        "cli_in_process_ms_per_extra_step": (ten_ip - one_ip) / 9 * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.overhead", description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        os.environ["DAGSTER_HOME"] = str(home)
        with dg.DagsterInstance.get() as instance:
            for _ in range(args.repeat):
                rounds.append({**in_process_round(instance), **multiprocess_round(Path(tmp))})
    result: dict[str, Any] = {k: round(statistics.median(r[k] for r in rounds)) for k in rounds[0]}
    result.update(steps=STEPS, partitions=PARTITIONS, repeat=args.repeat, load=os.getloadavg())
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
