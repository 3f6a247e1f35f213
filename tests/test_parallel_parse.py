"""Raw files parsed in worker processes: the same tables, manifest and quarantine as the
in-process ingest (BODS, 360Giving and council spend here; OCDS has its own test in
test_ocds.py)."""

import shutil
from pathlib import Path
from types import ModuleType

import duckdb
import pytest

from assets.raw import bods, parallel_parse
from assets.raw.ingest import FILE_MANIFEST, QUARANTINE
from tests.test_ocds import CountingPool, table_snapshot

DEMO = Path(__file__).resolve().parents[1] / "data" / "raw"


Snapshot = tuple[int, int, tuple[list[tuple], ...]]


def _parallel_equals_in_process(
    tmp_path: Path,
    template_db: Path,
    monkeypatch: pytest.MonkeyPatch,
    module: ModuleType,
    sent_to_workers: int,
) -> Snapshot:
    """The source's folder under tmp_path/raw ingested in-process and by two workers (a real
    process pool that counts its tasks; every file goes to a worker, however small). Asserts
    that `sent_to_workers` files went to the pool and that both ingests give the same result;
    returns it: (files failed, rows loaded, (raw table, manifest, quarantine))."""
    monkeypatch.setattr(parallel_parse, "ProcessPoolExecutor", CountingPool)
    monkeypatch.setattr(CountingPool, "submitted", 0)
    monkeypatch.setattr(parallel_parse, "PARALLEL_MIN_BYTES", 0)
    spec = module.PARSER
    tables = (spec.table.qualified, FILE_MANIFEST.qualified, QUARANTINE.qualified)
    snaps = []
    for workers in (1, 2):
        db = tmp_path / f"w{workers}.duckdb"
        shutil.copy(template_db, db)
        with duckdb.connect(str(db)) as con:
            report = parallel_parse.ingest_in_parallel(
                con,
                spec,
                workers,
                source_system=module.SOURCE_SYSTEM,
                raw_dir=tmp_path / "raw",
                folder=module.FOLDER,
                suffixes=module.SUFFIXES,
                parser_version=module.PARSER_VERSION,
                log=lambda _m: None,
            )
            snaps.append((report.files_failed, report.rows_loaded, table_snapshot(con, *tables)))
    in_process, in_workers = snaps
    assert CountingPool.submitted == sent_to_workers
    assert in_workers == in_process
    return in_process


def _bods_folder(raw: Path) -> int:
    """The demo files, a copy under another name, a truncated file and bad lines."""
    folder = raw / "bods"
    shutil.copytree(DEMO / "bods", folder)
    shutil.copy(folder / "harbourton-ownership-register-2024.json", folder / "copy.json")
    (folder / "truncated.json").write_text('[{"statementID": "t-1", "statement', encoding="utf-8")
    (folder / "lines.jsonl").write_text(
        '{"statementID": "l-1", "statementType": "entityStatement"}\nnot json\n{"x": NaN}\n',
        encoding="utf-8",
    )
    return 5  # every file goes to a worker


def test_parallel_bods_ingest_equals_the_in_process_ingest(
    tmp_path: Path, template_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    to_workers = _bods_folder(tmp_path / "raw")
    in_process = _parallel_equals_in_process(tmp_path, template_db, monkeypatch, bods, to_workers)
    failed, loaded, (raw_rows, manifest, _quarantine) = in_process
    assert failed == 1 and loaded == len(raw_rows) > 0  # the truncated file only
    messages = " | ".join(str(r) for r in manifest)
    assert "truncated.json" in messages and "invalid JSON" in messages
    # the note the parser counts itself (it used to ask DuckDB)
    assert "personal fields removed from" in messages


def _360_folder(raw: Path) -> int:
    """The demo's JSON, CSV and XLSX files, a Windows-1252 CSV with a shifted row (Python
    reader), a truncated package and a text file DuckDB cannot sniff."""
    from assets.raw import threesixty_giving

    folder = raw / threesixty_giving.FOLDER
    shutil.copytree(DEMO / threesixty_giving.FOLDER, folder)
    csv_text = (folder / "harbourton-community-foundation-grants.csv").read_text(encoding="utf-8")
    header, *lines = csv_text.splitlines()
    shifted = "\n".join([header, *lines[:3], lines[3] + ",extra,fields", *lines[4:]]) + "\n"
    (folder / "cp1252.csv").write_bytes(shifted.replace("Trust", "Trüst").encode("cp1252"))
    (folder / "truncated.json").write_text('{"grants": [{"id": "t-1", "title', encoding="utf-8")
    (folder / "blank.csv").write_text("", encoding="utf-8")  # empty: rejected, not parsed
    return 6  # every file is sent ahead, the blank one too


def test_parallel_360giving_ingest_equals_the_in_process_ingest(
    tmp_path: Path, template_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assets.raw import threesixty_giving

    to_workers = _360_folder(tmp_path / "raw")
    in_process = _parallel_equals_in_process(
        tmp_path, template_db, monkeypatch, threesixty_giving, to_workers
    )
    failed, loaded, (raw_rows, manifest, quarantine) = in_process
    assert failed == 2 and loaded == len(raw_rows) > 0  # the truncated and the blank file
    messages = " | ".join(str(r) for r in manifest)
    assert "transcoded from" in messages and "xlsx" in messages
    assert any("shifted or unquoted column" in str(r) for r in quarantine)


def test_parallel_council_spend_ingest_equals_the_in_process_ingest(
    tmp_path: Path, template_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clean files (DuckDB in the worker), one with a shifted row (Python reader; its message
    names the file as the in-process ingest does), and councils.csv (validated, not loaded)."""
    from assets.raw import council_spend

    raw = tmp_path / "raw"
    folder = raw / council_spend.FOLDER
    shutil.copytree(DEMO / council_spend.FOLDER, folder)
    spend = sorted(p for p in folder.glob("*.csv") if p.name != council_spend.COUNCILS_FILE)
    # one demo file is Windows-1252: the shifted copy keeps its bytes
    header, *lines = spend[0].read_bytes().splitlines()
    (folder / "shifted.csv").write_bytes(b"\n".join([header, lines[0] + b",a,b", *lines[1:]]))
    in_process = _parallel_equals_in_process(
        tmp_path, template_db, monkeypatch, council_spend, len(list(folder.glob("*.csv")))
    )
    failed, loaded, (raw_rows, manifest, quarantine) = in_process
    assert failed == 0 and loaded == len(raw_rows) > 0
    assert any("council_spend/shifted.csv data row 1 (line 2)" in str(r) for r in quarantine)
    assert "payer mapping file" in " | ".join(str(r) for r in manifest)


def test_parallel_kohesio_ingest_equals_the_in_process_ingest(
    tmp_path: Path, template_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The layout, a per-file value, is a column of each row the worker writes."""
    from assets.raw import eu_kohesio

    folder = tmp_path / "raw" / eu_kohesio.FOLDER
    shutil.copytree(DEMO / eu_kohesio.FOLDER, folder)
    first = sorted(folder.iterdir())[0]
    header, *lines = first.read_bytes().splitlines()
    (folder / "shifted.tsv").write_bytes(b"\n".join([header, lines[0] + b"\tx\ty", *lines[1:]]))
    in_process = _parallel_equals_in_process(
        tmp_path, template_db, monkeypatch, eu_kohesio, len(list(folder.iterdir()))
    )
    failed, loaded, (raw_rows, _manifest, quarantine) = in_process
    assert failed == 0 and loaded == len(raw_rows) > 0
    assert quarantine, "the shifted row is quarantined"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_raw_asset_ingests_with_the_configured_workers(
    monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    """`PARSER.ingest`, what the raw assets hand to ingest_single_table, is ingest_in_parallel
    with $FUNDTRACE_WORKERS processes and the ingest's own arguments."""
    calls: list[tuple] = []
    monkeypatch.setenv("FUNDTRACE_WORKERS", workers)
    monkeypatch.setattr(
        parallel_parse,
        "ingest_in_parallel",
        lambda con, spec, n, **kw: calls.append((con, spec, n, kw)),
    )
    con = object()
    bods.PARSER.ingest(con, folder="bods", log=print)  # type: ignore[arg-type]
    assert calls == [(con, bods.PARSER, int(workers), {"folder": "bods", "log": print})]
