"""Bad input never loses good data: the whole corpus next to the demo data in one run."""

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.jobs import ALL_ASSETS_JOB_NAME
from tests.bad_inputs.corpus import Case, write_corpus

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Case], Path, Path, bool]:
    import os
    import shutil

    from tests.conftest import DEMO_RAW

    base = tmp_path_factory.mktemp("bad_inputs")
    raw = base / "raw"
    shutil.copytree(DEMO_RAW, raw)
    cases = write_corpus(raw)
    marts = base / "out" / "fundtrace.duckdb"
    env = {"FUNDTRACE_RAW_DIR": str(raw), "FUNDTRACE_MARTS_DB": str(marts)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        from pipelines.definitions import build_definitions

        job = build_definitions().resolve_job_def(ALL_ASSETS_JOB_NAME)
        with dg.instance_for_test() as instance:
            result = job.execute_in_process(instance=instance, raise_on_error=False)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    build = marts.parent / ".build" / marts.name
    return cases, build, marts, result.success


def test_run_completes_and_publishes(corpus_run: tuple[list[Case], Path, Path, bool]) -> None:
    _, _, marts, success = corpus_run
    assert success
    assert marts.exists()


def _case_ids() -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return [c.name for c in write_corpus(Path(d))]


@pytest.mark.parametrize("name", _case_ids())
def test_bad_input_case(name: str, corpus_run: tuple[list[Case], Path, Path, bool]) -> None:
    cases, build, _, _ = corpus_run
    case = next(c for c in cases if c.name == name)
    con = duckdb.connect(str(build), read_only=True)
    status = con.execute(
        "SELECT status, rows_in, rows_loaded, rows_quarantined FROM raw.raw_file_manifest "
        "WHERE source_file = ?",
        [case.file],
    ).fetchone()
    assert status is not None, f"{case.file} not in the manifest"
    assert status[1] == status[2] + status[3]
    raw_q = con.execute(
        "SELECT source_locator, reason FROM raw.raw_quarantine WHERE source_file = ?", [case.file]
    ).fetchall()
    stg_q = con.execute(
        "SELECT record_id, reason, source_locator FROM staging.stg_quarantine WHERE source_file = ?",
        [case.file],
    ).fetchall()
    staged = {
        r[0]
        for r in con.execute(
            "SELECT grant_id FROM staging.stg_360giving_grants WHERE source_file = ?", [case.file]
        ).fetchall()
    }
    cycles = con.execute(
        "SELECT entity_id, owner_id FROM marts.ultimate_controllers WHERE cycle "
        "AND entity_id IN ('GB-COH-09998801', 'GB-COH-09998802')"
    ).fetchall()
    con.close()
    if case.special == "bods_cycle":
        assert status[0] == "loaded"
        assert sorted(cycles) == [
            ("GB-COH-09998801", "GB-COH-09998802"),
            ("GB-COH-09998802", "GB-COH-09998801"),
        ]
        return
    if case.outcome == "file_failed":
        assert status[0] == "failed"
        assert len(raw_q) == 1 and case.reason in raw_q[0][1]
        assert not staged
    elif case.outcome == "loaded":
        assert status[0] == "loaded"
        assert set(case.record_ids) <= staged
    elif case.stage == "raw":
        assert status[0] == "partial"
        assert [q[0].split(" (")[0] for q in raw_q] == case.record_ids
        assert all(case.reason in q[1] for q in raw_q)
        assert staged, "the good rows of the file were lost"
    else:
        quarantined = {q[0] for q in stg_q}
        assert quarantined == set(case.record_ids)
        assert all(case.reason in q[1] and q[2] for q in stg_q)
        if case.first_copy_kept:
            assert quarantined <= staged
        else:
            assert not quarantined & staged


def test_demo_files_load_fully_next_to_the_corpus(
    corpus_run: tuple[list[Case], Path, Path, bool],
) -> None:
    _, build, marts, _ = corpus_run
    con = duckdb.connect(str(build), read_only=True)
    demo = con.execute(
        "SELECT count(*) FROM staging.stg_360giving_grants WHERE source_file NOT LIKE '%/bad-%'"
    ).fetchone()
    con.close()
    assert demo is not None and demo[0] == 48  # as without the corpus (test_end_to_end)
    con = duckdb.connect(str(marts), read_only=True)
    bad = con.execute(
        "SELECT source_file, check_name FROM marts.data_quality "
        "WHERE rows_in IS NOT NULL AND rows_in <> rows_loaded + rows_quarantined"
    ).fetchall()
    failed = {
        r[0]
        for r in con.execute(
            "SELECT source_file FROM marts.data_quality WHERE status = 'failed'"
        ).fetchall()
    }
    con.close()
    assert bad == []
    assert "360giving/bad-truncated.json" in failed


def test_failure_table_in_readme_covers_every_case() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for name in _case_ids():
        assert f"| {name} |" in readme, f"README failure table lacks '{name}'"


def test_a_good_file_replaced_by_a_broken_one_leaves_no_stale_rows(tmp_path: Path) -> None:
    from assets.common.tables import ensure_schemas
    from assets.raw.ingest import ingest_folder
    from assets.raw.threesixty_giving import PARSER_VERSION, RAW_GRANTS, SUFFIXES, parse_file

    folder = tmp_path / "raw" / "360giving"
    folder.mkdir(parents=True)
    path = folder / "a.json"
    path.write_text('{"grants": [{"id": "360G-X-1", "amountAwarded": 1}]}')
    con = duckdb.connect(str(tmp_path / "b.duckdb"))
    ensure_schemas(con)

    def ingest() -> None:
        ingest_folder(
            con, source_system="360giving", raw_dir=tmp_path / "raw", folder="360giving",
            suffixes=SUFFIXES, raw_table=RAW_GRANTS, parser=parse_file,
            parser_version=PARSER_VERSION, log=lambda _m: None,
        )  # fmt: skip

    ingest()
    path.write_text('{"grants": [{"id": "360G-X-1", "amou')
    ingest()
    manifest = con.execute(
        "SELECT status FROM raw.raw_file_manifest WHERE source_file = '360giving/a.json'"
    ).fetchall()
    rows = con.execute("SELECT count(*) FROM raw.raw_360giving_grants").fetchone()
    con.close()
    assert manifest == [("failed",)]
    assert rows == (0,)
