"""Entity resolution: mentions -> int_org_matches (decisions) -> int_org_identity (clusters).

Identifiers first; a name only attaches a weak reference, and only when unambiguous; analyst
overrides win both ways; registered ids never merge on a name; canonical ids are deterministic.
Fixtures are a few rows in simplified staging tables (only the columns the module reads).
"""

import random
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource
from rapidfuzz import fuzz

from assets.common.tables import create_table, ensure_schemas
from assets.intermediate import int_org_identity as identity_module
from assets.intermediate import int_org_matches as matches_module
from assets.intermediate.int_money_flows import INT_MONEY_FLOWS
from assets.intermediate.int_org_identity import build_int_org_identity, cluster_links
from assets.intermediate.int_org_matches import (
    MATCH_CONFIG,
    MatchConfig,
    OverridesFileError,
    build_int_org_matches,
    build_int_org_mentions,
    install_macros,
    read_overrides,
)
from assets.raw.reference import ORGID_PREFIXES, SHIPPED_DIR, load_reference_csv
from pipelines.resources import FundtraceSettings

# --------------------------------------------------------------------------- fixtures


def _con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    ensure_schemas(con)
    install_macros(con)
    load_reference_csv(con, ORGID_PREFIXES, "prefix", SHIPPED_DIR / "orgid_prefixes.csv", None)
    create_table(con, INT_MONEY_FLOWS, replace=True)
    return con


def _flow(
    con: duckdb.DuckDBPyConnection,
    to_ref: str,
    to_name: str | None,
    to_kind: str = "organisation",
    source_system: str = "test",
    source_file: str = "test/flows.csv",
) -> None:
    n = con.execute(f"SELECT count(*) FROM {INT_MONEY_FLOWS.qualified}").fetchone()[0]  # type: ignore[index]
    con.execute(
        f"INSERT INTO {INT_MONEY_FLOWS.qualified} (flow_id, flow_type, from_org_ref, from_name, "
        "to_org_ref, to_name, to_kind, flow_date, amount_original, currency_original, "
        "funding_level, controller_org_ref, controller_name, control_basis, source_system, "
        "source_file, source_row, source_record_id) VALUES (?, 'grant', 'GB-LAE-HBT', "
        "'Harbourton City Council', ?, ?, ?, DATE '2024-01-01', 1, 'GBP', 'local', "
        "'GB-LAE-HBT', 'Harbourton City Council', 'funder', ?, ?, ?, ?)",
        [f"t:{n}", to_ref, to_name, to_kind, source_system, source_file, n, str(n)],
    )


def _table(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, object]]) -> None:
    """A simplified staging table holding just the given columns (+ provenance)."""
    cols = list(rows[0])
    types = {c: "VARCHAR[]" if isinstance(rows[0][c], list) else "VARCHAR" for c in cols}
    ddl = ", ".join(f"{c} {types[c]}" for c in cols)
    con.execute(
        f"CREATE OR REPLACE TABLE {table} ({ddl}, source_system VARCHAR, source_file VARCHAR)"
    )
    for r in rows:
        con.execute(
            f"INSERT INTO {table} VALUES ({', '.join('?' for _ in cols)}, 'test', 'test/{table}')",
            [r[c] for c in cols],
        )


def _name_ref(name: str) -> str:
    con = duckdb.connect()
    install_macros(con)
    row = con.execute("SELECT ft_name_org_id(?)", [name]).fetchone()
    con.close()
    assert row is not None
    return row[0]


def _write_overrides(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    lines = ["ref_a,ref_b,decision,reason,analyst,date"]
    lines += [f"{a},{b},{d},test reason,Tester,2025-01-01" for a, b, d in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _resolve(
    con: duckdb.DuckDBPyConnection,
    overrides: Path | None = None,
    config: MatchConfig = MATCH_CONFIG,
) -> dict[str, tuple[str, str]]:
    build_int_org_mentions(con)
    build_int_org_matches(con, overrides, config)
    build_int_org_identity(con)
    return {
        r[0]: (r[1], r[2])
        for r in con.execute(
            "SELECT org_ref, org_id, match_method FROM intermediate.int_org_identity"
        ).fetchall()
    }


def _matches(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        "SELECT ref_a, ref_b, method, accepted, rejection_reason, score "
        "FROM intermediate.int_org_matches ORDER BY step"
    ).fetchall()


def _resolved(
    rows: list[tuple[str, str]],
) -> tuple[duckdb.DuckDBPyConnection, dict[str, tuple[str, str]]]:
    """A flow to each (reference, name) of `rows`, resolved: the connection and the identity."""
    con = _con()
    for ref, name in rows:
        _flow(con, ref, name)
    return con, _resolve(con)


def _identity(rows: list[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    con, out = _resolved(rows)
    con.close()
    return out


# --------------------------------------------------------------------------- normalisation


def _key(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    row = con.execute("SELECT ft_match_key(?)", [name]).fetchone()
    return row[0] if row else None


def test_match_key_ignores_case_punctuation_accents_entities_and_legal_forms() -> None:
    con = _con()
    assert _key(con, "Tidewater Digital Ltd") == "tidewater digital"
    for variant in ("TIDEWATER DIGITAL LIMITED", "Tidewater  Digital, Ltd.", "tidewater digital"):
        assert _key(con, variant) == "tidewater digital", variant
    assert _key(con, "Café Quayside Ltd") == _key(con, "CAFE QUAYSIDE") == "cafe quayside"
    assert (
        _key(con, "Smith &amp; Jones Limited") == _key(con, "Smith & Jones Ltd") == "smith & jones"
    )
    assert _key(con, "Rossi S.p.A.") == _key(con, "ROSSI SPA") == "rossi"
    assert _key(con, "Müller GmbH") == "muller"
    assert _key(con, "Harbourton Older People\u2019s Forum") == _key(
        con, "Harbourton Older People&#39;s Forum"
    )
    # names in another script keep a key (Unicode fallback), placeholders stay empty
    assert _key(con, "БИСТРА МИЦЕВА ЕООД") == "бистра мицева еоод"
    assert _key(con, "  ") is None


def test_override_references_are_normalised_like_org_ids() -> None:
    con = _con()

    def ref(text: str) -> str | None:
        row = con.execute("SELECT ft_override_ref(?)", [text]).fetchone()
        return row[0] if row else None

    assert ref(" gb-coh-9990010 ") == "GB-COH-09990010"
    assert ref("ftname-d7ed015c4470") == "FTNAME-D7ED015C4470"
    assert ref("partnership:hbt-part-scl") == "PARTNERSHIP:HBT-PART-SCL"
    assert ref("") is None


def test_reference_ranks_order_registered_ids_first() -> None:
    con = _con()
    refs = ["FTNAME-ABCDEF123456", "360G-HBT-ORG-0007", "XI-PIC-999990001", "GB-COH-09990001",
            "PARTNERSHIP:HBT-PART-SCL", "FT-REDACTED-GB-LAE-HBT", "XM-DAC-918"]  # fmt: skip
    ranks = dict(con.execute("SELECT r, ft_ref_rank(r) FROM unnest(?) t(r)", [refs]).fetchall())
    assert ranks["GB-COH-09990001"] == ranks["XM-DAC-918"] == 0
    assert (
        ranks["GB-COH-09990001"]
        < ranks["XI-PIC-999990001"]
        < ranks["360G-HBT-ORG-0007"]
        < ranks["PARTNERSHIP:HBT-PART-SCL"]
        < ranks["FTNAME-ABCDEF123456"]
        < ranks["FT-REDACTED-GB-LAE-HBT"]
    )


# --------------------------------------------------------------------------- exact names


def test_name_only_reference_joins_the_single_identified_namesake() -> None:
    name_ref = _name_ref("Tidewater Digital")
    got = _identity(
        [("GB-COH-09990002", "Tidewater Digital Ltd"), (name_ref, "TIDEWATER DIGITAL LIMITED")]
    )
    assert got[name_ref] == ("GB-COH-09990002", "exact_name")
    assert got["GB-COH-09990002"] == ("GB-COH-09990002", "identifier")


def test_exact_name_joins_the_strongest_member_of_the_namesake_cluster() -> None:
    # the PIC joins the company first; the name-only reference then sees one cluster
    # publishing its name through two members, and is joined to the registered one
    name_ref = _name_ref("Tidewater Digital")
    con, got = _resolved(
        [
            ("GB-COH-09990002", "Tidewater Digital Ltd"),
            ("XI-PIC-999990003", "Tidewater Digital"),
            (name_ref, "TIDEWATER DIGITAL"),
        ]
    )
    assert got[name_ref] == ("GB-COH-09990002", "exact_name")
    assert [m[:4] for m in _matches(con) if m[0] == name_ref] == [
        (name_ref, "GB-COH-09990002", "exact_name", True)
    ]


def test_ambiguous_names_never_merge() -> None:
    name_ref = _name_ref("Harbour Works")
    con, got = _resolved(
        [
            ("GB-COH-09990101", "Harbour Works Ltd"),
            ("GB-CHC-1199101", "Harbour Works"),
            (name_ref, "Harbour Works"),
        ]
    )
    assert got[name_ref] == (name_ref, "name")
    rejected = [m for m in _matches(con) if m[0] == name_ref]
    assert {m[1] for m in rejected} == {"GB-COH-09990101", "GB-CHC-1199101"}
    assert all(not m[3] and "ambiguous" in m[4] for m in rejected)


def test_identified_organisations_never_merge_on_name() -> None:
    got = _identity([("GB-COH-09990101", "Same Name Ltd"), ("GB-CHC-1199101", "Same Name")])
    assert got["GB-COH-09990101"][0] == "GB-COH-09990101"
    assert got["GB-CHC-1199101"][0] == "GB-CHC-1199101"


def test_exact_name_needs_a_compatible_country() -> None:
    con = _con()
    _flow(con, "GB-COH-09990002", "Tidewater Digital Ltd")
    _table(
        con,
        "staging.stg_cordis_participations",
        [
            {"recipient_org_ref": "XI-PIC-999990003", "recipient_name": "TIDEWATER DIGITAL LTD",
             "vat_number": None, "organisation_pic": "999990003", "country_iso": "GB"},
            {"recipient_org_ref": "XI-PIC-999990009", "recipient_name": "Tidewater Digital GmbH",
             "vat_number": None, "organisation_pic": "999990009", "country_iso": "DE"},
        ],
    )  # fmt: skip
    got = _resolve(con)
    assert got["XI-PIC-999990003"] == ("GB-COH-09990002", "exact_name")
    assert got["XI-PIC-999990009"] == ("XI-PIC-999990009", "identifier")  # DE is not GB


# --------------------------------------------------------------------------- identifiers


def _cordis_fts(con: duckdb.DuckDBPyConnection, cordis_vat: str | None, fts_vat: str | None) -> str:
    fts_ref = _name_ref("Harbourton Council")
    _table(
        con,
        "staging.stg_cordis_participations",
        [{"recipient_org_ref": "XI-PIC-999990001", "recipient_name": "HARBOURTON CITY COUNCIL",
          "vat_number": cordis_vat, "organisation_pic": "999990001", "country_iso": "GB"}],
    )  # fmt: skip
    _table(
        con,
        "staging.stg_eu_fts_commitments",
        [{"recipient_org_ref": fts_ref, "recipient_name": "Harbourton Council",
          "recipient_kind": "organisation", "vat_number": fts_vat, "registration_number": None,
          "beneficiary_country_code": "GB"}],
    )  # fmt: skip
    return fts_ref


def test_shared_vat_number_links_cordis_and_fts_then_the_name_reaches_the_register() -> None:
    con = _con()
    _flow(con, "GB-LAE-HBT", "Harbourton City Council")
    # the FTS name differs ('Harbourton Council'): only the VAT number links it
    fts_ref = _cordis_fts(con, "GB999999973", "GB 999 9999 73")
    got = _resolve(con)
    assert got["XI-PIC-999990001"] == ("GB-LAE-HBT", "exact_name")
    assert got[fts_ref] == ("GB-LAE-HBT", "shared_identifier")
    shown = con.execute(
        "SELECT ref_a, ref_b, evidence, name_a, name_b, source_systems "
        "FROM intermediate.int_org_matches WHERE method = 'shared_identifier'"
    ).fetchall()
    assert shown == [
        (fts_ref, "XI-PIC-999990001", f"VAT:GB999999973 published for {fts_ref} "
         "(test/staging.stg_eu_fts_commitments) and XI-PIC-999990001 "
         "(test/staging.stg_cordis_participations)", "Harbourton Council",
         "HARBOURTON CITY COUNCIL", ["test"]),
    ]  # fmt: skip


def test_placeholder_identifiers_never_merge() -> None:
    con = _con()
    fts_ref = _cordis_fts(con, "N/A", "000000000")
    _table(
        con,
        "staging.stg_ocds_parties",
        [{"party_org_ref": "GB-COH-09990003", "party_name": "Lumenwave Systems Ltd",
          "address_country": "GB", "identifier_scheme": "GB-COH", "identifier_id": "09990003",
          "additionalidentifiers": ["GB-COH-", "XI-PIC-000000000"]},
         {"party_org_ref": "GB-COH-09990004", "party_name": "Achterberg Holdings Ltd",
          "address_country": "GB", "identifier_scheme": "GB-COH", "identifier_id": "09990004",
          "additionalidentifiers": ["GB-COH-", "XI-PIC-000000000"]}],
    )  # fmt: skip
    got = _resolve(con)
    assert got[fts_ref] == (fts_ref, "name")
    assert got["GB-COH-09990003"][0] != got["GB-COH-09990004"][0]
    assert not [m for m in _matches(con) if m[2] == "shared_identifier"]


def test_identifier_published_for_too_many_references_is_a_placeholder() -> None:
    con = _con()
    rows = [
        {"recipient_org_ref": _name_ref(f"Beneficiary {c}"), "recipient_name": f"Beneficiary {c}",
         "recipient_kind": "organisation", "vat_number": "GB123456789",
         "registration_number": None, "beneficiary_country_code": "GB"}
        for c in "ABC"
    ]  # fmt: skip
    _table(con, "staging.stg_eu_fts_commitments", rows)
    got = _resolve(con, config=MatchConfig(identifier_max_refs=2))
    assert len({got[r["recipient_org_ref"]][0] for r in rows}) == 3  # type: ignore[index]
    rejected = [m for m in _matches(con) if m[2] == "shared_identifier"]
    assert rejected and all(not m[3] and "placeholder" in m[4] for m in rejected)
    # with the default limit the same three lines are one beneficiary
    got = _resolve(con)
    assert len({got[r["recipient_org_ref"]][0] for r in rows}) == 1  # type: ignore[index]


def test_identifier_shared_by_two_registered_companies_merges_nothing() -> None:
    con = _con()
    _table(
        con,
        "staging.stg_ocds_parties",
        [{"party_org_ref": "GB-COH-09990021", "party_name": "Kestrel Quay Holdings Ltd",
          "address_country": "GB", "identifier_scheme": "GB-COH", "identifier_id": "09990021",
          "additionalidentifiers": ["XI-LEI-HBT0000000000000001"]},
         {"party_org_ref": "GB-COH-09990022", "party_name": "Brackwater Ventures Ltd",
          "address_country": "GB", "identifier_scheme": "GB-COH", "identifier_id": "09990022",
          "additionalidentifiers": ["XI-LEI-HBT0000000000000001"]}],
    )  # fmt: skip
    got = _resolve(con)
    assert got["GB-COH-09990021"][0] == "GB-COH-09990021"
    assert got["GB-COH-09990022"][0] == "GB-COH-09990022"
    rows = [m for m in _matches(con) if m[2] == "shared_identifier"]
    assert rows and not any(m[3] for m in rows)
    assert all("two registered organisations" in m[4] for m in rows)


def test_pic_published_with_a_company_number_is_one_organisation() -> None:
    con = _con()
    _flow(con, "GB-COH-09990002", "Tidewater Digital Ltd")
    _table(
        con,
        "staging.stg_ocds_parties",
        [{"party_org_ref": "XI-PIC-999990003", "party_name": "Tidewater (digital services)",
          "address_country": "GB", "identifier_scheme": "XI-PIC", "identifier_id": "999990003",
          "additionalidentifiers": ["GB-COH-9990002"]}],
    )  # fmt: skip
    got = _resolve(con)
    assert got["XI-PIC-999990003"] == ("GB-COH-09990002", "shared_identifier")
    # the company's own reference is its id: the evidence says so instead of naming files
    shown = con.execute(
        "SELECT evidence, name_a, name_b, source_systems FROM intermediate.int_org_matches "
        "WHERE method = 'shared_identifier'"
    ).fetchall()
    assert shown == [
        ("GB-COH-09990002 published for XI-PIC-999990003 (test/staging.stg_ocds_parties) "
         "and GB-COH-09990002 (its own id)", "Tidewater (digital services)",
         "Tidewater Digital Ltd", ["test"]),
    ]  # fmt: skip


def test_a_decision_whose_basis_no_mention_carries_is_reported_not_shown_empty() -> None:
    con = _con()
    _flow(con, "GB-COH-09990002", "Tidewater Digital Ltd")
    _resolve(con)
    # a decision resting on an identifier no mention of either reference publishes
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _ft_basis AS SELECT 7 AS step, 'GB-COH-09990002' AS ref_a, "
        "'XI-PIC-1' AS ref_b, 'shared_identifier' AS method, 100.0 AS score, true AS accepted, "
        "NULL AS rejection_reason, 'VAT:GB1' AS key_a, NULL AS key_b, '' AS note"
    )
    matches_module._empty_shown(con)
    with pytest.raises(RuntimeError, match=r"evidence cannot be shown: \[\(7, 'shared_identifier'"):
        matches_module.render_shown(con)


def test_bods_entity_identifiers_link_to_the_company() -> None:
    con = _con()
    _flow(con, "GB-COH-09990004", "Achterberg Holdings Ltd")
    _table(
        con,
        "staging.stg_bods_entities",
        [{"org_ref": "XI-LEI-HBT0000000000000004", "entity_name": "Achterberg Holdings",
          "jurisdiction_code": "GB",
          "identifiers": ["XI-LEI-HBT0000000000000004", "GB-COH-09990004"]}],
    )  # fmt: skip
    used = build_int_org_mentions(con).used
    assert "staging.stg_bods_entities" in used
    got = _resolve(con)
    # both are registered ids: alphabetical order picks the canonical one
    assert got["XI-LEI-HBT0000000000000004"] == ("GB-COH-09990004", "shared_identifier")


def test_missing_optional_sources_are_skipped_and_present_ones_read() -> None:
    con = _con()
    _flow(con, "GB-COH-09990003", "Lumenwave Systems Ltd")
    built = build_int_org_mentions(con)
    used, skipped = built.used, built.skipped
    assert used == ["intermediate.int_money_flows"]
    assert "staging.stg_ted_awards (not built)" in skipped
    supplier = _name_ref("Lumenwave Systems")
    _table(
        con,
        "staging.stg_ted_awards",
        [{"supplier_org_ref": supplier, "supplier_name": "LUMENWAVE SYSTEMS LIMITED",
          "supplier_country": "GB"}],
    )  # fmt: skip
    _table(con, "staging.stg_ted_notices", [{"buyer_org_ref": "GB-LAE-HBT"}])  # lacks columns
    built = build_int_org_mentions(con)
    used, skipped = built.used, built.skipped
    assert "staging.stg_ted_awards" in used
    assert any(s.startswith("staging.stg_ted_notices (lacks buyer_name") for s in skipped)
    got = _resolve(con)
    assert got[supplier] == ("GB-COH-09990003", "exact_name")


# --------------------------------------------------------------------------- fuzzy names


def test_fuzzy_name_attaches_a_typo_to_the_registered_organisation() -> None:
    typo = _name_ref("Greenshore Climate Actoin")
    con = _con()
    _flow(con, "GB-CHC-1199008", "Greenshore Climate Action")
    _flow(con, typo, "Greenshore Climate Actoin")
    got = _resolve(con)
    assert got[typo] == ("GB-CHC-1199008", "fuzzy_name")
    (score,) = con.execute(
        "SELECT score FROM intermediate.int_org_matches WHERE method = 'fuzzy_name' AND accepted"
    ).fetchone()  # type: ignore[misc]
    # one transposition in 25 characters: InDel similarity 1 - 2/50
    assert score == pytest.approx(96.0)
    assert MATCH_CONFIG.fuzzy_min_score <= score < 100


def test_fuzzy_two_close_candidates_merge_nothing() -> None:
    typo = _name_ref("Harbour Arts Colective")
    con = _con()
    _flow(con, "GB-CHC-1199007", "Harbour Arts Collective")
    _flow(con, "GB-COH-09990099", "Harbour Arts Collectives Ltd")
    _flow(con, typo, "Harbour Arts Colective")
    a = fuzz.token_sort_ratio("harbour arts colective", "harbour arts collective")
    b = fuzz.token_sort_ratio("harbour arts colective", "harbour arts collectives")
    assert min(a, b) >= MATCH_CONFIG.fuzzy_min_score and abs(a - b) < MATCH_CONFIG.fuzzy_min_margin
    got = _resolve(con)
    assert got[typo] == (typo, "name")
    rows = [m for m in _matches(con) if m[2] == "fuzzy_name"]
    assert len(rows) == 2 and all(not m[3] and "ambiguous" in m[4] for m in rows)


def test_name_evidence_names_the_sorted_files_and_systems_of_both_names() -> None:
    # the files and systems are fetched after matching, for the rows written only
    exact = _name_ref("Quayside Lantern Works")
    typo = _name_ref("Quayside Lantern Wroks")
    con = _con()
    org = "organisation"
    _flow(con, "GB-COH-09990005", "Quayside Lantern Works Ltd", org, "zeta", "test/z.csv")
    for system, file in ("beta", "e"), ("alpha", "a"), ("beta", "d"), ("beta", "b"), ("alpha", "c"):
        _flow(con, exact, "Quayside Lantern Works", org, system, f"test/{file}.csv")
    _flow(con, exact, "Quayside Lantern Works", org, "alpha", "test/a.csv")
    _flow(con, typo, "Quayside Lantern Wroks", org, "gamma", "test/f.csv")
    _resolve(con)
    rows = con.execute(
        "SELECT ref_a, method, evidence, source_systems FROM intermediate.int_org_matches "
        "WHERE method IN ('exact_name', 'fuzzy_name') ORDER BY step"
    ).fetchall()
    assert rows == [
        (exact, "exact_name", 'normalised name "quayside lantern works" (country GB): '
         '"Quayside Lantern Works" (test/a.csv, test/b.csv, test/c.csv +2 more) = '
         '"Quayside Lantern Works Ltd" (test/z.csv)', ["alpha", "beta", "zeta"]),
        (typo, "fuzzy_name", 'token_sort_ratio 95.45 of "quayside lantern wroks" ("Quayside '
         'Lantern Wroks", test/f.csv) and "quayside lantern works" ("Quayside Lantern Works '
         'Ltd", test/z.csv); next best cluster 0', ["gamma", "zeta"]),
    ]  # fmt: skip


def test_fuzzy_never_merges_two_registered_ids() -> None:
    con = _con()
    _flow(con, "GB-CHC-1199007", "Harbour Arts Collective")
    _flow(con, "GB-COH-09990098", "Harbourton Arts Collective Ltd")
    assert fuzz.token_sort_ratio("harbour arts collective", "harbourton arts collective") >= 90
    got = _resolve(con)
    assert got["GB-COH-09990098"][0] == "GB-COH-09990098"
    assert got["GB-CHC-1199007"][0] == "GB-CHC-1199007"
    assert not [m for m in _matches(con) if m[2] == "fuzzy_name"]


def test_fuzzy_requires_equal_numbers_and_a_shared_block() -> None:
    con = _con()
    academy = _name_ref("Harbourton Primary Academy 2")
    _flow(con, "GB-EDU-999001", "Harbourton Primary Academy 1")
    _flow(con, academy, "Harbourton Primary Academy 2")
    got = _resolve(con)
    assert got[academy] == (academy, "name")
    # a block token shared by more references than the limit is not a block
    typo = _name_ref("Greenshore Climate Actoin")
    con = _con()
    _flow(con, "GB-CHC-1199008", "Greenshore Climate Action")
    _flow(con, typo, "Greenshore Climate Actoin")
    got = _resolve(con, config=MatchConfig(block_max_refs=1))
    assert got[typo] == (typo, "name")


def test_near_misses_are_reported_not_merged() -> None:
    club = _name_ref("Saltmarsh Youth Club")
    con = _con()
    _flow(con, "GB-CHC-1199002", "Saltmarsh Youth Trust")
    _flow(con, club, "Saltmarsh Youth Club")
    score = fuzz.token_sort_ratio("saltmarsh youth club", "saltmarsh youth trust")
    assert 60 <= score < MATCH_CONFIG.fuzzy_min_score
    got = _resolve(con, config=MatchConfig(fuzzy_report_min=60))
    assert got[club] == (club, "name")
    (row,) = [m for m in _matches(con) if m[2] == "fuzzy_name"]
    assert row[:2] == (club, "GB-CHC-1199002")
    assert not row[3] and "below the fuzzy threshold" in row[4]
    assert row[5] == pytest.approx(round(score, 2))
    # with the default report floor (80) the pair is not even listed
    _resolve(con)
    assert not [m for m in _matches(con) if m[2] == "fuzzy_name"]


# --------------------------------------------------------------------------- who never merges


def test_persons_and_redacted_payees_never_match() -> None:
    con = _con()
    payee = _name_ref("Simon Achterberg")
    _flow(con, payee, "Simon Achterberg")
    _flow(con, "FT-REDACTED-GB-LAE-HBT", None, "redacted")
    _flow(con, "FT-REDACTED-XM-DAC-918", None, "redacted")
    _table(
        con,
        "staging.stg_governance_members",
        [{"member_ref": "HBT-PERSON-0006", "member_name": "Simon Achterberg",
          "member_type": "person"}],
    )  # fmt: skip
    got = _resolve(con)
    assert got["HBT-PERSON-0006"] == ("HBT-PERSON-0006", "register id")
    assert got[payee] == (payee, "name")
    assert got["FT-REDACTED-GB-LAE-HBT"] == ("FT-REDACTED-GB-LAE-HBT", "redacted")
    types = dict(
        con.execute("SELECT org_ref, org_type FROM intermediate.int_org_identity").fetchall()
    )
    assert types["HBT-PERSON-0006"] == "person"
    assert types["FT-REDACTED-XM-DAC-918"] == "redacted"


def test_company_partnership_resolves_to_its_company_other_partnerships_do_not() -> None:
    con = _con()
    _flow(con, "GB-COH-09990001", "Harbourton Smart City Ltd")
    _table(
        con,
        "staging.stg_governance_partnerships",
        [{"partnership_id": "HBT-PART-SCL", "name": "Harbourton Smart City Limited",
          "legal_form": "company", "country": "GB", "accountable_to_ref": "GB-LAE-HBT",
          "accountable_to_name": "Harbourton City Council (Cabinet)"},
         {"partnership_id": "HBT-PART-MOU", "name": "Harbourton Smart City",
          "legal_form": "mou", "country": "GB", "accountable_to_ref": None,
          "accountable_to_name": None}],
    )  # fmt: skip
    got = _resolve(con)
    assert got["PARTNERSHIP:HBT-PART-SCL"] == ("GB-COH-09990001", "exact_name")
    assert got["PARTNERSHIP:HBT-PART-MOU"] == ("PARTNERSHIP:HBT-PART-MOU", "register id")


# --------------------------------------------------------------------------- overrides


def test_override_same_merges_what_the_algorithm_would_not(tmp_path: Path) -> None:
    con = _con()
    _flow(con, "GB-CHC-1199003", "Harbourton Digital Inclusion Network")
    _flow(con, "GB-COH-09990010", "Harbourton Digital Inclusion Network")
    assert _resolve(con)["GB-COH-09990010"][0] == "GB-COH-09990010"  # two registered ids
    overrides = _write_overrides(
        tmp_path / "overrides.csv", [("gb-coh-9990010", "GB-CHC-1199003", "same")]
    )
    got = _resolve(con, overrides)
    assert got["GB-COH-09990010"] == ("GB-CHC-1199003", "override_same")
    assert got["GB-CHC-1199003"] == ("GB-CHC-1199003", "identifier")


def test_override_different_forbids_exact_and_fuzzy_merges(tmp_path: Path) -> None:
    exact, typo = _name_ref("Tidewater Digital"), _name_ref("Greenshore Climate Actoin")
    con = _con()
    _flow(con, "GB-COH-09990002", "Tidewater Digital Ltd")
    _flow(con, exact, "Tidewater Digital")
    _flow(con, "GB-CHC-1199008", "Greenshore Climate Action")
    _flow(con, typo, "Greenshore Climate Actoin")
    before = _resolve(con)
    assert before[exact][0] == "GB-COH-09990002" and before[typo][0] == "GB-CHC-1199008"
    overrides = _write_overrides(
        tmp_path / "overrides.csv",
        [(exact, "GB-COH-09990002", "different"), ("GB-CHC-1199008", typo, "different")],
    )
    got = _resolve(con, overrides)
    assert got[exact] == (exact, "name") and got[typo] == (typo, "name")
    blocked = {(m[0], m[2]) for m in _matches(con) if not m[3] and "forbidden by" in (m[4] or "")}
    assert blocked == {(exact, "exact_name"), (typo, "fuzzy_name")}


def test_override_different_also_blocks_a_merge_through_the_cluster(tmp_path: Path) -> None:
    con = _con()
    _flow(con, "GB-LAE-HBT", "Harbourton City Council")
    fts_ref = _cordis_fts(con, "GB999999973", "GB999999973")
    # the FTS line may not end up in the council, even through the PIC
    overrides = _write_overrides(tmp_path / "overrides.csv", [(fts_ref, "GB-LAE-HBT", "different")])
    got = _resolve(con, overrides)
    assert got[fts_ref][0] != got["GB-LAE-HBT"][0]
    assert got[fts_ref][0] == "XI-PIC-999990001"  # the VAT link itself is allowed


def test_contradicting_overrides_forbid_and_invalid_rows_are_reported(tmp_path: Path) -> None:
    con = _con()
    _flow(con, "GB-CHC-1199003", "Harbourton Digital Inclusion Network")
    _flow(con, "GB-COH-09990010", "Harbourton Digital Inclusion Network")
    overrides = _write_overrides(
        tmp_path / "overrides.csv",
        [
            ("GB-CHC-1199003", "GB-COH-09990010", "same"),
            ("GB-COH-09990010", "GB-CHC-1199003", "different"),
            ("GB-CHC-1199003", "GB-COH-09999999", "same"),
            ("GB-CHC-1199003", "GB-COH-09990010", "maybe"),
        ],
    )
    got = _resolve(con, overrides)
    assert got["GB-COH-09990010"][0] == "GB-COH-09990010"
    rows = _matches(con)
    assert [(m[2], m[3]) for m in rows] == [
        ("override_invalid", False),
        ("override_invalid", False),
        ("override_different", True),
        ("override_same", False),
    ]
    assert "not published by any source" in rows[0][4]
    assert "'same' or 'different'" in rows[1][4]
    assert "forbidden by override" in rows[3][4]


def test_overrides_file_reading(tmp_path: Path) -> None:
    path = tmp_path / "overrides.csv"
    path.write_bytes(
        "\ufeffRef A;REF_B;Decision;Reason\r\nGB-COH-1;GB-COH-2;SAME;x\r\n;;;\r\n".encode()
    )
    (o,) = read_overrides(path)
    assert (o.ref_a, o.ref_b, o.decision, o.reason, o.row, o.line) == (
        "GB-COH-1", "GB-COH-2", "same", "x", 1, 2,
    )  # fmt: skip
    assert read_overrides(tmp_path / "absent.csv") == []
    path.write_text("a,b,decision\nx,y,same\n")
    with pytest.raises(OverridesFileError, match="missing column"):
        read_overrides(path)


# --------------------------------------------------------------------------- determinism


def test_canonical_id_is_the_strongest_reference_whatever_the_order() -> None:
    name = _name_ref("Tidewater Digital")
    rows = [
        ("GB-COH-09990002", "Tidewater Digital Ltd"),
        (name, "Tidewater Digital"),
        ("GB-CHC-1199003", "Harbourton Digital Inclusion Network"),
        ("GB-COH-09990010", "Harbourton Digital Inclusion Network"),
        ("360G-HBT-ORG-0007", "Eastdock Residents' Association"),
        (_name_ref("Eastdock Residents Association"), "EASTDOCK RESIDENTS ASSOCIATION"),
    ]
    tables = []
    for seed in (1, 2, 3):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        con = _con()
        for ref, n in shuffled:
            _flow(con, ref, n)
        con.execute("UPDATE intermediate.int_money_flows SET source_row = 0, flow_id = 'x'")
        _resolve(con)
        tables.append(
            (
                con.execute("SELECT * FROM intermediate.int_org_identity").fetchall(),
                con.execute("SELECT * FROM intermediate.int_org_matches").fetchall(),
            )
        )
        con.close()
    assert tables[0] == tables[1] == tables[2]
    ids = {r[0]: r[1] for r in tables[0][0]}
    assert ids[name] == "GB-COH-09990002"
    assert ids[_name_ref("Eastdock Residents Association")] == "360G-HBT-ORG-0007"


def test_cluster_links_pick_the_strongest_member_and_explain_each_hop() -> None:
    refs = {"FTNAME-A": 4, "XI-PIC-1": 1, "GB-COH-09990002": 0, "GB-CHC-1": 0, "FTNAME-B": 4}
    pairs = [
        ("FTNAME-A", "XI-PIC-1", "shared_identifier", 100.0, "VAT", 1),
        ("XI-PIC-1", "GB-COH-09990002", "exact_name", 100.0, "name", 2),
        ("GB-COH-09990002", "GB-CHC-1", "override_same", None, "analyst", 3),
    ]
    links = {r[0]: r for r in cluster_links(refs, pairs)}
    # registered ids tie: alphabetical, GB-CHC before GB-COH
    assert {r[1] for k, r in links.items() if k != "FTNAME-B"} == {"GB-CHC-1"}
    assert links["FTNAME-A"][2] == "shared_identifier" and links["FTNAME-A"][4] == "XI-PIC-1"
    assert links["GB-COH-09990002"][2] == "override_same"
    # the canonical member and the unmatched reference are their own: no link
    assert "GB-CHC-1" not in links and "FTNAME-B" not in links


# --------------------------------------------------------------------------- Dagster wiring


def test_assets_materialize_in_dagster(tmp_path: Path) -> None:
    from assets.raw import reference

    db = tmp_path / "build.duckdb"
    con = duckdb.connect(str(db))
    ensure_schemas(con)
    create_table(con, INT_MONEY_FLOWS, replace=True)
    _flow(con, "GB-COH-09990002", "Tidewater Digital Ltd")
    _flow(con, _name_ref("Tidewater Digital"), "TIDEWATER DIGITAL LIMITED")
    con.close()
    raw = tmp_path / "raw"
    (raw / "governance").mkdir(parents=True)
    _write_overrides(
        raw / "governance" / "overrides.csv",
        [(_name_ref("Tidewater Digital"), "GB-COH-09990002", "different")],
    )
    result = dg.materialize(
        [
            reference.ref_orgid_prefixes,
            matches_module.int_org_mentions,
            matches_module.int_org_matches,
            identity_module.int_org_identity,
        ],
        resources={
            "duckdb": DuckDBResource(database=str(db)),
            "fundtrace": FundtraceSettings(raw_dir=str(raw), marts_db=str(tmp_path / "m.duckdb")),
        },
    )
    assert result.success
    con = duckdb.connect(str(db), read_only=True)
    got = dict(con.execute("SELECT org_ref, org_id FROM intermediate.int_org_identity").fetchall())
    assert got[_name_ref("Tidewater Digital")] == _name_ref("Tidewater Digital")
    methods = con.execute(
        "SELECT method FROM intermediate.int_org_matches ORDER BY step"
    ).fetchall()
    assert methods[0] == ("override_different",)
    con.close()


@pytest.mark.e2e
def test_demo_resolves_eu_participants_and_applies_the_overrides(
    fundtrace_env: dict[str, Path],
) -> None:
    """The shipped demo: CORDIS PICs and FTS name-only beneficiaries end in the registered
    organisations of the cast (data/raw/README.md), and both override rows take effect."""
    from pipelines.definitions import build_definitions
    from pipelines.jobs import ALL_ASSETS_JOB_NAME

    job = build_definitions().resolve_job_def(ALL_ASSETS_JOB_NAME)
    with dg.instance_for_test() as instance:
        assert job.execute_in_process(instance=instance, raise_on_error=False).success
    con = duckdb.connect(str(fundtrace_env["build"]), read_only=True)
    ids = dict(con.execute("SELECT org_ref, org_id FROM intermediate.int_org_identity").fetchall())
    # h2020_organization.csv PICs -> the cast's registered ids
    assert ids["XI-PIC-999990001"] == "GB-LAE-HBT"
    assert ids["XI-PIC-999990002"] == "GB-UKPRN-19990001"
    assert ids["XI-PIC-999990003"] == "GB-COH-09990002"
    assert ids["XI-PIC-999990004"] == "GB-COH-09990006"
    assert ids["XI-PIC-999990005"] == "NL-KVK-99990001"
    assert ids["XI-PIC-999990006"] == "GB-COH-09990001"
    assert ids["XI-PIC-999990007"] == "IE-CRO-999001"
    # FTS beneficiaries (name-only) join through their VAT numbers or names
    for name, org in [
        ("HARBOURTON CITY COUNCIL", "GB-LAE-HBT"),
        ("TIDEWATER DIGITAL LTD", "GB-COH-09990002"),
        ("HARBOURTON SMART CITY LIMITED", "GB-COH-09990001"),
        ("UNIVERSITY OF HARBOURTON", "GB-UKPRN-19990001"),
    ]:
        assert ids[_name_ref(name)] == org, name
    # overrides.csv: the charity and its company are one; the café is not the food bank
    assert ids["GB-COH-09990010"] == "GB-CHC-1199003"
    assert ids[_name_ref("Café Quayside Ltd")] == _name_ref("Café Quayside Ltd")
    overrides = con.execute(
        "SELECT method, accepted FROM intermediate.int_org_matches "
        "WHERE method LIKE 'override%' ORDER BY step"
    ).fetchall()
    assert overrides == [("override_different", True), ("override_same", True)]
    con.close()
    marts = duckdb.connect(str(fundtrace_env["marts"]), read_only=True)
    refs = marts.execute(
        "SELECT org_refs FROM marts.organisations WHERE org_id = 'GB-LAE-HBT'"
    ).fetchone()
    assert refs is not None and "XI-PIC-999990001" in refs[0]
    marts.close()


# --------------------------------------------------------------------------- GX suite


def test_expectation_suite_passes_and_catches_broken_identities(tmp_path: Path) -> None:
    from pipelines.quality import EXPECTATIONS_DIR, load_suite, run_suite

    suite = load_suite(EXPECTATIONS_DIR / "intermediate__int_org_identity.json")
    con = duckdb.connect(str(tmp_path / "build.duckdb"))
    ensure_schemas(con)
    install_macros(con)
    load_reference_csv(con, ORGID_PREFIXES, "prefix", SHIPPED_DIR / "orgid_prefixes.csv", None)
    create_table(con, INT_MONEY_FLOWS, replace=True)
    name = _name_ref("Tidewater Digital")
    _flow(con, "GB-COH-09990002", "Tidewater Digital Ltd")
    _flow(con, name, "Tidewater Digital")
    _flow(con, "FT-REDACTED-GB-LAE-HBT", None, "redacted")
    _resolve(con)
    outcome = run_suite(con, "intermediate", "int_org_identity", suite)
    assert not outcome.errors, outcome.error_summary()
    assert outcome.passed, [e.label for e in outcome.expectations if e.failed]

    # tamper: a redacted payee merged, a flow reference unresolved, a merge without a decision
    con.execute(
        "UPDATE intermediate.int_org_identity SET org_id = 'GB-COH-09990002', "
        "matched_to = 'GB-COH-09990002' WHERE org_ref = 'FT-REDACTED-GB-LAE-HBT'"
    )
    con.execute("DELETE FROM intermediate.int_org_identity WHERE org_ref = 'GB-LAE-HBT'")
    outcome = run_suite(con, "intermediate", "int_org_identity", suite)
    assert not outcome.errors, outcome.error_summary()
    failed = {suite["expectations"][e.index].get("description") for e in outcome.critical_failures}
    assert "Redacted payees are never merged with anything" in failed
    assert any("int_money_flows is resolved" in (d or "") for d in failed)
    assert "Every merge is an accepted decision recorded in intermediate.int_org_matches" in failed
    con.close()


def test_identity_suite_names_a_flow_reference_left_unresolved() -> None:
    from pipelines.quality import EXPECTATIONS_DIR, load_suite, run_suite

    con = _con()
    _flow(con, "GB-COH-09990003", "Lumenwave Systems Ltd")
    _flow(con, _name_ref("Lumenwave Systems"), "LUMENWAVE SYSTEMS LIMITED")
    _resolve(con)
    suite = load_suite(EXPECTATIONS_DIR / "intermediate__int_org_identity.json")
    assert run_suite(con, "intermediate", "int_org_identity", suite).passed
    con.execute("DELETE FROM intermediate.int_org_identity WHERE org_ref = 'GB-LAE-HBT'")
    outcome = run_suite(con, "intermediate", "int_org_identity", suite)
    flows = [e for e in outcome.critical_failures if "int_money_flows" in str(e.kwargs)]
    assert flows and flows[0].unexpected_count == 4  # payer and controller of both flows
    assert any("GB-LAE-HBT" in s for s in flows[0].unexpected_sample)
