"""Real public BODS samples through raw ingest and staging.

The samples live OUTSIDE the repository (`../shared/realdata`, see its MANIFEST.md) and are
never copied into it: each test symlinks the files it needs into tmp_path. Expected counts are
computed here, independently of the pipeline, with `json`.

- `bods-openownership-register-bluetail`: Open Ownership Register exports in the pre-0.2 style,
  one file per Companies House number, statements repeated across files, identifiers repeated
  inside statements.
- `bods-gleif-openownership`: 0.4 examples of the standard and lib-cove-bods fixtures for 0.2,
  0.3 and 0.4 (some deliberately invalid).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from assets.common.tables import ensure_schemas
from assets.raw.bods import PARSER_VERSION, RAW_BODS, SOURCE_SYSTEM, SUFFIXES, parse_file
from assets.raw.ingest import FILE_MANIFEST, ingest_folder
from assets.staging import stg_bods as stg
from assets.staging.quarantine import STG_QUARANTINE

pytestmark = pytest.mark.realdata

REALDATA = Path(
    os.environ.get("FUNDTRACE_REALDATA_DIR")
    or Path(__file__).resolve().parents[2] / "shared" / "realdata"
)
BLUETAIL = REALDATA / "bods-openownership-register-bluetail" / "ch_id_openownership_bods"
GLEIF = REALDATA / "bods-gleif-openownership"
FOLDERS = {
    "bluetail": BLUETAIL,
    "examples-0.4": GLEIF / "data-standard-examples-0.4",
    "fixtures-0.4": GLEIF / "lib-cove-bods-fixtures-0.4",
    "fixtures-0.3": GLEIF / "lib-cove-bods-fixtures-0.3",
    "fixtures-0.2": GLEIF / "lib-cove-bods-fixtures-0.2",
}


def _need(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"real samples not present: {folder}")
    return folder


def _link(folder: Path, tmp_path: Path) -> Path:
    """tmp_path/raw/bods/<file> -> the real file (symlinks, nothing copied)."""
    target = tmp_path / "raw" / "bods"
    target.mkdir(parents=True)
    for path in sorted(_need(folder).glob("*.json")):
        (target / path.name).symlink_to(path)
    return tmp_path / "raw"


def _staged(raw: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    ensure_schemas(con)
    ingest_folder(
        con,
        source_system=SOURCE_SYSTEM,
        raw_dir=raw,
        folder="bods",
        suffixes=SUFFIXES,
        raw_table=RAW_BODS,
        parser=parse_file,
        parser_version=PARSER_VERSION,
        log=lambda _m: None,
    )
    stg.build_stg_bods(con)
    return con


def _load(path: Path) -> list[Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, list), path
    return data


def _count(con: duckdb.DuckDBPyConnection, sql: str, *params: Any) -> int:
    row = con.execute(sql, list(params)).fetchone()
    return int(row[0]) if row else 0


# --------------------------------------------------------------------------- every file


@pytest.mark.parametrize("name", list(FOLDERS))
def test_every_file_reconciles(tmp_path: Path, name: str) -> None:
    folder = FOLDERS[name]
    con = _staged(_link(folder, tmp_path))
    manifest = {
        r[0]: r[1:]
        for r in con.execute(
            f"SELECT source_file, status, rows_in, rows_loaded, rows_quarantined "
            f"FROM {FILE_MANIFEST.qualified}"
        ).fetchall()
    }
    files = sorted(folder.glob("*.json"))
    assert len(manifest) == len(files)
    for path in files:
        items = _load(path)
        objects = sum(isinstance(i, dict) for i in items)
        status, rows_in, loaded, quarantined = manifest[f"bods/{path.name}"]
        assert status in ("loaded", "partial", "empty"), path.name
        assert (rows_in, loaded, quarantined) == (len(items), objects, len(items) - objects)
        # staging: every raw statement is staged in the history or quarantined with a reason
        staged = _count(
            con, "SELECT count(*) FROM staging.stg_bods_statements WHERE source_file = ?",
            f"bods/{path.name}",
        )  # fmt: skip
        q = _count(
            con,
            f"SELECT count(*) FROM {STG_QUARANTINE.qualified} WHERE source_file = ? "
            "AND staging_table = 'stg_bods_statements'",
            f"bods/{path.name}",
        )
        assert staged + q == objects, path.name
    # nothing personal survives in a person statement
    assert (
        _count(
            con,
            f"SELECT count(*) FROM {RAW_BODS.qualified} WHERE statement_type IN "
            "('personStatement', 'person') AND (statement_json LIKE '%\"birthDate\"%' "
            "OR statement_json LIKE '%\"addresses\"%')",
        )
        == 0
    )


# --------------------------------------------------------------------------- bluetail


def _company_number(text: str) -> str:
    """The BRIEF's rule: case and whitespace ignored, numbers zero-padded to 8 (SC311560)."""
    text = re.sub(r"\s+", "", text).upper()
    if text.isdigit():
        return text.zfill(8)
    prefixed = re.fullmatch(r"([A-Z]{2})([0-9]{1,6})", text)
    return prefixed.group(1) + prefixed.group(2).zfill(6) if prefixed else text


def test_bluetail_entities_relationships_and_persons(tmp_path: Path) -> None:
    con = _staged(_link(BLUETAIL, tmp_path))
    first: dict[str, dict[str, Any]] = {}  # statementID -> statement, first copy
    file_numbers: dict[str, str] = {}
    for path in sorted(BLUETAIL.glob("*.json")):
        items = _load(path)
        for s in items:
            first.setdefault(s["statementID"], s)
        if items:
            file_numbers[path.name] = path.name.split("_")[1]
    by_type = Counter(s["statementType"] for s in first.values())

    def coh_ids(s: dict[str, Any]) -> list[str]:
        """Distinct normalised GB-COH ids in published order (empty ids skipped)."""
        out: list[str] = []
        for i in s.get("identifiers", []):
            if i.get("scheme") == "GB-COH" and (i.get("id") or "").strip():
                ref = "GB-COH-" + _company_number(i["id"])
                if ref not in out:
                    out.append(ref)
        return out

    entities = [s for s in first.values() if s["statementType"] == "entityStatement"]
    with_coh = [s for s in entities if coh_ids(s)]
    assert len(with_coh) > 200  # the sample is what the MANIFEST describes
    got_coh = _count(
        con, "SELECT count(*) FROM staging.stg_bods_entities WHERE org_ref_basis = 'GB-COH'"
    )
    assert got_coh == len(with_coh)
    assert _count(con, "SELECT count(*) FROM staging.stg_bods_entities") == len(entities)
    # the org_ref is the first Companies House id; repeated and unpadded copies collapse
    got = {
        r[0]: (r[1], r[2])
        for r in con.execute(
            "SELECT statement_id, org_ref, identifiers FROM staging.stg_bods_entities "
            "WHERE org_ref_basis = 'GB-COH'"
        ).fetchall()
    }
    assert got == {s["statementID"]: (coh_ids(s)[0], coh_ids(s)) for s in with_coh}
    published = sum(1 for s in with_coh for i in s["identifiers"] if i.get("scheme") == "GB-COH")
    assert published > 2 * sum(len(coh_ids(s)) for s in with_coh)
    staged_refs = {ref for ref, _ in got.values()}
    # every file's own company is among the staged entities
    for name, number in file_numbers.items():
        assert f"GB-COH-{_company_number(number)}" in staged_refs, name

    ooc = [s for s in first.values() if s["statementType"] == "ownershipOrControlStatement"]
    assert by_type["ownershipOrControlStatement"] == len(ooc)
    assert _count(
        con, "SELECT count(DISTINCT statement_id) FROM staging.stg_bods_relationships"
    ) == len(ooc)
    interest_rows = sum(max(1, len(s.get("interests") or [])) for s in ooc)
    assert _count(con, "SELECT count(*) FROM staging.stg_bods_relationships") == interest_rows
    assert _count(con, f"SELECT count(*) FROM {STG_QUARANTINE.qualified}") == 0
    types = Counter(i["type"] for s in ooc for i in s.get("interests") or [])
    got_types = dict(
        con.execute(
            "SELECT interest_type_published, count(*) FROM staging.stg_bods_relationships "
            "WHERE interest_type_published IS NOT NULL GROUP BY 1"
        ).fetchall()
    )
    assert got_types == dict(types)
    mapped = dict(
        con.execute(
            "SELECT DISTINCT interest_type_published, interest_type "
            "FROM staging.stg_bods_relationships WHERE interest_type IS NOT NULL"
        ).fetchall()
    )
    assert mapped["voting-rights"] == "votingRights"
    assert mapped["appointment-of-board"] == "appointmentOfBoard"
    assert mapped["influence-or-control"] == "otherInfluenceOrControl"
    # boolean exclusiveMinimum (register exports) flags the minimum as exclusive
    exclusive_min = sum(
        1
        for s in ooc
        for i in s.get("interests") or []
        if (i.get("share") or {}).get("exclusiveMinimum") is True
    )
    assert (
        _count(con, "SELECT count(*) FROM staging.stg_bods_relationships WHERE min_exclusive")
        == exclusive_min
    )
    unspecified = sum("unspecified" in s["interestedParty"] for s in ooc)
    assert (
        _count(
            con,
            "SELECT count(DISTINCT statement_id) FROM staging.stg_bods_relationships "
            "WHERE interested_party_kind = 'unspecified'",
        )
        == unspecified
    )
    persons = by_type["personStatement"]
    assert _count(con, "SELECT count(*) FROM staging.stg_bods_persons") == persons
    with_private = sum(
        1
        for s in first.values()
        if s["statementType"] == "personStatement" and ("birthDate" in s or "addresses" in s)
    )
    assert (
        _count(
            con,
            "SELECT count(DISTINCT statement_id) FROM staging.stg_bods_statements "
            "WHERE private_fields_removed IS NOT NULL",
        )
        == with_private
    )


# --------------------------------------------------------------------------- 0.4 superseding


def _instant(text: str | None) -> dt.datetime:
    if not text:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@pytest.mark.parametrize("name", ["examples-0.4", "fixtures-0.4"])
def test_v04_current_version_per_record(tmp_path: Path, name: str) -> None:
    folder = FOLDERS[name]
    con = _staged(_link(folder, tmp_path))
    kept: dict[str, tuple[str, int, dict[str, Any]]] = {}
    reused: set[str] = set()
    for path in sorted(folder.glob("*.json")):
        for pos, s in enumerate(_load(path)):
            sid = s.get("statementId")
            if not isinstance(sid, str):
                continue
            if sid in kept:
                if kept[sid][2] != s:
                    reused.add(f"{path.name}#{pos}")
                continue
            kept[sid] = (path.name, pos, s)
    records: dict[str, list[tuple[dt.datetime, str, int, str, str]]] = {}
    for sid, (file, pos, s) in kept.items():
        if s.get("recordType") in ("entity", "person", "relationship") and isinstance(
            s.get("recordDetails"), dict
        ):
            records.setdefault(s["recordId"], []).append(
                (_instant(s.get("statementDate")), file, pos, sid, s.get("recordStatus") or "")
            )
    expected = {rid: max(items) for rid, items in records.items()}
    got = dict(
        con.execute(
            "SELECT DISTINCT chain_id, current_statement_id FROM staging.stg_bods_statements"
        ).fetchall()
    )
    # every record in the history points at the independently computed latest statement
    assert got == {rid: e[3] for rid, e in expected.items() if rid in got}
    missing = set(expected) - set(got)
    # records absent from the history are exactly those whose only statement was quarantined
    for rid in missing:
        assert len(records[rid]) == 1
    assert len(reused) == _count(
        con,
        f"SELECT count(*) FROM {STG_QUARANTINE.qualified} "
        "WHERE reason LIKE 'statement id reused with different content%'",
    )
    closed = {rid for rid, e in expected.items() if e[4] == "closed"} - missing
    got_closed = {
        r[0]
        for r in con.execute(
            "SELECT chain_id FROM staging.stg_bods_statements WHERE version_status = 'closed'"
        ).fetchall()
    }
    assert got_closed == closed


def test_tecido_history(tmp_path: Path) -> None:
    """data-standard example: a person's relationship closed, a company's share updated."""
    folder = FOLDERS["examples-0.4"]
    path = folder / "tecido.json"
    if not path.is_file():
        pytest.skip(f"real sample not present: {path}")
    con = _staged(_link(folder, tmp_path))
    statements = _load(path)
    for rid in ("022EBEB66B", "02089A4E68"):
        last = [s for s in statements if s["recordId"] == rid][-1]
        rows = con.execute(
            "SELECT interest_type, share_min, share_max, end_date, version_status "
            "FROM staging.stg_bods_relationships WHERE record_id = ? ORDER BY interest_index",
            [rid],
        ).fetchall()
        expected = []
        for i in last["recordDetails"]["interests"]:
            exact = i.get("share", {}).get("exact")
            end = i.get("endDate") or (
                last["statementDate"][:10] if last["recordStatus"] == "closed" else None
            )
            status = "closed" if last["recordStatus"] == "closed" else "current"
            expected.append((i["type"], exact, exact, end, status))
        assert [(a, b, c, str(d) if d else None, e) for a, b, c, d, e in rows] == expected


def test_invalid_statement_id_fixture_is_quarantined(tmp_path: Path) -> None:
    folder = FOLDERS["fixtures-0.2"]
    path = folder / "bad_statement_id_type.json"
    if not path.is_file():
        pytest.skip(f"real sample not present: {path}")
    (bad,) = [s for s in _load(path) if not isinstance(s.get("statementID"), str)]
    assert bad["statementID"] == {}
    con = _staged(_link(folder, tmp_path))
    reasons = con.execute(
        f"SELECT reason FROM {STG_QUARANTINE.qualified} WHERE source_file = ?",
        [f"bods/{path.name}"],
    ).fetchall()
    assert reasons == [("missing statement id: statementID absent, empty or not a string",)]
