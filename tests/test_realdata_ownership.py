"""Real data: Contracts Finder suppliers (OCDS) joined to the Open Ownership register (BODS).

The samples come from openownership/bluetail: OCDS release packages whose suppliers carry
Companies House numbers, and one BODS file per Companies House number. Everything expected here
is computed independently from the JSON with the standard library.
"""

import json
import os
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from tests.test_end_to_end import run_all

pytestmark = [pytest.mark.realdata, pytest.mark.e2e]

REALDATA = Path(
    os.environ.get("FUNDTRACE_REALDATA_DIR")
    or Path(__file__).resolve().parents[2] / "shared" / "realdata"
)
OCDS = REALDATA / "uk-contracts-finder-bluetail"
BODS = REALDATA / "bods-openownership-register-bluetail"


def _coh(number: str) -> str:
    n = number.strip().upper().replace(" ", "")
    return "GB-COH-" + (n.zfill(8) if n.isdigit() else n[:2] + n[2:].zfill(6))


def award_suppliers() -> set[str]:
    """GB-COH ids of award suppliers: awards[].suppliers -> parties[] by local id."""
    out: set[str] = set()
    for path in OCDS.rglob("*.json"):
        for release in json.loads(path.read_text(encoding="utf-8")).get("releases", []):
            parties = {p.get("id"): p for p in release.get("parties", [])}
            for award in release.get("awards", []):
                for ref in award.get("suppliers", []):
                    party = parties.get(ref.get("id"), ref)
                    ident = party.get("identifier") or {}
                    if ident.get("scheme") == "GB-COH" and str(ident.get("id") or "").strip():
                        out.add(_coh(str(ident["id"])))
    return out


def ownership() -> tuple[set[str], dict[tuple[str, str], tuple[Decimal, Decimal]]]:
    """Companies that are the subject of an ownership-or-control statement whose interested
    party is described in the register, and person -> company current shareholding bounds."""
    subjects: set[str] = set()
    person_shares: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
    for path in BODS.rglob("*.json"):
        statements = json.loads(path.read_text(encoding="utf-8"))
        by_id = {s.get("statementID"): s for s in statements}
        company = {}
        for s in statements:
            if s.get("statementType") == "entityStatement":
                ids = [
                    i
                    for i in s.get("identifiers", [])
                    if i.get("scheme") == "GB-COH" and i.get("id")
                ]
                if ids:
                    company[s["statementID"]] = _coh(ids[0]["id"])
        for s in statements:
            if s.get("statementType") != "ownershipOrControlStatement":
                continue
            subject = company.get((s.get("subject") or {}).get("describedByEntityStatement"))
            party = s.get("interestedParty") or {}
            target = party.get("describedByEntityStatement") or party.get(
                "describedByPersonStatement"
            )
            if subject is None or target not in by_id:
                continue
            subjects.add(subject)
            person = by_id[target]
            if person.get("statementType") != "personStatement":
                continue
            name = (person.get("names") or [{}])[0].get("fullName")
            for interest in s.get("interests", []):
                share = interest.get("share") or {}
                current = not interest.get("endDate")
                if (
                    interest.get("type") == "shareholding"
                    and "minimum" in share
                    and name
                    and current
                ):
                    person_shares[(subject, name)] = (
                        Decimal(str(share["minimum"])),
                        Decimal(str(share["maximum"])),
                    )
    return subjects, person_shares


@pytest.fixture(scope="module")
def marts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not OCDS.is_dir() or not BODS.is_dir():
        pytest.skip(f"real samples not present: {OCDS} and {BODS}")
    base = tmp_path_factory.mktemp("cf_bods")
    raw = base / "raw"
    raw.mkdir()
    (raw / "ocds").symlink_to(OCDS, target_is_directory=True)
    (raw / "bods").symlink_to(BODS, target_is_directory=True)
    no_checks = base / "expectations"
    no_checks.mkdir()  # real publishers' quirks would fire warnings; this test is about joins
    env = {
        "FUNDTRACE_RAW_DIR": str(raw),
        "FUNDTRACE_MARTS_DB": str(base / "out" / "fundtrace.duckdb"),
        "DAGSTER_HOME": str(base),
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        assert run_all(no_checks).success
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return base / "out" / "fundtrace.duckdb"


def test_suppliers_matched_to_ownership_statements(marts: Path) -> None:
    suppliers = award_suppliers()
    subjects, _ = ownership()
    expected = suppliers & subjects
    assert expected, "the samples are meant to overlap"
    build = marts.parent / ".build" / marts.name
    con = duckdb.connect(str(build), read_only=True)
    got = {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT c.supplier_org_id FROM marts.procurement_contracts c "
            "JOIN intermediate.int_control_edges e ON e.controlled_id = c.supplier_org_id "
            "WHERE c.source_system = 'ocds' AND e.source_system = 'bods'"
        ).fetchall()
    }
    con.close()
    print(f"{len(suppliers)} GB-COH suppliers, {len(expected)} with ownership statements")
    assert got == expected


def test_three_ultimate_owners(marts: Path) -> None:
    suppliers = award_suppliers()
    _, person_shares = ownership()
    picks = sorted((k, v) for k, v in person_shares.items() if k[0] in suppliers)[:3]
    assert len(picks) == 3
    con = duckdb.connect(str(marts), read_only=True)
    for (company, name), (lo, hi) in picks:
        rows = con.execute(
            "SELECT share_min, share_max, owner_kind FROM marts.ultimate_controllers "
            "WHERE entity_id = ? AND owner_name = ?",
            [company, name],
        ).fetchall()
        assert rows, f"{name} not found as an ultimate owner of {company}"
        assert (rows[0][0], rows[0][1], rows[0][2]) == (lo, hi, "person")
    con.close()
