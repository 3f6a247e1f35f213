"""BODS: raw parser (assets/raw/bods.py), staging (assets/staging/stg_bods.py), GX suites,
the ownership edge contract and the shipped Harbourton demo files.

Every test writes its own few statements into `<tmp>/raw/bods/` and ingests them with the call
the asset makes. Expected values are written out by hand from the fixtures, not read back from
the code.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from assets.common.orgids import normalise_org_id
from assets.common.tables import ensure_schemas
from assets.raw.bods import (
    PARSER_VERSION,
    RAW_BODS,
    SOURCE_SYSTEM,
    SUFFIXES,
    detect_version,
    parse_file,
    raw_bods_statements,
)
from assets.raw.ingest import FILE_MANIFEST, QUARANTINE, ingest_folder
from assets.staging import stg_bods as stg
from assets.staging.quarantine import STG_QUARANTINE
from pipelines.quality import EXPECTATIONS_DIR, load_suite, run_suite
from pipelines.resources import FundtraceSettings

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "raw" / "bods"

# --------------------------------------------------------------------------- fixtures

PUB = {"publicationDate": "2024-01-31", "publisher": {"name": "Test register"}}


def pub(version: str) -> dict[str, Any]:
    return {**PUB, "bodsVersion": version}


def legacy_triplet(version: str, share: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Entity, person, ownership-or-control statement in 0.2 or 0.3 form."""
    level = {"interestLevel": "direct"} if version == "0.2" else {"directOrIndirect": "direct"}
    return [
        {"statementID": "e-1", "statementType": "entityStatement", "isComponent": False,
         "statementDate": "2023-01-05", "entityType": "registeredEntity",
         "name": "Gullwing Lanterns Ltd", "identifiers": [{"scheme": "GB-COH", "id": "1234567"}],
         "incorporatedInJurisdiction": {"name": "United Kingdom", "code": "GB"},
         "publicationDetails": pub(version)},
        {"statementID": "p-1", "statementType": "personStatement", "isComponent": False,
         "statementDate": "2023-01-05", "personType": "knownPerson",
         "names": [{"type": "individual", "fullName": "Orla Fenwick"}],
         "nationalities": [{"code": "ie", "name": "Ireland"}],
         "birthDate": "1969-07-21",
         "addresses": [{"type": "residence", "address": "7 Saltpan Lane, Harbourton"}],
         "publicationDetails": pub(version)},
        {"statementID": "o-1", "statementType": "ownershipOrControlStatement",
         "isComponent": False, "statementDate": "2023-01-05",
         "subject": {"describedByEntityStatement": "e-1"},
         "interestedParty": {"describedByPersonStatement": "p-1"},
         "interests": [{"type": "shareholding", **level, "beneficialOwnershipOrControl": True,
                        "startDate": "2020-03-01", "share": share or {"exact": 62.5}}],
         "publicationDetails": pub(version)},
    ]  # fmt: skip


def v04_statement(
    sid: str, rid: str, rtype: str, details: dict[str, Any], date: str = "2023-01-05",
    status: str = "new",
) -> dict[str, Any]:  # fmt: skip
    return {"statementId": sid, "statementDate": date, "recordId": rid, "recordType": rtype,
            "recordStatus": status, "publicationDetails": pub("0.4"),
            "recordDetails": {"isComponent": False, **details}}  # fmt: skip


def v04_entity(sid: str, rid: str, name: str, ids: list[dict[str, str]] | None = None) -> dict:
    return v04_statement(
        sid, rid, "entity",
        {"entityType": {"type": "registeredEntity"}, "name": name, "identifiers": ids or []},
    )  # fmt: skip


def v04_rel(
    sid: str, rid: str, subject: Any, party: Any, interests: list[dict[str, Any]],
    date: str = "2023-01-05", status: str = "new",
) -> dict[str, Any]:  # fmt: skip
    return v04_statement(
        sid, rid, "relationship",
        {"subject": subject, "interestedParty": party, "interests": interests}, date, status,
    )  # fmt: skip


def share_interest(share: dict[str, Any] | None, kind: str = "shareholding", **kw: Any) -> dict:
    out: dict[str, Any] = {"type": kind, "directOrIndirect": "direct", "startDate": "2020-03-01"}
    if share is not None:
        out["share"] = share
    return {**out, **kw}


def v04_triplet(share: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    person = v04_statement(
        "s-p", "r-p", "person",
        {"personType": "knownPerson", "names": [{"type": "legal", "fullName": "Orla Fenwick"}],
         "nationalities": [{"code": "IE", "name": "Ireland"}], "birthDate": "1969-07-21",
         "addresses": [{"type": "residence", "address": "7 Saltpan Lane, Harbourton"}]},
    )  # fmt: skip
    return [
        v04_entity("s-e", "r-e", "Gullwing Lanterns Ltd", [{"scheme": "GB-COH", "id": "1234567"}]),
        person,
        v04_rel("s-o", "r-o", "r-e", "r-p",
                [share_interest(share or {"exact": 62.5}, beneficialOwnershipOrControl=True)]),
    ]  # fmt: skip


def write(raw: Path, name: str, content: Any, *, jsonl: bool = False) -> Path:
    path = raw / "bods" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif jsonl:
        path.write_text("".join(json.dumps(s) + "\n" for s in content), encoding="utf-8")
    else:
        path.write_text(json.dumps(content, indent=1), encoding="utf-8")
    return path


def ingest(raw: Path, db: Path | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(db) if db else ":memory:")
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
    return con


def staged(raw: Path) -> duckdb.DuckDBPyConnection:
    con = ingest(raw)
    stg.build_stg_bods(con)
    return con


def rows(con: duckdb.DuckDBPyConnection, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return con.execute(sql, list(params)).fetchall()


def dicts(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def quarantine_reasons(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [
        r[0]
        for r in rows(
            con,
            f"SELECT reason FROM {STG_QUARANTINE.qualified} WHERE staging_table = ? "
            "ORDER BY source_file, source_row, source_locator",
            table,
        )
    ]


# --------------------------------------------------------------------------- versions


def test_version_detection() -> None:
    assert detect_version({"statementId": "x", "recordType": "entity"}) == "0.4"
    assert detect_version({"statementID": "x", "publicationDetails": {"bodsVersion": "0.3"}}) == (
        "0.3"
    )
    assert detect_version({"statementID": "x", "publicationDetails": {"bodsVersion": "0.2"}}) == (
        "0.2"
    )
    # pre-0.2 register exports carry no publicationDetails at all
    assert detect_version({"statementID": "x", "statementType": "entityStatement"}) == "0.1"
    assert detect_version({"statementID": "x", "publicationDetails": {}}) == "0.2"


@pytest.mark.parametrize("version", ["0.2", "0.3", "0.4"])
def test_each_version_reads_into_one_model(tmp_path: Path, version: str) -> None:
    statements = v04_triplet() if version == "0.4" else legacy_triplet(version)
    write(tmp_path, "three.json", statements)
    con = staged(tmp_path)

    assert rows(con, "SELECT DISTINCT bods_version FROM staging.stg_bods_statements") == [
        (version,)
    ]
    (entity,) = dicts(con, "SELECT * FROM staging.stg_bods_entities")
    assert entity["org_ref"] == "GB-COH-01234567"  # zero-padded company number
    assert entity["org_ref_basis"] == "GB-COH"
    assert entity["entity_name"] == "Gullwing Lanterns Ltd"
    (person,) = dicts(con, "SELECT * FROM staging.stg_bods_persons")
    assert person["full_name"] == "Orla Fenwick"
    assert person["nationalities"] == ["IE"]
    chain = "r-p" if version == "0.4" else "p-1"
    assert person["person_ref"] == f"BODS-PERSON-{chain}"
    (rel,) = dicts(con, "SELECT * FROM staging.stg_bods_relationships")
    assert rel["subject_org_ref"] == "GB-COH-01234567"
    assert rel["interested_party_kind"] == "person"
    assert rel["interested_party_ref"] == f"BODS-PERSON-{chain}"
    assert rel["interested_party_name"] == "Orla Fenwick"
    assert rel["interest_type"] == "shareholding"
    assert (rel["share_exact"], rel["share_min"], rel["share_max"]) == (62.5, 62.5, 62.5)
    assert (rel["min_exclusive"], rel["max_exclusive"]) == (False, False)
    # 0.2 interestLevel and 0.3/0.4 directOrIndirect land in one column
    assert rel["direct_or_indirect"] == "direct"
    assert rel["beneficial_ownership_or_control"] is True
    assert str(rel["start_date"]) == "2020-03-01"
    assert rel["end_date"] is None


@pytest.mark.parametrize(
    ("version", "published", "expected"),
    [
        ("0.2", "2016-02-01", "2016-02-01"),
        ("0.3", "2024-07-22T00:00:00Z", "2024-07-22"),
        ("0.4", "2019-11-30", "2019-11-30"),
        ("0.4", "2019", None),  # a year alone is not a date: kept as published only
        ("0.3", None, None),
    ],
)
def test_founding_date_in_every_version(
    tmp_path: Path, version: str, published: str | None, expected: str | None
) -> None:
    """0.4 `recordDetails.foundingDate`, 0.2/0.3 top-level `foundingDate`."""
    statements = v04_triplet() if version == "0.4" else legacy_triplet(version)
    if published is not None:
        target = statements[0]["recordDetails"] if version == "0.4" else statements[0]
        target["foundingDate"] = published
    write(tmp_path, "three.json", statements)
    con = staged(tmp_path)
    (entity,) = dicts(con, "SELECT * FROM staging.stg_bods_entities")
    assert (str(entity["founding_date"]) if entity["founding_date"] else None) == expected
    assert entity["founding_date_published"] == published
    founded = rows(
        con, f"SELECT org_ref, founding_date, source_record_id FROM ({stg.FOUNDING_SQL})"
    )
    wanted = [("GB-COH-01234567", entity["founding_date"], entity["statement_id"])]
    assert founded == (wanted if expected else [])
    # a foundingDate that is not a full date is listed by a warning, never dropped silently
    suite = load_suite(EXPECTATIONS_DIR / "staging__stg_bods_entities.json")
    outcome = run_suite(con, "staging", "stg_bods_entities", suite)
    failed = [suite["expectations"][e.index] for e in outcome.expectations if not e.success]
    assert [(e["severity"], e["description"][:29]) for e in failed] == (
        [("warning", "foundingDate is not a full da")] if published == "2019" else []
    )


def test_locators_json_lines_gzip_and_bom(tmp_path: Path) -> None:
    write(tmp_path, "a.json", v04_triplet())
    write(tmp_path, "b.jsonl", legacy_triplet("0.3"), jsonl=True)
    # same statements under other ids, gzipped and with a UTF-8 BOM
    other = [dict(s, statementID="gz-" + s["statementID"]) for s in legacy_triplet("0.2")]
    text = "\ufeff" + json.dumps(other)
    (tmp_path / "bods" / "c.json.gz").write_bytes(gzip.compress(text.encode("utf-8")))
    con = ingest(tmp_path)
    got = rows(
        con,
        f"SELECT source_file, source_row, source_locator FROM {RAW_BODS.qualified} "
        "ORDER BY source_file, source_row",
    )
    assert got == [
        ("bods/a.json", 1, "$[0]"), ("bods/a.json", 2, "$[1]"), ("bods/a.json", 3, "$[2]"),
        ("bods/b.jsonl", 1, "line 1"), ("bods/b.jsonl", 2, "line 2"), ("bods/b.jsonl", 3, "line 3"),
        ("bods/c.json.gz", 1, "$[0]"), ("bods/c.json.gz", 2, "$[1]"), ("bods/c.json.gz", 3, "$[2]"),
    ]  # fmt: skip
    formats = dict(rows(con, f"SELECT source_file, file_format FROM {FILE_MANIFEST.qualified}"))
    assert formats == {"bods/a.json": "json", "bods/b.jsonl": "jsonl", "bods/c.json.gz": "json.gz"}


def test_integers_beyond_64_bits_load_with_every_digit(tmp_path: Path) -> None:
    # ijson's C backend refuses them in a JSON array or document: the file is read again
    wide = 123456789012345678901234567890
    statements = v04_triplet()
    statements[0] = dict(statements[0], x_registerSequence=wide)
    write(tmp_path, "a.json", statements)
    write(tmp_path, "d.json", dict(legacy_triplet("0.3")[0], x_registerSequence=-(2**64)))
    con = ingest(tmp_path)
    got = rows(
        con,
        f"SELECT source_file, source_row, statement_json FROM {RAW_BODS.qualified} "
        "ORDER BY source_file, source_row",
    )
    assert [(f, n) for f, n, _ in got] == [
        ("bods/a.json", 1), ("bods/a.json", 2), ("bods/a.json", 3), ("bods/d.json", 1),
    ]  # fmt: skip
    assert json.loads(got[0][2])["x_registerSequence"] == wide
    assert json.loads(got[3][2])["x_registerSequence"] == -(2**64)
    notes = dict(rows(con, f"SELECT source_file, message FROM {FILE_MANIFEST.qualified}"))
    assert all("Python backend" in (notes[f] or "") for f in ("bods/a.json", "bods/d.json"))


# --------------------------------------------------------------------------- privacy


def _all_text(con: duckdb.DuckDBPyConnection) -> str:
    """Every VARCHAR / VARCHAR[] value of every table in the database, as one text."""
    parts: list[str] = []
    tables = rows(
        con,
        "SELECT DISTINCT table_schema, table_name FROM information_schema.columns "
        "WHERE table_schema IN ('raw', 'staging')",
    )
    for schema, table in tables:
        cur = con.execute(f"SELECT * FROM {schema}.{table}")
        parts.extend(str(v) for r in cur.fetchall() for v in r)
    return "\n".join(parts)


def test_birth_dates_addresses_and_personal_ids_are_never_stored(tmp_path: Path) -> None:
    people = v04_triplet()
    people[1]["recordDetails"]["identifiers"] = [
        {"scheme": "GBR-PASSPORT", "id": "P99887766"},
        {"scheme": "HBT-PERSON", "id": "0042"},
    ]
    people[1]["recordDetails"]["placeOfBirth"] = {"address": "Maternity Row, Harbourton"}
    write(tmp_path, "v04.json", people)
    write(tmp_path, "v02.jsonl", legacy_triplet("0.2"), jsonl=True)
    # a broken line and a truncated array holding the same personal data
    write(tmp_path, "broken.jsonl", '{"statementID": "z", "birthDate": "1969-07-21", \n')
    write(tmp_path, "truncated.json", json.dumps(legacy_triplet("0.3"))[:700])
    con = staged(tmp_path)

    text = _all_text(con)
    for secret in ("1969-07-21", "1969", "Saltpan", "P99887766", "Maternity Row", "PASSPORT"):
        assert secret not in text, secret
    removed = dict(
        rows(
            con,
            f"SELECT source_file, private_fields_removed FROM {RAW_BODS.qualified} "
            "WHERE private_fields_removed IS NOT NULL",
        )
    )
    assert removed == {
        "bods/v04.json": "recordDetails.birthDate, recordDetails.addresses, "
        "recordDetails.placeOfBirth, recordDetails.identifiers (personal-document schemes)",
        "bods/v02.jsonl": "birthDate, addresses",
    }
    # the remaining, non-personal identifier still identifies the person
    refs = sorted(r[0] for r in rows(con, "SELECT person_ref FROM staging.stg_bods_persons"))
    assert refs == ["BODS-PERSON-p-1", "HBT-PERSON-0042"]
    person_columns = [
        r[0]
        for r in rows(
            con,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'staging' AND table_name = 'stg_bods_persons'",
        )
    ]
    assert not [c for c in person_columns if any(w in c for w in ("birth", "address", "resid"))]


# --------------------------------------------------------------------------- superseding


def test_v04_latest_statement_per_record_wins_and_closed_records_end(tmp_path: Path) -> None:
    ent = [
        v04_entity("s-a", "r-a", "Saltmarsh Optics Ltd", [{"scheme": "GB-COH", "id": "09990101"}]),
        v04_entity("s-b", "r-b", "Tern Holdings Ltd", [{"scheme": "GB-COH", "id": "09990102"}]),
        v04_entity("s-c", "r-c", "Dunlin Capital Ltd", [{"scheme": "GB-COH", "id": "09990103"}]),
    ]
    rels = [
        # the update is written BEFORE the original: the statement date decides, not the order
        v04_rel("s-r2", "r-ab", "r-a", "r-b", [share_interest({"exact": 55})], "2022-06-01",
                "updated"),
        v04_rel("s-r1", "r-ab", "r-a", "r-b", [share_interest({"exact": 30})], "2021-01-01"),
        v04_rel("s-r3", "r-ac", "r-a", "r-c", [share_interest({"exact": 20})], "2021-01-01"),
        v04_rel("s-r4", "r-ac", "r-a", "r-c", [share_interest({"exact": 20})], "2023-09-30",
                "closed"),
        v04_rel("s-r5", "r-bc", "r-b", "r-c",
                [share_interest({"exact": 10}, endDate="2023-03-31")], "2021-01-01"),
        v04_rel("s-r6", "r-bc", "r-b", "r-c",
                [share_interest({"exact": 10}, endDate="2023-03-31")], "2023-09-30", "closed"),
    ]  # fmt: skip
    write(tmp_path, "ents.json", ent)
    write(tmp_path, "rels.json", rels)
    con = staged(tmp_path)

    status = dict(rows(con, "SELECT statement_id, version_status FROM staging.stg_bods_statements"))
    assert {k: v for k, v in status.items() if k.startswith("s-r")} == {
        "s-r1": "superseded", "s-r2": "current", "s-r3": "superseded", "s-r4": "closed",
        "s-r5": "superseded", "s-r6": "closed",
    }  # fmt: skip
    got = rows(
        con,
        "SELECT statement_id, subject_org_ref, interested_party_ref, share_min, end_date, "
        "end_date_basis FROM staging.stg_bods_relationships ORDER BY statement_id",
    )
    assert [(a, b, c, d, str(e) if e else None, f) for a, b, c, d, e, f in got] == [
        ("s-r2", "GB-COH-09990101", "GB-COH-09990102", 55.0, None, None),
        ("s-r4", "GB-COH-09990101", "GB-COH-09990103", 20.0, "2023-09-30", "closed record"),
        ("s-r6", "GB-COH-09990102", "GB-COH-09990103", 10.0, "2023-03-31", "endDate"),
    ]
    positions = rows(
        con,
        "SELECT statement_id, chain_position, current_statement_id FROM "
        "staging.stg_bods_statements WHERE chain_id = 'r-ab' ORDER BY chain_position",
    )
    assert positions == [("s-r1", 1, "s-r2"), ("s-r2", 2, "s-r2")]


def test_legacy_replaces_statements_chain(tmp_path: Path) -> None:
    base = legacy_triplet("0.2")
    corrected = {**base[1], "statementID": "p-2", "statementDate": "2023-06-01",
                 "names": [{"type": "individual", "fullName": "Orla Fenwick-Hale"}],
                 "replacesStatements": ["p-1"]}  # fmt: skip
    new_share = {**base[2], "statementID": "o-2", "statementDate": "2024-01-01",
                 "replacesStatements": ["o-1"]}  # fmt: skip
    new_share["interests"] = [dict(base[2]["interests"][0], share={"minimum": 50, "maximum": 75})]
    # o-2 still names the replaced person statement p-1
    write(tmp_path, "chain.json", [*base, corrected, new_share])
    con = staged(tmp_path)

    status = dict(rows(con, "SELECT statement_id, version_status FROM staging.stg_bods_statements"))
    assert status == {
        "e-1": "current", "p-1": "superseded", "o-1": "superseded", "p-2": "current",
        "o-2": "current",
    }  # fmt: skip
    (person,) = dicts(
        con, "SELECT statement_id, full_name, person_ref FROM staging.stg_bods_persons"
    )
    # the id stays the chain's first statement: replacing a person keeps its person_ref
    assert person == {
        "statement_id": "p-2", "full_name": "Orla Fenwick-Hale", "person_ref": "BODS-PERSON-p-1",
    }  # fmt: skip
    (rel,) = dicts(
        con,
        "SELECT statement_id, interested_party_statement_id, interested_party_name, share_min, "
        "share_max FROM staging.stg_bods_relationships",
    )
    assert rel == {
        "statement_id": "o-2", "interested_party_statement_id": "p-2",
        "interested_party_name": "Orla Fenwick-Hale", "share_min": 50.0, "share_max": 75.0,
    }  # fmt: skip


def test_replaces_statements_cycle_is_quarantined(tmp_path: Path) -> None:
    a, b, _ = legacy_triplet("0.3")
    b2 = {**b, "statementID": "p-2", "replacesStatements": ["p-1"]}
    b1 = {**b, "replacesStatements": ["p-2"]}
    write(tmp_path, "cycle.json", [a, b1, b2])
    con = staged(tmp_path)
    assert quarantine_reasons(con, "stg_bods_statements") == [
        "replacesStatements cycle: no current version of p-1",
        "replacesStatements cycle: no current version of p-2",
    ]
    assert rows(con, "SELECT count(*) FROM staging.stg_bods_persons") == [(0,)]


def test_identical_copies_kept_once_and_reused_ids_quarantined(tmp_path: Path) -> None:
    triplet = legacy_triplet("0.3")
    write(tmp_path, "a.json", triplet)
    write(tmp_path, "b.json", [triplet[0]])  # identical copy of e-1
    changed = {**triplet[1], "names": [{"type": "individual", "fullName": "Somebody Else"}]}
    write(tmp_path, "c.json", [changed])  # p-1 again, different content
    con = staged(tmp_path)
    got = rows(
        con,
        "SELECT source_file, statement_id, version_status FROM staging.stg_bods_statements "
        "ORDER BY source_file, source_row",
    )
    assert got == [
        ("bods/a.json", "e-1", "current"), ("bods/a.json", "p-1", "current"),
        ("bods/a.json", "o-1", "current"), ("bods/b.json", "e-1", "identical_copy"),
    ]  # fmt: skip
    assert quarantine_reasons(con, "stg_bods_statements") == [
        "statement id reused with different content: p-1 kept from bods/a.json $[1]"
    ]
    assert rows(con, "SELECT full_name FROM staging.stg_bods_persons") == [("Orla Fenwick",)]


# --------------------------------------------------------------------------- shares

SHARE_CASES = [
    ({"exact": 60}, (60.0, 60.0, False, False)),
    ({"minimum": 75, "maximum": 100}, (75.0, 100.0, False, False)),
    # 0.3/0.4: numeric exclusive bounds
    ({"exclusiveMinimum": 25, "maximum": 50}, (25.0, 50.0, True, False)),
    ({"minimum": 50, "exclusiveMaximum": 75}, (50.0, 75.0, False, True)),
    # 0.1/0.2: booleans flagging minimum / maximum as exclusive (UK PSC "more than 25%")
    ({"minimum": 25, "maximum": 50, "exclusiveMinimum": True, "exclusiveMaximum": False},
     (25.0, 50.0, True, False)),
    ({"minimum": 50, "maximum": 75, "exclusiveMinimum": True, "exclusiveMaximum": True},
     (50.0, 75.0, True, True)),
    (None, (None, None, False, False)),
    ({"minimum": 80, "maximum": 60}, "share minimum above maximum"),
    ({"exclusiveMinimum": 50, "exclusiveMaximum": 50}, "share minimum above maximum"),
    ({"exact": 120}, "share outside 0-100 percent"),
    ({"minimum": -5, "maximum": 10}, "share outside 0-100 percent"),
    ({"exact": 30, "minimum": 40, "maximum": 50}, "share exact outside its minimum/maximum"),
    ({"exact": "sixty"}, "unparseable share"),
]  # fmt: skip


@pytest.mark.parametrize(("share", "expected"), SHARE_CASES)
def test_share_bounds(tmp_path: Path, share: dict[str, Any] | None, expected: Any) -> None:
    statements = v04_triplet()
    # the share under test, next to a valid votingRights interest of the same statement
    statements[2]["recordDetails"]["interests"] = [
        share_interest(share),
        share_interest({"exact": 10}, kind="votingRights"),
    ]
    write(tmp_path, "s.json", statements)
    con = staged(tmp_path)
    got = rows(
        con,
        "SELECT interest_type, share_min, share_max, min_exclusive, max_exclusive "
        "FROM staging.stg_bods_relationships ORDER BY interest_index",
    )
    assert got[-1] == ("votingRights", 10.0, 10.0, False, False)  # never lost with its sibling
    reasons = quarantine_reasons(con, "stg_bods_relationships")
    if isinstance(expected, str):
        assert len(got) == 1
        assert len(reasons) == 1 and reasons[0].startswith(expected + ": "), reasons
        locator = rows(con, f"SELECT source_locator, record_id FROM {STG_QUARANTINE.qualified}")
        assert locator == [("$[2].recordDetails.interests[0]", "s-o#interests/0")]
    else:
        assert reasons == []
        assert got[0] == ("shareholding", *expected)


@pytest.mark.parametrize(
    ("published", "code"),
    [
        ("voting-rights", "votingRights"),
        ("appointment-of-board", "appointmentOfBoard"),
        ("influence-or-control", "otherInfluenceOrControl"),
        ("settlor-of-trust", "settlor"),
        ("beneficiary-of-trust", "beneficiaryOfLegalArrangement"),
        ("rights-to-surplus-assets", "rightsToSurplusAssetsOnDissolution"),
        ("boardMember", "boardMember"),
        ("controlByLegalFramework", "controlByLegalFramework"),
    ],
)
def test_interest_types_map_onto_the_04_codelist(tmp_path: Path, published: str, code: str) -> None:
    statements = legacy_triplet("0.2")
    statements[2]["interests"][0]["type"] = published
    write(tmp_path, "t.json", statements)
    con = staged(tmp_path)
    assert rows(
        con, "SELECT interest_type, interest_type_published FROM staging.stg_bods_relationships"
    ) == [(code, published)]


def test_unknown_interest_type_and_direction_are_quarantined(tmp_path: Path) -> None:
    statements = v04_triplet()
    statements[2]["recordDetails"]["interests"] = [
        share_interest(None, kind="magic-powers"),
        share_interest(None, directOrIndirect="sideways"),
        {"directOrIndirect": "unknown"},  # no type at all: unknownInterest
    ]
    write(tmp_path, "t.json", statements)
    con = staged(tmp_path)
    assert quarantine_reasons(con, "stg_bods_relationships") == [
        "unknown interest type: magic-powers",
        "invalid directOrIndirect: sideways",
    ]
    assert rows(
        con, "SELECT interest_index, interest_type FROM staging.stg_bods_relationships"
    ) == [(2, "unknownInterest")]


# --------------------------------------------------------------------------- resolution


def test_ends_resolve_across_files_and_unresolved_are_quarantined(tmp_path: Path) -> None:
    e, p, o = v04_triplet()
    write(tmp_path, "a-entities.json", [e, p])
    orphan = v04_rel("s-x", "r-x", "r-e", "r-nobody", [share_interest({"exact": 5})])
    headless = v04_rel("s-y", "r-y", "r-p", "r-e", [share_interest({"exact": 5})])
    unspecified = v04_rel(
        "s-z", "r-z", "r-e", {"reason": "noBeneficialOwners", "description": "none"}, []
    )
    typo = {**v04_entity("s-t", "r-t", "Typo Ltd"), "recordType": "entityy"}
    write(tmp_path, "b-relationships.json", [o, orphan, headless, unspecified, typo])
    con = staged(tmp_path)

    assert quarantine_reasons(con, "stg_bods_statements") == [
        "interestedParty not found: r-nobody is not a statement or record in any BODS file",
        "subject is not an entity: r-p is a person",
        "unknown statement type: entityy",
    ]
    got = rows(
        con,
        "SELECT statement_id, interested_party_kind, interested_party_ref, unspecified_reason, "
        "interest_type FROM staging.stg_bods_relationships ORDER BY statement_id",
    )
    assert got == [
        ("s-o", "person", "BODS-PERSON-r-p", None, "shareholding"),
        ("s-z", "unspecified", None, "noBeneficialOwners", None),
    ]
    # rows in = staged + quarantined, per file
    for file, n in (("bods/a-entities.json", 2), ("bods/b-relationships.json", 5)):
        (raw_n,) = rows(
            con, f"SELECT count(*) FROM {RAW_BODS.qualified} WHERE source_file = ?", file
        )[0]
        (stg_n,) = rows(
            con, "SELECT count(*) FROM staging.stg_bods_statements WHERE source_file = ?", file
        )[0]
        (q_n,) = rows(
            con,
            f"SELECT count(*) FROM {STG_QUARANTINE.qualified} WHERE source_file = ? "
            "AND staging_table = 'stg_bods_statements'",
            file,
        )[0]
        assert raw_n == n == stg_n + q_n


def test_identifiers_org_refs_and_placeholders(tmp_path: Path) -> None:
    ents = [
        v04_entity("s-1", "r-1", "Heron Works Ltd", [{"schemeName": "Companies House", "id": "9990031"}]),
        v04_entity("s-2", "r-2", "Heron Works BV", [{"scheme": "XI-LEI", "id": "9999ZZHERON0000000AB"},
                                                    {"scheme": "NL-KVK", "id": "99990031"}]),
        v04_entity("s-3", "r-3", "Osprey Nominees Ltd", [{"scheme": "GB-COH", "id": "N/A"}]),
        v04_entity("s-4", "r-4", "Kittiwake Trading Ltd", [{"scheme": "GB-COH", "id": ""},
                                                          {"schemeName": "OpenCorporates",
                                                           "id": "https://opencorporates.example/x"}]),
        v04_entity("s-5", "r-5", "Puffin Lei Holdings", [{"schemeName": "LEI", "id": "9999zzpuffin00000001"}]),
        v04_statement("s-6", "r-6", "entity", {"entityType": {"type": "unknownEntity"}, "name": "Unknown"}),
    ]  # fmt: skip
    write(tmp_path, "e.json", ents)
    con = staged(tmp_path)
    got = {
        r[0]: r[1:]
        for r in rows(
            con,
            "SELECT statement_id, org_ref, org_ref_basis, identifiers, other_identifiers "
            "FROM staging.stg_bods_entities",
        )
    }
    assert got["s-1"] == ("GB-COH-09990031", "GB-COH", ["GB-COH-09990031"], [])
    # a national register id wins over an LEI; both are kept
    assert got["s-2"] == (
        "NL-KVK-99990031", "org-id", ["XI-LEI-9999ZZHERON0000000AB", "NL-KVK-99990031"], []
    )  # fmt: skip
    # placeholder ids are no ids: the name decides, and two companies never merge
    assert got["s-3"][1:] == ("name", [], [])
    assert got["s-4"][1:] == ("name", [], ["OpenCorporates: https://opencorporates.example/x"])
    assert got["s-3"][0].startswith("FTNAME-") and got["s-4"][0].startswith("FTNAME-")
    assert got["s-3"][0] != got["s-4"][0]
    assert got["s-5"][:2] == ("XI-LEI-9999ZZPUFFIN00000001", "LEI")
    assert got["s-6"][:2] == ("BODS-ENTITY-r-6", "statement")


def test_person_identifier_matches_the_governance_register_id(tmp_path: Path) -> None:
    statements = v04_triplet()
    statements[1]["recordDetails"]["identifiers"] = [{"scheme": "HBT-PERSON", "id": "0006"}]
    write(tmp_path, "p.json", statements)
    con = staged(tmp_path)
    # the governance register writes member ids such as 'hbt-person-0006 '
    governance_ref = normalise_org_id("hbt-person-0006 ")
    assert rows(con, "SELECT person_ref, person_ref_basis FROM staging.stg_bods_persons") == [
        (governance_ref, "identifier")
    ]
    assert governance_ref == "HBT-PERSON-0006"


def test_ownership_edges_keep_cycles(tmp_path: Path) -> None:
    ents = [
        v04_entity("s-a", "r-a", "Sandpiper Holdings Ltd", [{"scheme": "GB-COH", "id": "09990201"}]),
        v04_entity("s-b", "r-b", "Godwit Holdings Ltd", [{"scheme": "GB-COH", "id": "09990202"}]),
    ]  # fmt: skip
    rels = [
        v04_rel("s-ab", "r-ab", "r-b", "r-a", [share_interest({"exact": 40})]),
        v04_rel("s-ba", "r-ba", "r-a", "r-b", [share_interest({"minimum": 25, "maximum": 50})]),
    ]
    write(tmp_path, "cycle.json", [*ents, *rels])
    con = staged(tmp_path)
    cur = con.execute(f"SELECT * FROM ({stg.OWNERSHIP_SQL}) ORDER BY source_record_id")
    assert [d[0] for d in cur.description or []] == list(stg.OWNERSHIP_COLUMNS)
    got = [r[:10] for r in cur.fetchall()]
    assert got == [
        ("GB-COH-09990202", "Godwit Holdings Ltd", "GB-COH-09990201", "Sandpiper Holdings Ltd",
         "entity", "shareholding", 40.0, 40.0, False, False),
        ("GB-COH-09990201", "Sandpiper Holdings Ltd", "GB-COH-09990202", "Godwit Holdings Ltd",
         "entity", "shareholding", 25.0, 50.0, False, False),
    ]  # fmt: skip


# --------------------------------------------------------------------------- bad files


def test_bad_files_fail_alone(tmp_path: Path) -> None:
    write(tmp_path, "good.json", v04_triplet())
    write(tmp_path, "truncated.json", json.dumps(legacy_triplet("0.2"))[:900])
    write(tmp_path, "scalar.json", "42")
    write(tmp_path, "package.json", {"releases": [], "version": "1.1"})
    write(tmp_path, "empty.json", b"")
    write(tmp_path, "broken.json.gz", b"this is not gzip")
    mixed = [*legacy_triplet("0.3"), "a string", [1, 2], 7]
    write(tmp_path, "mixed.json", mixed)
    write(tmp_path, "lines.jsonl", '{"statementID": "l-1", "statementType": "entityStatement"}\n'
          "not json at all\n\n")  # fmt: skip
    con = staged(tmp_path)
    manifest = {
        r[0]: r[1:]
        for r in rows(
            con,
            f"SELECT source_file, status, rows_in, rows_loaded, rows_quarantined, message "
            f"FROM {FILE_MANIFEST.qualified}",
        )
    }
    assert manifest["bods/good.json"][:4] == ("loaded", 3, 3, 0)
    assert manifest["bods/mixed.json"][:4] == ("partial", 6, 3, 3)
    assert manifest["bods/lines.jsonl"][:4] == ("partial", 2, 1, 1)
    for bad, needle in (
        ("bods/truncated.json", "invalid JSON in $["),
        ("bods/scalar.json", "not BODS JSON"),
        ("bods/package.json", "not a BODS statement (no statementID/statementId/recordType; keys: releases, version)"),
        ("bods/empty.json", "file is empty (0 bytes)"),
        ("bods/broken.json.gz", "gzip"),
    ):  # fmt: skip
        status, *_counts, message = manifest[bad]
        assert status == "failed", bad
        assert needle in message, (bad, message)
    rejects = rows(
        con,
        f"SELECT source_file, source_row, source_locator, reason, record FROM {QUARANTINE.qualified} "
        "WHERE source_row IS NOT NULL ORDER BY source_file, source_row",
    )
    assert rejects == [
        ("bods/lines.jsonl", 2, "line 2", "invalid JSON on line 2: Expecting value: line 1 column 1 (char 0)", None),
        ("bods/mixed.json", 4, "$[3]", "statement is a string, not a JSON object", "a string"),
        ("bods/mixed.json", 5, "$[4]", "statement is an array, not a JSON object", "array of 2"),
        ("bods/mixed.json", 6, "$[5]", "statement is a number, not a JSON object", "7"),
    ]  # fmt: skip
    # the good statements went all the way through
    assert rows(con, "SELECT count(*) FROM staging.stg_bods_relationships") == [(2,)]


def test_missing_ids_and_record_details_are_quarantined(tmp_path: Path) -> None:
    no_id = {**legacy_triplet("0.2")[0], "statementID": {}}
    no_details = v04_entity("s-n", "r-n", "No Details Ltd")
    del no_details["recordDetails"]
    no_record = v04_entity("s-r", "r-r", "No Record Ltd")
    del no_record["recordId"]
    write(tmp_path, "bad.json", [no_id, no_details, no_record])
    con = staged(tmp_path)
    assert quarantine_reasons(con, "stg_bods_statements") == [
        "missing statement id: statementID absent, empty or not a string",
        "missing recordDetails object",
        "missing recordId",
    ]


# --------------------------------------------------------------------------- demo + wiring


def _demo_statements() -> dict[str, list[dict[str, Any]]]:
    """The demo files read independently with json."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(DEMO.iterdir()):
        if path.suffix == ".json":
            out[path.name] = json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".jsonl":
            out[path.name] = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return out


def test_demo_files_tell_the_harbourton_story(tmp_path: Path) -> None:
    shutil.copytree(DEMO, tmp_path / "bods")
    con = staged(tmp_path)
    demo = _demo_statements()
    assert {k: len(v) for k, v in demo.items()} == {
        "harbourton-ownership-register-2024.json": 19,
        "tidewater-psc-extract-2024.jsonl": 8,
    }
    versions = {
        name: {s.get("publicationDetails", {}).get("bodsVersion") for s in items}
        for name, items in demo.items()
    }
    assert versions == {
        "harbourton-ownership-register-2024.json": {"0.4"},
        "tidewater-psc-extract-2024.jsonl": {"0.3"},
    }
    # the personal data written into the demo never reaches the database
    text = _all_text(con)
    assert "1971-03-14" not in text and "Lantern Row" not in text and "1980-09-14" not in text

    edges = {
        (r[0], r[2], r[5]): (r[6], r[7], r[8], r[9], r[12])
        for r in rows(con, f"SELECT * FROM ({stg.OWNERSHIP_SQL})")
    }
    simon, achterberg, lumenwave = "HBT-PERSON-0006", "GB-COH-09990004", "GB-COH-09990003"
    assert edges[(achterberg, simon, "shareholding")] == (100.0, 100.0, False, False, None)
    assert edges[(achterberg, simon, "votingRights")] == (75.0, 100.0, False, False, None)
    # the 45% of 2023 was updated to 60% in 2024
    assert edges[(lumenwave, achterberg, "shareholding")] == (60.0, 60.0, False, False, None)
    # the previous owner's record was closed on 2023-06-30
    closed = edges[(lumenwave, "GB-COH-09990023", "shareholding")]
    assert closed[:4] == (60.0, 60.0, False, False) and str(closed[4]) == "2023-06-30"
    # the cycle between the two invented holdings is kept for downstream detection
    assert edges[("GB-COH-09990022", "GB-COH-09990021", "shareholding")][:2] == (40.0, 40.0)
    assert edges[("GB-COH-09990021", "GB-COH-09990022", "shareholding")][:2] == (30.0, 30.0)
    # Tidewater Digital (company number published without its leading zero)
    tidewater = "GB-COH-09990002"
    assert edges[(tidewater, "NL-KVK-99990002", "shareholding")][:4] == (50.0, 75.0, True, True)
    ingrid = [k for k in edges if k[0] == tidewater and k[1].startswith("BODS-PERSON-")]
    assert sorted(k[2] for k in ingrid) == ["shareholding", "votingRights"]
    assert edges[ingrid[0]][:4] == (25.0, 50.0, True, False)
    # Tidewater's parent also holds more than 25% up to 50% of the competing bidder Northquay
    assert edges[("GB-COH-09990005", "NL-KVK-99990002", "shareholding")][:4] == (
        25.0, 50.0, True, False,
    )  # fmt: skip
    assert len(edges) == 14
    # founding dates (0.3 foundingDate and 0.4 recordDetails.foundingDate); Quaymark was
    # registered after the EV-charging tender it won opened (ocds/)
    founded = dict(rows(con, f"SELECT org_ref, founding_date FROM ({stg.FOUNDING_SQL})"))
    assert str(founded["GB-COH-09990002"]) == "2018-06-04"
    assert str(founded["GB-COH-09990013"]) == "2024-07-22"
    # the replaced person statement resolves to the corrected name
    assert rows(
        con,
        "SELECT DISTINCT interested_party_name FROM staging.stg_bods_relationships "
        "WHERE interested_party_kind = 'person' ORDER BY 1",
    ) == [("Ingrid Solberg-Hale",), ("Simon Achterberg",)]
    assert quarantine_reasons(con, "stg_bods_statements") == [
        "unknown statement type: ownershipOrControlStatment"
    ]
    assert quarantine_reasons(con, "stg_bods_relationships") == []


def test_suites_pass_on_demo_and_catch_a_bad_share(tmp_path: Path) -> None:
    shutil.copytree(DEMO, tmp_path / "bods")
    con = staged(tmp_path)
    for spec in stg.STG_SPECS:
        suite = load_suite(EXPECTATIONS_DIR / f"staging__{spec.name}.json")
        outcome = run_suite(con, "staging", spec.name, suite)
        broken = [(e.index, e.exception_message) for e in outcome.expectations if e.errored]
        failed = [e.index for e in outcome.expectations if not e.success]
        assert broken == [] and failed == [], (spec.name, broken, failed)
    # a row slipped past staging must fail the critical min <= max rule
    con.execute(
        "UPDATE staging.stg_bods_relationships SET share_exact = NULL, share_min = 90, "
        "share_max = 10 WHERE relationship_id = 'hbt-bods-2024-0012#interests/1'"
    )
    suite = load_suite(EXPECTATIONS_DIR / "staging__stg_bods_relationships.json")
    outcome = run_suite(con, "staging", "stg_bods_relationships", suite)
    failed = [e.index for e in outcome.expectations if not e.success]
    wanted = [
        i
        for i, e in enumerate(suite["expectations"])
        if e.get("description", "").startswith("Share minimum above maximum")
    ]
    assert failed == wanted and len(wanted) == 1
    assert outcome.expectations[wanted[0]].severity == "critical"


def test_assets_materialize_in_dagster(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(DEMO, raw / "bods")
    assets = [
        raw_bods_statements,
        stg.stg_bods_statements,
        stg.stg_bods_entities,
        stg.stg_bods_persons,
        stg.stg_bods_relationships,
    ]
    result = dg.materialize(
        assets,
        resources={
            "duckdb": DuckDBResource(database=str(tmp_path / "build.duckdb")),
            "fundtrace": FundtraceSettings(raw_dir=str(raw), marts_db=str(tmp_path / "m.duckdb")),
        },
    )
    assert result.success
    counts = {
        e.step_materialization_data.materialization.asset_key.to_user_string(): (
            e.step_materialization_data.materialization.metadata["dagster/row_count"].value
        )
        for e in result.get_asset_materialization_events()
    }
    # 19 + 8 statements, one with a misspelt type; 10 entities, 2 persons, 15 interest rows
    assert counts == {
        "raw/raw_bods_statements": 27,
        "staging/stg_bods_statements": 26,
        "staging/stg_bods_entities": 10,
        "staging/stg_bods_persons": 2,
        "staging/stg_bods_relationships": 15,
    }
    for spec in (s for a in assets for s in a.specs):
        assert spec.description and spec.kinds, spec.key
        assert spec.group_name == spec.key.path[0], spec.key


def test_a_json_lines_statement_with_nan_is_quarantined_not_rewritten(tmp_path: Path) -> None:
    # NaN is not JSON; json.loads reads it, and its text would have been rewritten as null
    write(tmp_path, "lines.jsonl", '{"statementID": "l-1", "statementType": "entityStatement"}\n'
          '{"statementID": "l-2", "statementType": "entityStatement", "x": NaN}\n')  # fmt: skip
    con = staged(tmp_path)
    assert rows(con, f"SELECT source_row, reason FROM {QUARANTINE.qualified} WHERE source_row IS NOT NULL") == [
        (2, "invalid JSON on line 2: NaN is not a JSON value"),
    ]  # fmt: skip
    assert rows(con, "SELECT statement_id FROM raw.raw_bods_statements") == [("l-1",)]
