"""OCDS staging by ocid (assets/staging/ocds_scope.py): after files are added, changed and
removed, a build that re-derives only the touched ocids leaves every OCDS staging table and
the OCDS quarantine rows exactly as a build from scratch of the same raw files does; so does
int_procurement_awards, which compares only the processes those writes logged (feeds)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

from assets.common.changes import FeedRefresh
from assets.common.key_digests import DIGESTS
from assets.common.tables import create_table
from assets.intermediate.int_procurement_awards import (
    INT_PROCUREMENT_AWARDS,
    build_int_procurement_awards,
)
from assets.raw.ingest import ingest_folder
from assets.raw.ocds import RAW_RELEASES, SUFFIXES, parse_file
from assets.raw.reference import ECB_RATES
from assets.staging import ocds_scope, stg_ocds
from assets.staging.quarantine import STG_QUARANTINE
from assets.staging.stg_ocds import (
    STG_AWARD_SUPPLIERS,
    STG_AWARDS,
    STG_BIDS,
    STG_CONTRACTS,
    STG_HISTORY,
    STG_PARTIES,
    STG_RELEASES,
    STG_TENDERS,
)
from assets.staging.stg_ted_awards import STG_TED_AWARDS

SPECS = (STG_HISTORY, STG_RELEASES, STG_PARTIES, STG_TENDERS, STG_AWARDS, STG_AWARD_SUPPLIERS,
         STG_CONTRACTS, STG_BIDS)  # fmt: skip
BUILDERS = (
    stg_ocds.build_stg_ocds_release_history,
    stg_ocds.build_stg_ocds_releases,
    stg_ocds.build_stg_ocds_parties,
    stg_ocds.build_stg_ocds_tenders,
    stg_ocds.build_stg_ocds_awards,
    stg_ocds.build_stg_ocds_award_suppliers,
    stg_ocds.build_stg_ocds_contracts,
    stg_ocds.build_stg_ocds_bids,
)


def _release(n: int, k: int, **extra: Any) -> dict[str, Any]:
    """Release k of process n: a tender, then awards (value and supplier change with k)."""
    out: dict[str, Any] = {
        "ocid": f"ocds-inc-{n:04d}",
        "id": f"r{n}-{k}",
        "date": f"2024-{k + 1:02d}-01T00:00:00Z",
        "tag": ["tender"] if k == 0 else ["award"],
        "buyer": {"id": "B", "name": "Harbourton Council"},
        "parties": [
            {"id": "B", "name": "Harbourton Council", "roles": ["buyer"],
             "identifier": {"scheme": "GB-LAE", "id": "HBT"}},
            {"id": f"S{n}", "name": f"Supplier {n} Ltd", "roles": ["supplier"],
             "identifier": {"scheme": "GB-COH", "id": f"{1000 + n}"}},
        ],
        "tender": {"id": f"T{n}", "title": f"Tender {n}", "numberOfTenderers": 2 + k},
    }  # fmt: skip
    if k:
        out["awards"] = [{
            "id": f"A{n}", "date": "2024-06-14", "status": "active",
            "value": {"amount": 100 * n + k, "currency": "GBP"},
            "suppliers": [{"id": f"S{n}", "name": f"Supplier {n} Ltd"}],
        }]  # fmt: skip
        out["contracts"] = [{"id": f"C{n}", "awardID": f"A{n}", "dateSigned": "2024-07-01",
                             "value": {"amount": 100 * n + k, "currency": "GBP"}}]  # fmt: skip
    out.update(extra)
    return out


def _write(raw: Path, name: str, releases: list[Any]) -> None:
    path = raw / "ocds" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"uri": "https://example.org", "version": "1.1",
                                "releases": releases}))  # fmt: skip


def _first_state(raw: Path) -> None:
    for f in range(3):
        _write(
            raw, f"p{f}.json", [_release(n, k) for n in range(f, 30, 3) for k in range(n % 3 + 1)]
        )
    _write(raw, "q.json", [_release(n, 3) for n in range(0, 30, 5)] + [{"id": "no-ocid"}])
    _write(raw, "gone.json", [_release(40 + n, 0) for n in range(5)] + [_release(1, 4)])


def _changes(raw: Path) -> None:
    """A new file (new ocids and later releases of known ones, a quarantined value, an ocid
    that cannot merge), a changed file and a removed one."""
    _write(raw, "new.json", [
        *(_release(60 + n, k) for n in range(4) for k in range(2)),
        _release(2, 5), _release(7, 5, tag=["awardUpdate"]),
        _release(61, 6, awards=[{"id": "A61", "value": {"amount": 5, "currency": ""}}]),
        _release(70, 0, tender="none"), _release(70, 1, tender={"id": "T"}),
        {"id": "still-no-ocid"},
    ])  # fmt: skip
    _write(raw, "p1.json", [_release(n, k) for n in range(1, 30, 3) for k in range(n % 3 + 2)])
    (raw / "ocds" / "gone.json").unlink()


def _ingest(con: duckdb.DuckDBPyConnection, raw: Path) -> None:
    ingest_folder(
        con, source_system="ocds", raw_dir=raw, folder="ocds", suffixes=SUFFIXES,
        raw_table=RAW_RELEASES, parser=parse_file, parser_version="test", log=lambda _m: None,
    )  # fmt: skip


def _build(con: duckdb.DuckDBPyConnection, log: list[str]) -> None:
    for build in BUILDERS:
        build(con, log=log.append)  # type: ignore[operator]


def _contracts(con: duckdb.DuckDBPyConnection) -> FeedRefresh:
    create_table(con, STG_TED_AWARDS, replace=False)  # the other source, empty here
    built = build_int_procurement_awards(con)
    assert isinstance(built, FeedRefresh)
    return built


def _snapshot(con: duckdb.DuckDBPyConnection) -> list[list[tuple[Any, ...]]]:
    """Every OCDS table and quarantine row as a sorted list, without load times."""
    out = [
        con.execute(f"SELECT * EXCLUDE (loaded_at) FROM {s.qualified} ORDER BY ALL").fetchall()
        for s in SPECS
    ]
    if con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
        [INT_PROCUREMENT_AWARDS.schema, INT_PROCUREMENT_AWARDS.name],
    ).fetchall()[0][0]:
        out.append(
            con.execute(f"SELECT * FROM {INT_PROCUREMENT_AWARDS.qualified} ORDER BY ALL").fetchall()
        )
    out.append(
        con.execute(
            f"SELECT * FROM {STG_QUARANTINE.qualified} WHERE source_system = 'ocds' ORDER BY ALL"
        ).fetchall()
    )
    return out


def test_a_build_by_ocid_equals_a_build_from_scratch(
    tmp_path: Path, template_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ocds_scope, "SCOPED_MAX_SHARE", 1.0)  # small data: stay by ocid
    raw = tmp_path / "raw"
    _first_state(raw)
    inc_db, fresh_db = tmp_path / "inc.duckdb", tmp_path / "fresh.duckdb"
    shutil.copy(template_db, inc_db)
    shutil.copy(template_db, fresh_db)
    with duckdb.connect(str(inc_db)) as inc:
        _ingest(inc, raw)
        first: list[str] = []
        _build(inc, first)
        assert all("all" in line and "no state" in line for line in first)
        _changes(raw)
        _ingest(inc, raw)
        assert _contracts(inc).compared is None  # no position yet: every process
        log: list[str] = []
        _build(inc, log)
        contracts = _contracts(inc)
        incremental = _snapshot(inc)
        digests = inc.execute(
            f"SELECT state, count(*), sum(digest) FROM {DIGESTS} GROUP BY 1 ORDER BY 1"
        ).fetchall()
    # by ocid: every table re-derived only the touched processes
    assert len(log) == len(SPECS)
    assert all("re-derived" in line for line in log), log
    touched = int(log[0].split(" of ")[0].rsplit(" ", 1)[1])
    assert 0 < touched < 40
    # the contracts of the processes the staging writes logged, not all of them
    assert contracts.compared is not None and 0 < contracts.compared <= touched
    assert contracts.refresh.keys_rewritten > 0
    with duckdb.connect(str(fresh_db)) as fresh:
        _ingest(fresh, raw)
        _build(fresh, [])
        _contracts(fresh)
        scratch = _snapshot(fresh)
    specs = [*SPECS, INT_PROCUREMENT_AWARDS, STG_QUARANTINE]
    for spec, a, b in zip(specs, incremental, scratch, strict=True):
        assert a == b, spec.qualified
    assert all(len(t) > 0 for t in incremental)  # every table and the quarantine have rows
    reasons = " ".join(str(r) for r in incremental[-1])
    assert "cannot merge" in reasons and "missing ocid" in reasons and "empty value" in reasons
    # every table is recorded as built from the same raw releases
    assert len({(n, total) for _, n, total in digests}) == 1


def _built_first_state(tmp_path: Path, template_db: Path) -> tuple[Path, duckdb.DuckDBPyConnection]:
    """The raw folder of _first_state, and a connection to a database that staged it."""
    raw = tmp_path / "raw"
    _first_state(raw)
    db = tmp_path / "built.duckdb"
    shutil.copy(template_db, db)
    con = duckdb.connect(str(db))
    _ingest(con, raw)
    _build(con, [])
    return raw, con


def test_changed_reference_rates_or_a_table_edited_behind_the_pipeline_rebuild_all(
    tmp_path: Path, template_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ocds_scope, "SCOPED_MAX_SHARE", 1.0)
    _, con = _built_first_state(tmp_path, template_db)
    with con:
        con.execute(
            f"DELETE FROM {ECB_RATES.qualified} WHERE rate_date = (SELECT max(rate_date) FROM {ECB_RATES.qualified})"
        )
        con.execute(f"DELETE FROM {STG_TENDERS.qualified} WHERE ocid = 'ocds-inc-0003'")
        log: list[str] = []
        _build(con, log)
    by_table = {line.split(":")[0]: line for line in log}
    assert "code or reference data changed" in by_table[STG_AWARDS.qualified]
    assert "code or reference data changed" in by_table[STG_CONTRACTS.qualified]
    assert "the table changed since it was built" in by_table[STG_TENDERS.qualified]
    assert "0 of" in by_table[STG_PARTIES.qualified]  # nothing else changed


def test_most_ocids_changed_rebuilds_in_full(tmp_path: Path, template_db: Path) -> None:
    raw, con = _built_first_state(tmp_path, template_db)
    with con:
        for f in (raw / "ocds").iterdir():
            f.unlink()
        _write(raw, "other.json", [_release(100 + n, 0) for n in range(10)])
        _ingest(con, raw)
        log: list[str] = []
        _build(con, log)
        assert "ocids changed" in log[0] and "all" in log[0]
        assert con.execute(f"SELECT count(*) FROM {STG_RELEASES.qualified}").fetchall() == [(10,)]


REALDATA = Path(
    os.environ.get("FUNDTRACE_REALDATA_DIR")
    or Path(__file__).resolve().parents[2] / "shared" / "realdata"
)


@pytest.mark.realdata
def test_real_samples_by_ocid_equal_a_build_from_scratch(
    tmp_path: Path, template_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The OCDS real examples (nine publishers, releases and records): a build by ocid after
    half of the files are added, and after one is removed, equals a build from scratch."""
    root = REALDATA / "ocds-sample-data-real-examples"
    if not root.is_dir():
        pytest.skip(f"real samples not present: {root}")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(SUFFIXES))
    assert len(files) >= 4
    monkeypatch.setattr(ocds_scope, "SCOPED_MAX_SHARE", 1.0)
    raw = tmp_path / "raw"

    def link(chosen: list[Path]) -> None:
        shutil.rmtree(raw, ignore_errors=True)
        for f in chosen:
            target = raw / "ocds" / f.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(f)

    inc_db = tmp_path / "inc.duckdb"
    shutil.copy(template_db, inc_db)
    with duckdb.connect(str(inc_db)) as inc:
        for step, chosen in enumerate((files[::2], files, files[1:])):
            link(chosen)
            _ingest(inc, raw)
            log: list[str] = []
            _build(inc, log)
            if step:
                assert all("re-derived" in line for line in log), log
            fresh_db = tmp_path / f"fresh{step}.duckdb"
            shutil.copy(template_db, fresh_db)
            with duckdb.connect(str(fresh_db)) as fresh:
                _ingest(fresh, raw)
                _build(fresh, [])
                scratch = _snapshot(fresh)
            incremental = _snapshot(inc)
            for spec, a, b in zip([*SPECS, STG_QUARANTINE], incremental, scratch, strict=True):
                assert a == b, (step, spec.qualified)
            assert len(incremental[1]) > 0
