"""Command line (`fundtrace`, or `python -m pipelines.cli`).

- `run` materializes everything (what `make run` does); the run is recorded in the Dagster
  instance at $DAGSTER_HOME, so it shows up in the UI.
- `who-controls <name or id>` prints who controls a project, stream or organisation, read-only
  from the published marts ($FUNDTRACE_MARTS_DB).
"""

import argparse
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import NoReturn

import dagster as dg


def _run(_: argparse.Namespace) -> int:
    from pipelines.definitions import build_definitions
    from pipelines.jobs import ALL_ASSETS_JOB_NAME
    from pipelines.partitions import PARTITIONS_ENV, execute_partitioned, raw_partitions_from_env
    from pipelines.resources import (
        REPO_ROOT,
        build_db_from_env,
        marts_db_from_env,
        raw_dir_from_env,
    )

    # runs are recorded where `make ui` looks, so they appear in the Dagster UI
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(REPO_ROOT / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(Path(__file__).with_name("dagster.yaml"), home / "dagster.yaml")
    print(f"raw input:   {raw_dir_from_env()}")
    print(f"build db:    {build_db_from_env()}")
    print(f"marts file:  {marts_db_from_env()}")
    started = time.perf_counter()
    defs = build_definitions()
    run_config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    with dg.DagsterInstance.get() as instance:
        if raw_partitions_from_env() == "file":
            print(f"raw layer:   partitioned by file ({PARTITIONS_ENV}=file)")
            results = execute_partitioned(defs, instance, raw_dir_from_env(), run_config)
        else:
            job = defs.resolve_job_def(ALL_ASSETS_JOB_NAME)
            results = [
                job.execute_in_process(
                    instance=instance, raise_on_error=False, run_config=run_config
                )
            ]
    elapsed = time.perf_counter() - started

    rows: dict[str, str] = {}  # a partitioned run materializes an asset once per partition
    for result in results:
        for event in result.get_asset_materialization_events():
            mat = event.step_materialization_data.materialization
            count = mat.metadata.get("table_row_count") or mat.metadata.get("dagster/row_count")
            rows[mat.asset_key.to_user_string()] = "" if count is None else str(count.value)
    print(f"\n{'asset':45} rows")
    for key, count in sorted(rows.items()):
        print(f"{key:45} {count}")
    events = [e for result in results for e in result.all_events]
    failed_checks = [
        e.asset_check_evaluation_data
        for e in events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.asset_check_evaluation_data is not None
        and not e.asset_check_evaluation_data.passed
    ]
    for check in failed_checks:
        print(
            f"check {check.asset_key.to_user_string()}:{check.check_name} FAILED "
            f"({check.severity.value})"
        )
    # partitioned raw layer: one run per folder, then fundtrace_all
    run_ids = results[-1].run_id + (
        f" (and {len(results) - 1} raw runs)" if len(results) > 1 else ""
    )
    failed = [r for r in results if not r.success]
    if failed:
        failures = [e for e in events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        for event in failures:
            print(f"step {event.step_key} failed: {event.message}", file=sys.stderr)
        job = failed[0].dagster_run.job_name
        if len(results) > 1 and job != ALL_ASSETS_JOB_NAME:  # a raw run: nothing downstream ran
            print(
                f"\nraw run {failed[0].run_id} ({job}) FAILED after {elapsed:.1f}s, so "
                f"{ALL_ASSETS_JOB_NAME} did not run; the previous marts were kept"
            )
        else:
            print(f"\nrun {run_ids} FAILED after {elapsed:.1f}s; the previous marts were kept")
        return 1
    print(f"\nrun {run_ids} succeeded in {elapsed:.1f}s")
    return 0


def _who_controls(args: argparse.Namespace) -> int:
    from pipelines.resources import marts_db_from_env
    from pipelines.who_controls import who_controls

    marts = args.marts.expanduser().resolve() if args.marts else marts_db_from_env()
    try:
        return who_controls(marts, " ".join(args.query), evidence=args.evidence)
    except BrokenPipeError:  # piped into `head` or a pager that quit early: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fundtrace", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="materialize every asset and publish the marts").set_defaults(
        func=_run
    )
    who = sub.add_parser(
        "who-controls",
        help="who controls a project, funding stream or organisation (read-only, from the marts)",
        description="Print the control rows (marts.project_control, marts.funding_stream_control) "
        "and ownership chains (marts.ultimate_controllers) for every organisation, person, "
        "project or funding stream whose id is QUERY, or whose name contains it (else the "
        "closest names). Exit 1 when nothing matches, 2 when there is no marts file.",
    )
    who.add_argument("query", nargs="+", help="a name or part of one, or a canonical id")
    who.add_argument(
        "--marts",
        type=Path,
        help="published marts file (default: $FUNDTRACE_MARTS_DB, else data/marts/fundtrace.duckdb)",
    )
    who.add_argument(
        "--evidence", action="store_true", help="also print the source records of every row"
    )
    who.set_defaults(func=_who_controls)
    args = parser.parse_args(argv)
    return int(args.func(args))


def exit_process(code: int) -> NoReturn:
    """End the process with `code` once its output is flushed, without Python's finalisation.

    After a run the heap holds millions of objects (Dagster, Great Expectations, the run's
    events), and the interpreter's last garbage collections traverse all of them: ~1.5 s
    after every scale-1 run had finished. Everything that must outlive the process is closed
    before this point (the build database and the Dagster instance at the end of the run,
    the published marts when they are swapped in); the fork server of the worker pools exits
    when its parent does. Exit handlers are not run: nothing of ours registers one.
    """
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    exit_process(main())  # usage errors still leave through argparse's SystemExit
