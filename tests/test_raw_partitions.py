"""The raw layer partitioned by source file (FUNDTRACE_RAW_PARTITIONS=file, pipelines/partitions.py):
restricted ingest, the definitions, the sensor's requests, and a partitioned demo build that
equals the unpartitioned one."""

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from assets.raw import private_funding, threesixty_giving
from assets.raw.file_hashes import RAW_FILE_HASHES
from assets.raw.ingest import FILE_MANIFEST, ingest_folder
from pipelines.partitions import (
    DOWNSTREAM_TAG,
    INVALID_KEY_SUBSTRINGS,
    PARTITIONS_ENV,
    RAW_FOLDERS,
    RAW_PARTITIONS_TAG,
    RunState,
    execute_partitioned,
    invalid_key,
    key_changes,
    raw_partitions_from_env,
    run_state,
)
from pipelines.sensors import file_partition_requests, raw_fingerprint

GRANTS_FOLDER = next(f for f in RAW_FOLDERS if f.source_system == "360giving")


def _ingest_grants(con: duckdb.DuckDBPyConnection, raw: Path, files: set[str] | None) -> object:
    return ingest_folder(
        con,
        source_system=threesixty_giving.SOURCE_SYSTEM,
        raw_dir=raw,
        folder=threesixty_giving.FOLDER,
        suffixes=threesixty_giving.SUFFIXES,
        raw_table=threesixty_giving.RAW_GRANTS,
        parser=threesixty_giving.parse_file,
        parser_version=threesixty_giving.PARSER_VERSION,
        log=lambda _: None,
        files=files,
    )


def _files_loaded(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(
        con.execute(
            f"SELECT source_file, count(*) FROM {threesixty_giving.RAW_GRANTS.qualified} "
            "GROUP BY ALL"
        ).fetchall()
    )


def test_ingest_reads_only_the_given_files_and_leaves_the_others(demo_raw: Path) -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    csv = "360giving/harbourton-community-foundation-grants.csv"
    js = "360giving/harbourton-city-council-grants-2025.json"
    report = _ingest_grants(con, demo_raw, {csv, "360giving/"})
    assert set(_files_loaded(con)) == {csv}
    assert report.files_seen == 1 and report.files_parsed == 1  # type: ignore[attr-defined]

    loaded_at = con.execute("SELECT max(loaded_at) FROM raw.raw_360giving_grants").fetchone()
    _ingest_grants(con, demo_raw, {js})
    assert set(_files_loaded(con)) == {csv, js}
    # the first file was neither parsed again nor had its hash dropped from the cache
    assert (
        con.execute(
            "SELECT max(loaded_at) FROM raw.raw_360giving_grants WHERE source_file = ?", [csv]
        ).fetchone()
        == loaded_at
    )
    hashed = {
        r[0] for r in con.execute(f"SELECT source_file FROM {RAW_FILE_HASHES.qualified}").fetchall()
    }
    assert hashed == {csv, js}

    # a file gone from the folder is forgotten by any run of the folder, the folder's own
    # partition included
    (demo_raw / csv).unlink()
    report = _ingest_grants(con, demo_raw, {"360giving/"})
    assert set(_files_loaded(con)) == {js}
    assert report.files_removed == 1 and report.files_parsed == 0  # type: ignore[attr-defined]
    manifest = {
        r[0] for r in con.execute(f"SELECT source_file FROM {FILE_MANIFEST.qualified}").fetchall()
    }
    assert manifest == {js}


def test_mode_comes_from_the_environment_and_a_wrong_value_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(PARTITIONS_ENV, raising=False)
    assert raw_partitions_from_env() == "none"
    monkeypatch.setenv(PARTITIONS_ENV, " File ")
    assert raw_partitions_from_env() == "file"
    monkeypatch.setenv(PARTITIONS_ENV, "files")
    with pytest.raises(ValueError, match=f"{PARTITIONS_ENV}='files': use one of none, file"):
        raw_partitions_from_env()


def test_key_substrings_dagster_refuses_are_ours() -> None:
    from dagster._core.definitions.partitions.utils.base import INVALID_PARTITION_SUBSTRINGS

    assert set(INVALID_KEY_SUBSTRINGS) == set(INVALID_PARTITION_SUBSTRINGS)
    assert invalid_key("ocds/a...json") is not None
    assert invalid_key("ocds/releases 2024 (v2).json") is None


def test_keys_follow_the_folder(demo_raw: Path) -> None:
    changes = key_changes(GRANTS_FOLDER, demo_raw, ["360giving/gone.csv", "360giving/"])
    assert changes.added == [
        "360giving/harbourton-city-council-grants-2025.json",
        "360giving/harbourton-community-foundation-grants.csv",
        "360giving/ministry-urban-renewal-cities-fund-2024.xlsx",
    ]
    assert changes.deleted == ["360giving/gone.csv"]
    (demo_raw / "360giving" / "notes.txt").write_text("not a grants file")
    (demo_raw / "360giving" / "bad...name.csv").write_text("a,b\n")
    changes = key_changes(GRANTS_FOLDER, demo_raw, [])
    assert "360giving/notes.txt" not in changes.added  # not a suffix the source reads
    assert [k for k, _ in changes.refused] == ["360giving/bad...name.csv"]
    assert changes.added[0] == "360giving/"


def _defs(monkeypatch: pytest.MonkeyPatch, mode: str) -> dg.Definitions:
    from pipelines.definitions import build_definitions

    monkeypatch.setenv(PARTITIONS_ENV, mode)
    return build_definitions()


def test_file_mode_partitions_every_folder_asset_and_nothing_else(
    fundtrace_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    defs = _defs(monkeypatch, "file")
    graph = defs.resolve_asset_graph()
    partitioned = {
        key for key in graph.get_all_asset_keys() if graph.get(key).partitions_def is not None
    }
    assert partitioned and all(k.path[0] == "raw" for k in partitioned)
    # every raw asset reads a source folder by file, except the few that read one fixed file
    unpartitioned_raw = {k.path[1] for k in graph.get_all_asset_keys() if k.path[0] == "raw"} - {
        k.path[1] for k in partitioned
    }
    assert unpartitioned_raw == {
        "raw_council_spend_councils",  # councils.csv, the payer mapping
        "ref_ecb_rates",  # shipped reference files
        "ref_funders",
        "ref_orgid_prefixes",
    }
    assert dg.AssetKey(["raw", "raw_ocds_releases"]) in partitioned
    assert dg.AssetKey(["raw", "raw_council_spend_councils"]) not in partitioned  # councils.csv
    for folder in RAW_FOLDERS:
        job = defs.resolve_job_def(folder.job_name)
        assert job.partitions_def == folder.partitions_def
        keys = {k for k in job.asset_layer.executable_asset_keys}
        assert keys and keys <= partitioned
        for key in keys:  # a range of files is one step, not one run per file
            assert graph.get(key).backfill_policy == dg.BackfillPolicy.single_run()
    downstream = defs.resolve_job_def("fundtrace_all")
    assert not set(downstream.asset_layer.executable_asset_keys) & partitioned
    assert dg.AssetKey(["marts", "money_flows"]) in downstream.asset_layer.executable_asset_keys
    assert downstream.tags.get(DOWNSTREAM_TAG) == "1"
    sensor = defs.resolve_sensor_def("fundtrace_raw_files")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING

    plain = _defs(monkeypatch, "none").resolve_asset_graph()
    assert all(plain.get(k).partitions_def is None for k in plain.get_all_asset_keys())


def test_sensor_requests_one_run_per_changed_file_or_one_for_the_folder() -> None:
    before = {"360giving/a.csv": [1, 1], "360giving/b.csv": [2, 2], "ocds/x.json": [3, 3]}
    after = {"360giving/a.csv": [1, 1], "360giving/b.csv": [2, 5], "360giving/c.csv": [4, 4]}
    keys = ["360giving/", "360giving/a.csv", "360giving/b.csv", "360giving/c.csv"]
    runs = file_partition_requests(GRANTS_FOLDER, "raw_files_360giving", before, after, keys)
    assert [r.partition_key for r in runs] == ["360giving/b.csv", "360giving/c.csv"]
    assert all(r.tags[RAW_PARTITIONS_TAG] == "1" for r in runs)
    # a file removed: the folder's own partition forgets it
    gone = file_partition_requests(
        GRANTS_FOLDER, "raw_files_360giving", before, {"360giving/a.csv": [1, 1]}, keys[:2]
    )
    assert [r.partition_key for r in gone] == ["360giving/"]
    assert gone[0].tags["fundtrace/removed"] == "360giving/b.csv"
    # many files at once (a bulk copy), or the first tick: one run over every key
    for bulk in (
        file_partition_requests(
            GRANTS_FOLDER, "raw_files_360giving", before, after, keys, fan_out_limit=1
        ),
        file_partition_requests(GRANTS_FOLDER, "raw_files_360giving", {}, after, keys),
    ):
        assert len(bulk) == 1 and bulk[0].partition_key is None
        assert bulk[0].tags["dagster/asset_partition_range_start"] == "360giving/"
        assert bulk[0].tags["dagster/asset_partition_range_end"] == "360giving/c.csv"
    # the same change seen twice makes the same run keys (no duplicate runs)
    again = file_partition_requests(GRANTS_FOLDER, "raw_files_360giving", before, after, keys)
    assert [r.run_key for r in again] == [r.run_key for r in runs]


def test_downstream_is_due_once_the_raw_runs_are_done() -> None:
    t0 = dt.datetime(2026, 11, 27, 2, tzinfo=dt.UTC)
    later = t0 + dt.timedelta(minutes=5)
    assert not RunState(0, None, None).downstream_due()  # nothing ingested yet
    assert RunState(0, t0, None).downstream_due()
    assert not RunState(1, later, t0).downstream_due()  # a raw run still queued or running
    assert RunState(0, later, t0).downstream_due()
    assert not RunState(0, t0, later).downstream_due()  # downstream began after it


def test_partitioned_demo_build_equals_the_unpartitioned_one_and_one_file_runs_alone(
    fundtrace_env: dict[str, Path], demo_build: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_end_to_end import _content

    defs = _defs(monkeypatch, "file")
    raw = fundtrace_env["raw"]
    with dg.instance_for_test() as instance:
        results = execute_partitioned(defs, instance, raw, log=lambda _: None)
        assert [r.success for r in results] == [True] * (len(RAW_FOLDERS) + 1)
        assert _content(fundtrace_env["build"]) == _content(demo_build["build"])
        state = run_state(instance)
        assert state.raw_in_flight == 0 and not state.downstream_due()

        # a new private-funding file: its partition is added and run alone
        new = "private/second_funder.csv"
        cursor = json.dumps(raw_fingerprint(raw))
        shutil.copyfile(raw / "private" / "harbourton_private_funding.csv", raw / new)
        before = _loaded_at(fundtrace_env["build"])
        sensor = defs.resolve_sensor_def("fundtrace_raw_files")
        ctx = dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor)
        result = sensor(ctx)
        assert isinstance(result, dg.SensorResult)
        private = next(f for f in RAW_FOLDERS if f.folder == private_funding.FOLDER)
        added = [
            k
            for r in result.dynamic_partitions_requests or []
            if isinstance(r, dg.AddDynamicPartitionsRequest)
            for k in r.partition_keys
        ]
        assert added == [new]
        assert [r.partition_key for r in result.run_requests or []] == [new]
        instance.add_dynamic_partitions(private.partitions_name, added)
        run = defs.resolve_job_def(private.job_name).execute_in_process(
            instance=instance, partition_key=new
        )
        assert run.success
        # the partition's own rows; the whole table's beside them
        (mat,) = [e.materialization for e in run.get_asset_materialization_events()]
        assert mat.partition == new
        con = duckdb.connect(str(fundtrace_env["build"]), read_only=True)
        rows = dict(
            con.execute(
                "SELECT source_file, count(*) FROM raw.raw_private_funding GROUP BY ALL"
            ).fetchall()
        )
        con.close()
        assert mat.metadata["dagster/row_count"].value == rows[new] > 0
        assert mat.metadata["table_row_count"].value == sum(rows.values())
        # a range of files: no partition claims the range's rows as its own
        for result in results[:-1]:
            for event in result.get_asset_materialization_events():
                metadata = event.materialization.metadata
                assert "dagster/row_count" not in metadata and "table_row_count" in metadata
        after = _loaded_at(fundtrace_env["build"])
        # only the new file was read; every other file of every source kept its rows
        assert {f for f in after if f not in before or after[f] != before[f]} == {new}
        assert run_state(instance).downstream_due()


def _loaded_at(db: Path) -> dict[str, object]:
    con = duckdb.connect(str(db), read_only=True)
    rows = dict(
        con.execute(
            f"SELECT source_file, max(ingested_at) FROM {FILE_MANIFEST.qualified} GROUP BY ALL"
        ).fetchall()
    )
    con.close()
    return rows


def test_make_run_partitioned_publishes_the_marts(
    fundtrace_env: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`make run` (`python -m pipelines.cli run`) with FUNDTRACE_RAW_PARTITIONS=file: keys
    registered, one run per folder, then fundtrace_all, which publishes the marts."""
    from pipelines import cli

    monkeypatch.setenv(PARTITIONS_ENV, "file")
    assert cli.main(["run"]) == 0
    out = capsys.readouterr().out
    assert "raw layer:   partitioned by file" in out
    assert f"(and {len(RAW_FOLDERS)} raw runs) succeeded" in out
    # the raw tables' rows are listed too (a partition range reports them as table_row_count)
    line = next(x for x in out.splitlines() if x.startswith("raw/raw_ocds_releases "))
    assert int(line.split()[1]) > 0
    con = duckdb.connect(str(fundtrace_env["marts"]), read_only=True)
    assert con.execute("SELECT count(*) FROM marts.money_flows").fetchone()[0] > 0  # type: ignore[index]
    con.close()
    with dg.DagsterInstance.get() as instance:
        keys = instance.get_dynamic_partitions(GRANTS_FOLDER.partitions_name)
    assert keys == GRANTS_FOLDER.partition_keys(fundtrace_env["raw"])


def test_make_run_partitioned_names_the_failed_raw_run_and_keeps_the_marts(
    fundtrace_env: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A raw run that fails stops `make run` before `fundtrace_all`: the CLI says which run
    failed and that nothing downstream ran, and no marts file is published."""
    from assets.raw import ingest
    from pipelines import cli
    from pipelines.jobs import ALL_ASSETS_JOB_NAME

    works = ingest.ingest_single_table

    def broken(con: object, *, raw_table: object, **kwargs: Any) -> Any:
        if raw_table is private_funding.RAW_PRIVATE:
            raise RuntimeError("the private funding folder cannot be read (test)")
        return works(con, raw_table=raw_table, **kwargs)  # pyright: ignore[reportArgumentType]

    monkeypatch.setenv(PARTITIONS_ENV, "file")
    monkeypatch.setattr(ingest, "ingest_single_table", broken)
    private = next(f for f in RAW_FOLDERS if f.source_system == private_funding.SOURCE_SYSTEM)
    assert cli.main(["run"]) == 1
    out = capsys.readouterr()
    (line,) = [x for x in out.out.splitlines() if "FAILED" in x]
    assert line.startswith("raw run ") and f"({private.job_name}) FAILED after " in line
    assert line.endswith(f"{ALL_ASSETS_JOB_NAME} did not run; the previous marts were kept")
    assert "cannot be read (test)" in out.err
    assert not fundtrace_env["marts"].exists()
