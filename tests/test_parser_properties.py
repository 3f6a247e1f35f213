"""Property-based tests: random mutations of valid files never crash ingest and never change
the rows of the other files in the folder."""

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assets.common.tables import ensure_schemas
from assets.raw.ingest import ingest_folder
from assets.raw.threesixty_giving import PARSER_VERSION, RAW_GRANTS, SUFFIXES, parse_file

CSV = (
    "Identifier,Title,Currency,Amount Awarded,Award Date,Recipient Org:Identifier,"
    "Recipient Org:Name,Funding Org:Identifier,Funding Org:Name\n"
    "360G-P-1,One,GBP,100,2024-01-02,GB-COH-1,Rec One,GB-CHC-1,Funder\n"
    '360G-P-2,"Two, quoted",GBP,"1,200.50",02/03/2024,GB-COH-2,Rec Two,GB-CHC-1,Funder\n'
    "360G-P-3,Three,EUR,300,2024-04-05,GB-COH-3,Rec Three,GB-CHC-1,Funder\n"
)
JSON = json.dumps(
    {
        "grants": [
            {
                "id": f"360G-J-{i}",
                "title": f"Grant {i}",
                "currency": "GBP",
                "amountAwarded": 100 * i,
                "awardDate": "2024-01-02",
                "recipientOrganization": [{"id": f"GB-COH-{i}", "name": f"Rec {i}"}],
                "fundingOrganization": [{"id": "GB-CHC-1", "name": "Funder"}],
            }
            for i in range(1, 4)
        ]
    }
)
GOOD_ROWS = 3

mutation = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.sampled_from([b",", b'"', b"\n", b"{", b"]", b"\xff", b"\x00", b";"])),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 20)),
)  # fmt: skip


def mutate(data: bytes, ops: list[tuple]) -> bytes:
    for op in ops:
        if not data:
            break
        pos = int(op[1] * (len(data) - 1))
        if op[0] == "truncate":
            data = data[:pos]
        elif op[0] == "flip":
            data = data[:pos] + bytes([op[2]]) + data[pos + 1 :]
        elif op[0] == "insert":
            data = data[:pos] + op[2] + data[pos:]
        else:
            data = data[:pos] + data[pos + op[2] :]
    return data


def _ingest(raw: Path, db: Path) -> None:
    con = duckdb.connect(str(db))
    ensure_schemas(con)
    ingest_folder(
        con,
        source_system="360giving",
        raw_dir=raw,
        folder="360giving",
        suffixes=SUFFIXES,
        raw_table=RAW_GRANTS,
        parser=parse_file,
        parser_version=PARSER_VERSION,
        log=lambda _m: None,
    )
    con.close()


def _snapshot(db: Path, file: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    cols = ", ".join(c for c in RAW_GRANTS.column_names if c != "loaded_at")
    rows = con.execute(
        f"SELECT {cols} FROM raw.raw_360giving_grants WHERE source_file = ? ORDER BY source_row",
        [file],
    ).fetchall()
    con.close()
    return rows


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple]]:
    base = tmp_path_factory.mktemp("ref")
    (base / "raw" / "360giving").mkdir(parents=True)
    (base / "raw" / "360giving" / "good.csv").write_text(CSV)
    (base / "raw" / "360giving" / "good.json").write_text(JSON)
    _ingest(base / "raw", base / "b.duckdb")
    return {
        f: _snapshot(base / "b.duckdb", f) for f in ("360giving/good.csv", "360giving/good.json")
    }


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    target=st.sampled_from(["csv", "json"]),
    ops=st.lists(mutation, min_size=1, max_size=4),
)
def test_mutated_file_never_crashes_and_never_touches_other_files(
    tmp_path: Path, reference: dict[str, list[tuple]], target: str, ops: list[tuple]
) -> None:
    work = tmp_path / f"case-{abs(hash((target, repr(ops))))}"
    shutil.rmtree(work, ignore_errors=True)
    folder = work / "raw" / "360giving"
    folder.mkdir(parents=True)
    other = "json" if target == "csv" else "csv"
    (folder / f"good.{other}").write_text(CSV if other == "csv" else JSON)
    source = (CSV if target == "csv" else JSON).encode()
    (folder / f"mutant.{target}").write_bytes(mutate(source, ops))
    db = work / "b.duckdb"

    _ingest(work / "raw", db)  # must not raise, whatever the mutant holds

    assert _snapshot(db, f"360giving/good.{other}") == reference[f"360giving/good.{other}"]
    con = duckdb.connect(str(db), read_only=True)
    manifest = con.execute(
        "SELECT status, rows_in, rows_loaded, rows_quarantined FROM raw.raw_file_manifest "
        "WHERE source_file = ?",
        [f"360giving/mutant.{target}"],
    ).fetchone()
    con.close()
    assert manifest is not None
    status, rows_in, loaded, quarantined = manifest
    assert rows_in == loaded + quarantined
    assert status in {"loaded", "partial", "failed", "empty"}
