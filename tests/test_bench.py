"""The benchmark's tools: a deterministic generator whose files the pipeline's own parsers read
(generated records = loaded + quarantined), and a runner whose report has the fields issue 8
asks for. Nothing here asserts a duration: performance is read from bench/results/."""

import csv
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from assets.raw import (
    council_spend,
    eu_cordis,
    eu_fts,
    eu_kohesio,
    governance,
    private_funding,
    threesixty_giving,
)
from assets.raw.ingest import FILE_MANIFEST, QUARANTINE, ingest_folder
from bench import generate as gen
from bench import run as runner

TINY = 0.0005  # 500 funding records
FUNDING_AND_REGISTER = [
    "360giving",
    "council_spend",
    "eu_cordis",
    "eu_fts",
    "eu_kohesio",
    "private",
    "governance",
]


def _quiet(_: str) -> None:
    pass


def _folder(module: Any, table: Any) -> Callable[[duckdb.DuckDBPyConnection, Path], object]:
    def ingest(con: duckdb.DuckDBPyConnection, raw: Path) -> object:
        return ingest_folder(
            con,
            source_system=module.SOURCE_SYSTEM,
            raw_dir=raw,
            folder=module.FOLDER,
            suffixes=module.SUFFIXES,
            raw_table=table,
            parser=module.parse_file,
            parser_version=module.PARSER_VERSION,
            log=_quiet,
        )

    return ingest


INGEST: dict[str, Callable[[duckdb.DuckDBPyConnection, Path], object]] = {
    "360giving": _folder(threesixty_giving, threesixty_giving.RAW_GRANTS),
    "council_spend": _folder(council_spend, council_spend.RAW_SPEND),
    "eu_kohesio": _folder(eu_kohesio, eu_kohesio.RAW_KOHESIO),
    "private": _folder(private_funding, private_funding.RAW_PRIVATE),
    "eu_cordis": lambda con, raw: eu_cordis.ingest_cordis(con, raw, log=_quiet),
    "eu_fts": lambda con, raw: eu_fts.ingest_fts(con, raw, log=_quiet),
    "governance": lambda con, raw: governance.ingest_governance(con, raw, log=_quiet),
}


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ------------------------------------------------------------------------------ generator


def test_same_seed_gives_the_same_bytes_and_another_seed_other_data(tmp_path: Path) -> None:
    sources = [*FUNDING_AND_REGISTER, "ocds", "bods"]
    gen.generate(TINY, 7, tmp_path / "a", sources)
    gen.generate(TINY, 7, tmp_path / "b", sources)
    gen.generate(TINY, 8, tmp_path / "c", sources)
    a, b, c = (_digests(tmp_path / n) for n in "abc")
    assert a == b
    # every source folder, the manifest and the one-new-file extra are written
    assert {k.split("/")[0] for k in a} >= {*sources, gen.EXTRA_DIR, gen.MANIFEST_NAME}
    differing = [k for k in a if k in c and a[k] != c[k]]
    assert len(differing) > len(a) // 2


def test_rows_follow_the_scale_factor(tmp_path: Path) -> None:
    manifest = gen.generate(0.002, 1, tmp_path, FUNDING_AND_REGISTER)
    funding = sum(
        f.rows
        for f in manifest.files
        if f.source != "governance" and not f.path.endswith(gen.COUNCILS_FILE)
    )
    # 0.002 x 1,000,000 funding rows, each source share rounded
    assert abs(funding - 2_000) <= len(gen.FUNDING_SHARES)
    shares = {k: round(v * 2_000) for k, v in gen.FUNDING_SHARES.items()}
    by_source = manifest.rows_by_source()
    assert by_source["360giving"] == shares["360giving_csv"] + shares["360giving_json"]
    assert by_source["eu_kohesio"] == shares["eu_kohesio"]


def test_generated_data_has_duplicates_variants_and_about_half_a_percent_bad_rows(
    tmp_path: Path,
) -> None:
    manifest = gen.generate(0.02, 3, tmp_path, FUNDING_AND_REGISTER)
    files = [f for f in manifest.files if f.source != "governance"]
    rows = sum(f.rows for f in files)
    bad = sum(f.bad_value + f.bad_structure for f in files)
    assert 0.002 < bad / rows < 0.01
    assert sum(f.duplicates for f in files) / rows > 0.002
    assert sum(f.bad_structure for f in files) > 0
    # one company under several spellings and id forms across the 360Giving CSVs
    con = duckdb.connect()
    variants = con.execute(
        """SELECT max(names), max(ids) FROM (
             SELECT ltrim("Recipient Org:Company Number", '0') AS number,
                    count(DISTINCT "Recipient Org:Name") AS names,
                    count(DISTINCT "Recipient Org:Identifier") AS ids
             FROM read_csv(?, all_varchar = true, ignore_errors = true, union_by_name = true)
             WHERE "Recipient Org:Company Number" IS NOT NULL GROUP BY 1)""",
        [str(tmp_path / "360giving" / "*.csv")],
    ).fetchall()
    assert variants[0][0] >= 3 and variants[0][1] >= 2


def test_the_pipeline_parsers_read_every_generated_file(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    manifest = gen.generate(TINY, 11, raw, FUNDING_AND_REGISTER)
    con = duckdb.connect(str(tmp_path / "build.duckdb"))
    for source in FUNDING_AND_REGISTER:
        INGEST[source](con, raw)
    seen = {
        (r[0], r[1]): r[2:]
        for r in con.execute(
            f"SELECT source_system, source_file, status, rows_in, rows_loaded, rows_quarantined, "
            f"message FROM {FILE_MANIFEST.qualified}"
        ).fetchall()
    }
    structural = 0
    for f in manifest.files:
        status, rows_in, loaded, quarantined, message = seen[(f.source, f.path)]
        assert status != "failed", f"{f.path}: {message}"
        if f.path.endswith(gen.COUNCILS_FILE):  # the payer mapping: its own table
            continue
        assert rows_in == f.rows, f.path
        assert (loaded, quarantined) == (f.rows - f.bad_structure, f.bad_structure), f.path
        structural += f.bad_structure
    # the one-in-four dirty files each hold at least one broken record
    assert structural >= 4
    rejected = con.execute(
        f"SELECT count(*) FROM {QUARANTINE.qualified} WHERE source_row IS NOT NULL"
    ).fetchall()
    assert rejected[0][0] == structural
    mappings, problems = council_spend.load_councils(con, raw)
    councils = next(f for f in manifest.files if f.path.endswith(gen.COUNCILS_FILE))
    assert (mappings, problems) == (councils.rows, [])


def test_generated_ocds_is_read_by_the_ocds_parser_when_it_exists(tmp_path: Path) -> None:
    ocds = pytest.importorskip(
        "assets.raw.ocds", reason="the OCDS raw source is not in this checkout yet"
    )
    raw = tmp_path / "raw"
    manifest = gen.generate(TINY, 5, raw, ["ocds"])
    con = duckdb.connect()
    ingest_folder(
        con,
        source_system=ocds.SOURCE_SYSTEM,
        raw_dir=raw,
        folder=ocds.FOLDER,
        suffixes=ocds.SUFFIXES,
        raw_table=ocds.RAW_RELEASES,
        parser=ocds.parse_file,
        parser_version=ocds.PARSER_VERSION,
        log=_quiet,
    )
    counts = dict(
        con.execute(
            f"SELECT source_file, rows_loaded FROM {FILE_MANIFEST.qualified} "
            "WHERE status <> 'failed'"
        ).fetchall()
    )
    assert counts == {f.path: f.rows for f in manifest.files}
    per_ocid = con.execute(
        f"SELECT max(n) FROM (SELECT count(*) AS n FROM {ocds.RAW_RELEASES.qualified} "
        "GROUP BY ocid)"
    ).fetchall()
    assert per_ocid[0][0] >= 3  # several releases per contracting process


def test_generated_bods_is_read_by_the_bods_parser_when_it_exists(tmp_path: Path) -> None:
    bods = pytest.importorskip(
        "assets.raw.bods", reason="the BODS raw source is not in this checkout yet"
    )
    raw = tmp_path / "raw"
    manifest = gen.generate(0.001, 6, raw, ["bods"])
    con = duckdb.connect()
    ingest_folder(
        con,
        source_system=bods.SOURCE_SYSTEM,
        raw_dir=raw,
        folder=bods.FOLDER,
        suffixes=bods.SUFFIXES,
        raw_table=bods.RAW_BODS,
        parser=bods.parse_file,
        parser_version=bods.PARSER_VERSION,
        log=_quiet,
    )
    got = {
        r[0]: (r[1], r[2])
        for r in con.execute(
            f"SELECT source_file, rows_in, rows_quarantined FROM {FILE_MANIFEST.qualified}"
        ).fetchall()
    }
    assert got == {f.path: (f.rows, f.bad_structure) for f in manifest.files}
    assert sum(f.bad_structure for f in manifest.files) >= 1
    versions = dict(
        con.execute(
            f"SELECT bods_version, count(*) FROM {bods.RAW_BODS.qualified} GROUP BY 1"
        ).fetchall()
    )
    assert set(versions) == {"0.3", "0.4"}


def _recipients(path: Path) -> list[tuple[str, str]]:
    """(name, identifier) of each recipient of a 360Giving CSV."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return [
            (r["Recipient Org:Name"], r["Recipient Org:Identifier"]) for r in csv.DictReader(fh)
        ]


@pytest.fixture(scope="module")
def raw_360giving(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny generated 360Giving folder with the one-file runs' new files."""
    raw = tmp_path_factory.mktemp("g360") / "raw"
    gen.generate(TINY, 3, raw, ["360giving"])
    return raw


def test_the_new_organisations_file_brings_organisations_no_other_file_names(
    raw_360giving: Path,
) -> None:
    raw = raw_360giving
    known = raw / gen.EXTRA_DIR / gen.EXTRA_FILE
    new = raw / gen.EXTRA_NEW_ORGS_DIR / gen.EXTRA_NEW_ORGS_FILE

    everything_else = {
        name
        for p in [*(raw / "360giving").iterdir(), known]
        if p.suffix == ".csv"
        for name, _ in _recipients(p)
    }
    rows = _recipients(new)
    fresh = [(n, i) for n, i in rows if "Newfield Community Trust" in n]
    assert len(rows) == gen.EXTRA_ROWS
    assert len(fresh) == gen.EXTRA_ROWS // gen.NEW_ORG_EVERY
    assert all(i == "" and n not in everything_else for n, i in fresh)
    assert len({n for n, _ in fresh}) == len(fresh)  # fifty organisations, not one
    assert not any("Newfield" in n for n in everything_else)


def test_the_near_names_file_spells_known_organisations_slightly_differently(
    raw_360giving: Path,
) -> None:
    near = raw_360giving / gen.EXTRA_NEAR_NAMES_DIR / gen.EXTRA_NEAR_NAMES_FILE

    def norm(name: str) -> str:  # spellings differ in case and spaces across files
        return " ".join(name.split()).casefold()

    # the generator's organisations, in the spellings publishers give them (name_variant)
    known = {
        norm(v)
        for o in gen.World(TINY, 3).orgs
        for v in (o.name, f"The {o.name}", o.name.replace(" Ltd", " Limited"))
    }
    rows = _recipients(near)
    typos = rows[:: gen.NEAR_NAME_EVERY]
    assert len(rows) == gen.EXTRA_ROWS and len(typos) == gen.EXTRA_ROWS // gen.NEAR_NAME_EVERY
    assert all(i == "" for _, i in typos)
    # each is one swap of neighbouring letters away from a known organisation's name
    for name in (norm(n) for n, _ in typos):
        assert name not in known
        assert any(
            len(k) == len(name)
            and sorted(k) == sorted(name)
            and sum(a != b for a, b in zip(k, name, strict=True)) == 2
            for k in known
        ), name


def test_with_typo_swaps_two_neighbouring_letters_of_the_longest_word() -> None:
    rng = random.Random(1)
    for name in ("Harbour Arts Trust", "Tidewater Community Gardens Ltd", "Beacon Aalborg"):
        typo = gen.with_typo(name, rng)
        assert typo != name and sorted(typo) == sorted(name) and len(typo) == len(name)
        changed = [w for w, v in zip(name.split(), typo.split(), strict=True) if w != v]
        assert changed == [max(name.split(), key=len)]


def test_the_new_ocds_file_holds_new_contracting_processes(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    manifest = gen.generate(TINY, 3, raw, ["ocds"])
    (entry,) = manifest.extra_ocds
    assert entry.path == f"{gen.EXTRA_OCDS_DIR}/{gen.EXTRA_OCDS_FILE}"
    con = duckdb.connect()

    def ocids(pattern: str) -> set[str]:
        return {
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT ocid FROM read_json('{pattern}', format = 'newline_delimited')"
            ).fetchall()
        }

    new = ocids(str(raw / entry.path))
    assert entry.rows == gen.EXTRA_OCDS_RELEASES
    assert len(new) > gen.EXTRA_OCDS_RELEASES // 4  # 1-4 releases per process
    assert new.isdisjoint(ocids(str(raw / "ocds" / "*.jsonl")))


def test_unknown_and_planned_sources_fail_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="unknown sources"):
        gen.generate(TINY, 1, tmp_path, ["nope"])
    planned = gen.SourceInfo("planned", "raw/raw_planned", implemented=False)
    monkeypatch.setattr(gen, "SOURCES", (*gen.SOURCES, planned))
    monkeypatch.setattr(gen, "SOURCE_NAMES", (*gen.SOURCE_NAMES, "planned"))
    with pytest.raises(NotImplementedError, match="planned"):
        gen.generate(TINY, 1, tmp_path, ["planned"])


def test_wired_sources_follow_the_definitions() -> None:
    keys = {"raw/raw_360giving_grants", "raw/raw_kohesio", "raw/raw_bods_statements", "x/y"}
    assert gen.wired_sources(keys) == ["360giving", "eu_kohesio", "bods"]


def test_dataset_cache_is_reused(tmp_path: Path) -> None:
    first, seconds = gen.ensure_dataset(TINY, 2, ["private"], tmp_path, log=_quiet)
    again, cached = gen.ensure_dataset(TINY, 2, ["private"], tmp_path, log=_quiet)
    assert first == again and seconds is not None and cached is None
    other, _ = gen.ensure_dataset(TINY, 2, ["private", "eu_fts"], tmp_path, log=_quiet)
    assert other != first


# --------------------------------------------------------------------------------- runner


def test_floor_reads_every_generated_file_into_duckdb(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    manifest = gen.generate(TINY, 4, raw, [*FUNDING_AND_REGISTER, "ocds", "bods"])
    for extra, _ in gen.EXTRA_RUNS.values():  # not linked
        (raw / extra).rename(tmp_path / extra)
    floor = runner.measure_floor(raw, tmp_path / "floor.duckdb", tmp_path / "tmp")
    assert floor["skipped_files"] == []
    files = {f.source: 0 for f in manifest.files}
    for f in manifest.files:
        files[f.source] += 1
    assert {s: a["files"] for s, a in floor["per_source"].items()} == files
    # JSON packages went through ijson -> JSON Lines -> read_json: one row per release
    assert floor["per_source"]["ocds"]["rows"] == sum(
        f.rows for f in manifest.files if f.source == "ocds"
    )
    assert floor["per_source"]["360giving"]["rows"] >= sum(
        f.rows - f.bad_structure for f in manifest.files if f.source == "360giving"
    )
    assert floor["seconds"] >= 0


def test_a_child_run_records_its_log_by_name_only(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    gen.generate(TINY, 4, raw, ["private"])
    env = {**os.environ, "PYTHONPATH": str(Path(runner.__file__).resolve().parents[1])}
    data = runner.run_child(
        ["_floor", "--raw", str(raw), "--db", str(tmp_path / "floor.duckdb")],
        env,
        tmp_path / "floor.log",
        tmp_path / "floor.json",
    )
    # result files are committed: they name the log inside the work folder, no machine path
    assert data["log"] == "floor.log" and (tmp_path / "floor.log").is_file()
    assert data["exit_code"] == 0 and data["per_source"]["private"]["rows"] > 0


def _tiny_job_events(tmp_path: Path) -> list[Any]:
    @dg.asset(name="a")
    def a() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"dagster/row_count": 3})

    @dg.asset(name="b", deps=[a])
    def b() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"dagster/row_count": 5})

    @dg.asset_check(asset=b)
    def b_has_rows() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN)

    job = dg.define_asset_job("j", executor_def=dg.in_process_executor)
    defs = dg.Definitions(assets=[a, b], asset_checks=[b_has_rows], jobs=[job])
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = defs.resolve_job_def("j").execute_in_process(instance=instance)
        assert result.success
        return list(instance.all_logs(result.run_id))


def test_steps_come_from_the_event_log(tmp_path: Path) -> None:
    steps = {s["step"]: s for s in runner.steps_from_events(_tiny_job_events(tmp_path))}
    assert steps["a"]["assets"] == {"a": 3} and steps["b"]["assets"] == {"b": 5}
    check = next(s for s in steps.values() if s["kind"] == "check")
    assert check["checks"] == {"b:b_has_rows": "failed (WARN)"}
    for s in steps.values():
        assert s["status"] == "success" and s["attempts"] == 1
        assert s["seconds"] is not None and s["seconds"] >= 0


def _fake_run(steps: list[dict[str, Any]], wall: float, rss: float) -> dict[str, Any]:
    return {
        "success": True,
        "run_id": "r",
        "startup_seconds": 1.0,
        "execute_seconds": wall - 1.5,
        "steps": steps,
        "raw_files": {},
        "wall_seconds": wall,
        "peak_rss_mib": rss,
        "exit_code": 0,
        "log": "x.log",
        "load_average": [0.1, 0.2],
        "cpu_seconds": wall / 2,
    }


def test_report_has_the_required_fields(tmp_path: Path) -> None:
    real_steps = runner.steps_from_events(_tiny_job_events(tmp_path))
    raw = tmp_path / "raw"
    manifest = gen.generate(TINY, 9, raw, ["private", "360giving"])
    floor = runner.measure_floor(raw, tmp_path / "f.duckdb", tmp_path / "t")
    floor.update(wall_seconds=2.0, peak_rss_mib=100.0, cpu_seconds=1.0)
    # s6 keeps both cores busy, s5 one: s5 leaves the most core-seconds idle
    extra = [
        {"step": f"s{i}", "kind": "asset", "status": "success", "seconds": float(i),
         "attempts": 1, "assets": {f"x/s{i}": i * 10}, "checks": {},
         "cpu_seconds": {6: 12.0, 5: 5.0}.get(i, i * 1.5)}
        for i in range(1, 7)
    ]  # fmt: skip
    runs = {
        "full": _fake_run(real_steps + extra, 40.0, 900.0),
        "no_change": _fake_run(real_steps, 8.0, 500.0),
        "one_file": _fake_run(real_steps, 12.0, 2500.0),
        "one_file_job": _fake_run(real_steps, 16.0, 2400.0),
        "one_file_new_orgs": _fake_run(real_steps, 7.0, 2000.0),
        "one_file_ocds": _fake_run(real_steps, 9.0, 2000.0),
        "one_file_near_names": _fake_run(real_steps, 10.0, 2000.0),
    }
    report = runner.summarize(
        scale=TINY,
        seed=9,
        manifest=gen.load_manifest(raw),
        generate_seconds=0.1,
        floor=floor,
        runs=runs,
        machine={**runner.machine_info(), "cpus": 2},
        date="2026-01-01",
    )
    assert report["schema"] == runner.SCHEMA
    assert report["data"]["total_rows"] == sum(f.rows for f in manifest.files)
    assert set(report["runs"]) == set(runner.RUNS)
    for run in report["runs"].values():
        for key in ("wall_seconds", "peak_rss_mib", "steps", "orchestration_seconds"):
            assert key in run
    assert report["ratios"]["build_over_floor"] == round(40.0 / floor["seconds"], 3)
    assert report["ratios"]["no_change_over_full"] == 0.2
    assert report["ratios"]["one_file_over_full"] == 0.3
    assert report["ratios"]["one_file_job_over_full"] == 0.4
    assert report["ratios"]["one_file_new_orgs_over_full"] == 0.175
    assert report["ratios"]["one_file_ocds_over_full"] == 0.225
    assert report["ratios"]["cpu_build_over_floor"] == 20.0  # 40 s / 2 CPU s over 1 CPU s
    assert report["peak_rss_mib"] == 2500.0
    assert report["targets"]["peak_rss_within_2gib"] is False
    assert report["targets"]["no_change_within_10pct"] is False
    assert report["targets"]["one_file_within_20pct"] is False
    assert report["targets"]["one_file_job_within_20pct"] is False
    assert report["targets"]["one_file_new_orgs_within_20pct"] is True
    assert report["targets"]["one_file_ocds_within_20pct"] is False
    assert report["ratios"]["one_file_near_names_over_full"] == 0.25
    assert report["data"]["one_file_ocds_added"] is None  # no OCDS generated here
    assert report["data"]["one_file_new_orgs_added"] == (
        f"{gen.EXTRA_NEW_ORGS_DIR}/{gen.EXTRA_NEW_ORGS_FILE}"
    )
    assert [s["step"] for s in report["slowest_five"]] == ["s6", "s5", "s4", "s3", "s2"]
    assert report["slowest_five"][0]["rows"] == 60
    idle = report["idle_core_five"]
    assert [s["step"] for s in idle[:3]] == ["s5", "s4", "s3"]
    assert idle[0] == {"step": "s5", "seconds": 5.0, "cpu_seconds": 5.0, "cores_used": 1.0,
                       "idle_core_seconds": 5.0}  # fmt: skip
    assert "s6" not in [s["step"] for s in idle[:2]]
    text = runner.format_table(report)
    assert "leave most of the 2 cores idle" in text and "1.00 cores used" in text
    assert "<== slowest 5" in text and "build / floor" in text and "peak RSS" in text
    assert "(whole job)" in text and "(new orgs)" in text and "(OCDS file)" in text
    assert "(near names)" in text
    json.dumps(report)  # the results file is plain JSON


def _full_build_report(
    tmp_path: Path, full: Callable[[list[dict[str, Any]]], dict[str, Any]]
) -> dict[str, Any]:
    """The report of a full build only (`full` makes its run from the tiny job's steps), with
    a 2 s floor."""
    raw = tmp_path / "raw"
    gen.generate(TINY, 9, raw, ["private"])
    floor = {"seconds": 2.0, "cpu_seconds": 1.0, "per_source": {}, "peak_rss_mib": 90.0}
    steps = runner.steps_from_events(_tiny_job_events(tmp_path))
    return runner.summarize(
        scale=TINY,
        seed=9,
        manifest=gen.load_manifest(raw),
        generate_seconds=None,
        floor=floor,
        runs={"full": full(steps)},
        machine={},
        date="2026-01-01",
    )


def test_report_of_a_full_build_only_leaves_the_incremental_ratios_empty(tmp_path: Path) -> None:
    report = _full_build_report(tmp_path, lambda steps: _fake_run(steps, 10.0, 300.0))
    assert report["ratios"]["build_over_floor"] == 5.0
    assert report["ratios"]["no_change_over_full"] is None
    assert report["targets"]["one_file_within_20pct"] is None
    assert "not measured" in runner.format_table(report)


def test_rss_sampler_counts_worker_processes() -> None:
    sampler = runner.RssSampler()
    alone = sampler._tree_rss()
    # a child holding ~200 MB: the tree's memory must include it
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; b = bytearray(200 * 2**20); time.sleep(30)"]
    )
    try:
        deadline = time.time() + 20
        while sampler._tree_rss() < alone + 150 * 2**20:
            assert time.time() < deadline, "the child's memory was never counted"
            time.sleep(0.1)
    finally:
        child.kill()
        child.wait()


def test_sampler_counts_the_cpu_of_worker_processes_also_after_they_exit() -> None:
    sampler = runner.RssSampler()
    sampler.start()
    started = time.time()
    # ~0.6 s of CPU in a child that has ended (and been reaped) before the sampler stops
    subprocess.run(
        [sys.executable, "-c", "import time\nt = time.process_time()\n"
         "while time.process_time() - t < 0.6: pass"],
        check=True,
    )  # fmt: skip
    time.sleep(0.2)
    sampler.stop()
    cpu = sampler.cpu_seconds((started, time.time()))
    assert cpu is not None and cpu >= 0.5
    assert sampler.cpu_seconds((started - 100, started - 99)) is None  # no samples there


def _burn(seconds: float) -> float:
    begun = time.process_time()
    while time.process_time() - begun < seconds:
        pass
    return time.process_time() - begun


def test_sampler_counts_the_workers_a_fork_server_reaps() -> None:
    """Workers forked by the fork server are its children: when they end, their CPU is in its
    figures, not in this process's, and os.wait4 of this process never sees it."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from assets.common.worker_processes import worker_context

    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no forkserver on this platform")
    sampler = runner.RssSampler()
    sampler.start()
    started = time.time()
    with ProcessPoolExecutor(2, mp_context=worker_context()) as pool:
        burnt = sum(pool.map(_burn, [0.4, 0.4]))
    time.sleep(0.3)  # the workers have ended and been reaped by the server
    sampler.stop()
    assert burnt >= 0.8
    cpu = sampler.cpu_seconds((started, time.time()))
    assert cpu is not None and cpu >= burnt - 0.1
    assert sampler.unreaped_cpu_seconds >= burnt - 0.1


def test_one_file_run_selects_what_the_sensor_launches(fundtrace_env: dict[str, Path]) -> None:
    from pipelines.definitions import build_definitions
    from pipelines.sensors import run_selection

    graph = build_definitions().resolve_asset_graph()
    selected, unread = run_selection(graph, {"private"})
    names = {k.to_user_string() for k in selected}
    assert unread == set()
    assert {"raw/raw_private_funding", "staging/stg_private_funding", "marts/money_flows"} <= names
    assert "marts/published_marts" in names
    assert "raw/raw_360giving_grants" not in names and "staging/stg_kohesio" not in names
    # a folder no asset reads is an error before anything runs, not an empty benchmark run
    with pytest.raises(ValueError, match="no_such_source"):
        runner.run_build(["no_such_source"])


def test_median_run_reports_the_middle_run_and_the_largest_peak() -> None:
    samples = [
        {"wall_seconds": w, "execute_seconds": w - 1, "cpu_seconds": w * 1.5,
         "peak_rss_mib": rss, "success": True, "steps": [{"step": f"s{w}"}]}
        for w, rss in ((12.0, 900.0), (10.0, 1200.0), (11.0, 800.0))
    ]  # fmt: skip
    chosen = runner.median_run(samples)
    assert chosen["wall_seconds"] == 11.0 and chosen["steps"] == [{"step": "s11.0"}]
    assert chosen["peak_rss_mib"] == 800.0 and chosen["peak_rss_max_mib"] == 1200.0
    assert [r["wall_seconds"] for r in chosen["repeats"]] == [12.0, 10.0, 11.0]
    assert chosen["success"] is True
    # two runs: the slower of the middle two, as the floor's median; a failed run shows
    two = runner.median_run([samples[1], {**samples[0], "success": False}])
    assert two["wall_seconds"] == 12.0 and two["success"] is False
    assert runner.median_run(samples[:1])["repeats"] == [
        {"wall_seconds": 12.0, "execute_seconds": 11.0, "cpu_seconds": 18.0, "peak_rss_mib": 900.0}
    ]
    with pytest.raises(ValueError, match="no run"):
        runner.median_run([])


def test_the_report_judges_the_peak_of_every_repeat(tmp_path: Path) -> None:
    report = _full_build_report(
        tmp_path,
        lambda steps: runner.median_run(
            [_fake_run(steps, w, rss) for w, rss in ((10.0, 300.0), (9.0, 2100.0), (11.0, 300.0))]
        ),
    )
    assert report["ratios"]["build_over_floor"] == 5.0  # the median run, 10 s
    assert report["peak_rss_mib"] == 2100.0  # the peak of the fastest run counts too
    assert report["targets"]["peak_rss_within_2gib"] is False
    text = runner.format_table(report)
    assert "wall seconds of each repeat" in text and "10.00, 9.00, 11.00" in text


def test_partitioned_runs_are_those_make_run_and_the_sensor_launch(
    fundtrace_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """FUNDTRACE_RAW_PARTITIONS=file: a build is one run per source folder and fundtrace_all; a
    new file is a run of its own partition and fundtrace_all (what the sensor requests)."""
    monkeypatch.setenv("FUNDTRACE_RAW_PARTITIONS", "file")
    full = runner.run_build()
    assert full["success"] and full["dagster_runs"] == 11
    assert any(s["step"] == "raw__raw_ocds_releases" for s in full["steps"])
    assert any(s["step"] == "marts__money_flows" for s in full["steps"])
    raw = fundtrace_env["raw"]
    shutil.copyfile(raw / "private" / "harbourton_private_funding.csv", raw / "private" / "b.csv")
    build = fundtrace_env["build"]
    saved = build.with_name("before_one_file.duckdb")
    shutil.copyfile(build, saved)
    # a repeat starts again from the build before the file; the instance keeps the file's key
    for _ in range(2):
        one = runner.run_build(["private"])
        assert one["success"] and one["dagster_runs"] == 2
        raw_steps = {s["step"] for s in one["steps"] if s["step"].startswith("raw__")}
        assert "raw__raw_private_funding" in raw_steps
        assert "raw__raw_ocds_releases" not in raw_steps  # no other folder's run
        parsed = {
            k: v["parsed_this_run"] for k, v in one["raw_files"].items() if v["parsed_this_run"]
        }
        assert parsed == {"private": 1}
        shutil.copyfile(saved, build)


# ------------------------------------------------------------------ rounds (interleaving)


def test_rounds_put_the_floor_and_every_run_side_by_side() -> None:
    runs = ["full", "no_change", "one_file", "one_file_ocds"]
    three = runner.plan_rounds(runs, 3)
    # not three full builds, then three of each; a warm-up read of the floor first
    assert three == [["warm_up", "floor", *runs]] + [["floor", *runs]] * 2
    assert runner.plan_rounds(runs, 1) == [["warm_up"] + ["floor"] * 3 + runs]  # still thrice
    two = [["warm_up", "floor", "floor", *runs], ["floor", "floor", *runs]]
    assert runner.plan_rounds(runs, 2) == two


def _round(floor: float, **walls: float) -> dict[str, Any]:
    return {
        "floor": {"seconds": floor, "cpu_seconds": floor},
        "runs": {name: _fake_run([], wall, 500.0) for name, wall in walls.items()},
    }


def test_ratios_pair_the_runs_of_each_round(tmp_path: Path) -> None:
    """A machine slowing down between rounds moves the full build and its one-file run
    together: each round's own ratio, not the ratio of the median runs, is judged."""
    rounds = [
        _round(10.0, full=100.0, one_file=30.0),  # 0.30
        _round(14.0, full=140.0, one_file=21.0),  # 0.15
        _round(11.0, full=120.0, one_file=18.0),  # 0.15
    ]
    runs = {
        name: runner.median_run([r["runs"][name] for r in rounds]) for name in ("full", "one_file")
    }
    raw = tmp_path / "raw"
    gen.generate(TINY, 9, raw, ["private"])
    report = runner.summarize(
        scale=TINY,
        seed=9,
        manifest=gen.load_manifest(raw),
        generate_seconds=None,
        floor=runner.median_floor([r["floor"] for r in rounds]),
        runs=runs,
        machine={},
        date="2026-01-01",
        rounds=rounds,
    )
    assert report["ratios_from"] == "rounds"
    assert [r["one_file_over_full"] for r in report["ratios_by_round"]] == [0.3, 0.15, 0.15]
    assert report["ratios"]["one_file_over_full"] == 0.15
    assert report["targets"]["one_file_within_20pct"] is True
    # the median runs (120 s and 21 s) would have said 0.175
    assert report["ratios_of_median_runs"]["one_file_over_full"] == 0.175
    assert report["ratios"]["build_over_floor"] == 10.0  # 100/10, 140/14, 120/11=10.91
    assert (
        report["ratios"]["build_over_floor"] != report["ratios_of_median_runs"]["build_over_floor"]
    )
    assert report["ratios"]["no_change_over_full"] is None  # not asked for
    text = runner.format_table({**report, "floor": {**report["floor"], "per_source": {},
                                                    "peak_rss_mib": 1.0}})  # fmt: skip
    assert "median over 3 rounds" in text and "rounds: 0.300, 0.150, 0.150 (2 of 3 within)" in text


def test_median_floor_keeps_every_runs_seconds() -> None:
    floors = [{"seconds": s, "cpu_seconds": s} for s in (30.0, 25.0, 60.0)]
    chosen = runner.median_floor(floors)
    assert chosen["seconds"] == 30.0 and chosen["all_seconds"] == [30.0, 25.0, 60.0]
    with pytest.raises(ValueError, match="no floor run"):
        runner.median_floor([])


def test_each_round_builds_from_nothing_and_restores_the_state_before_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The benchmark's own bookkeeping, with the child runs faked: what each run finds in the
    raw folder (files beyond the generated base) and in the build folder when it starts."""
    base: set[str] = set()
    seen: list[tuple[str, list[str], str]] = []

    def fake_child(
        args: list[str], env: dict[str, str], log_path: Path, out_path: Path, cwd: Path = Path()
    ) -> dict[str, Any]:
        del out_path, cwd
        raw = Path(env["FUNDTRACE_RAW_DIR"])
        files = {p.relative_to(raw).as_posix() for p in raw.rglob("*") if p.is_file()}
        if args[0] == "_floor":
            base.update(files if not base else ())
            seen.append(("floor", sorted(files - base), ""))
            # the warm-up read is slow and must not count
            seconds = 99.0 if log_path.name == "floor.log" and len(seen) == 1 else 1.0
            return {"seconds": seconds, "cpu_seconds": 1.0, "per_source": {}, "peak_rss_mib": 1.0}
        state = Path(env["FUNDTRACE_BUILD_DB"]).parent / "state.txt"
        before = state.read_text() if state.is_file() else ""
        name = log_path.stem.rsplit("-", 1)[0]
        seen.append((name, sorted(files - base), before))
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(f"{before}{name};")
        Path(env["FUNDTRACE_MARTS_DB"]).parent.mkdir(parents=True, exist_ok=True)
        return _fake_run([], 10.0 if name == "full" else 1.0, 100.0)

    monkeypatch.setattr(runner, "run_child", fake_child)
    report = runner.bench(
        TINY,
        9,
        work_root=tmp_path / "work",
        results_dir=None,
        cache_dir=tmp_path / "cache",
        sources=["private", "360giving"],
        log=_quiet,
        runs=["full", "no_change", "one_file", "one_file_job", "one_file_new_orgs",
              "one_file_ocds"],
        repeat=2,
    )  # fmt: skip
    assert "one_file_ocds" not in report["runs"]  # no OCDS generated: skipped, not failed
    assert report["ratios_from"] == "rounds" and len(report["ratios_by_round"]) == 2
    assert report["ratios"]["one_file_over_full"] == 0.1
    assert report["floor"]["warm_up_seconds"] == 99.0
    assert report["floor"]["all_seconds"] == [1.0] * 4  # the warm-up read left out
    assert report["ratios"]["build_over_floor"] == 10.0
    (one,) = {tuple(extras) for name, extras, _ in seen if name == "one_file"}
    (new_orgs,) = {tuple(extras) for name, extras, _ in seen if name == "one_file_new_orgs"}
    assert len(one) == 1 and len(new_orgs) == 1 and one != new_orgs
    after_no_change = "full;no_change;"
    one_round = [
        ("floor", [], ""),
        ("floor", [], ""),
        ("full", [], ""),  # from nothing, without the last round's files
        ("no_change", [], "full;"),
        ("one_file", list(one), after_no_change),
        ("one_file_job", list(one), after_no_change),  # restored, with the same file
        ("one_file_new_orgs", list(new_orgs), after_no_change),  # its own file only
    ]
    assert seen == [("floor", [], ""), *one_round, *one_round]  # after the warm-up read
